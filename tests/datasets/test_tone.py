"""The spoken tone dataset: the label crosses the words and the tone, the test speakers are new,
the tone is in the audio only, and a model needs both the transcript and how it is said."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mmfuse.datasets.tone import CRITICISM, EMOTIONS, PRAISE, make_tone_dataset
from mmfuse.errors import MmfuseError

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


@pytest.fixture(scope="module")
def tone_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tone_dataset(tmp_path_factory.mktemp("tone"), speakers=16, test_speakers=4, clips_per_speaker=24)


@pytest.fixture(scope="module")
def tables(tone_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    return pd.read_csv(tone_dir / "train.csv"), pd.read_csv(tone_dir / "test.csv")


def test_test_speakers_are_never_heard_in_training(tables: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    train, test = tables
    assert (len(train), len(test)) == (12 * 24, 4 * 24)
    assert set(train["speaker_id"]).isdisjoint(test["speaker_id"])
    assert test["speaker_id"].nunique() == 4


def test_label_crosses_words_and_tone(tables: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    table = pd.concat(tables)
    words = {emotion: w for (w, _), (emotion, _) in EMOTIONS.items()}
    for _, row in table.iterrows():
        adjective = next(a for a in (*PRAISE, *CRITICISM) if f" {a} " in f" {row.transcript.rstrip('.')} ")
        lexicon = PRAISE if words[row.emotion] == "praise" else CRITICISM
        assert adjective in lexicon
        sign = dict(EMOTIONS.values())[row.emotion]
        assert row.sentiment == pytest.approx(sign * lexicon[adjective])
    assert table["sentiment"].between(-3, 3).all()
    assert table.groupby("speaker_id")["emotion"].nunique().eq(4).all()  # every speaker, every kind


def test_the_tone_is_in_the_audio(tone_dir: Path, tables: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    pytest.importorskip("opensmile")
    from mmfuse.data.preparations import get_preparation

    prep = get_preparation("egemaps-88")
    rows = tables[1]
    spread = {"lively": [], "flat": []}
    for _, row in rows.iterrows():
        values = prep.finish(prep.decode(None, tone_dir / row.audio))
        tone = "lively" if row.emotion in ("happy", "angry") else "flat"
        spread[tone].append(values[5])  # F0 range (20th to 80th percentile, semitones)
    assert np.mean(spread["lively"]) > 1.5 * np.mean(spread["flat"])


def test_sizes_are_checked(tmp_path: Path) -> None:
    with pytest.raises(MmfuseError, match="test_speakers"):
        make_tone_dataset(tmp_path, speakers=4, test_speakers=4)


def test_a_model_needs_the_words_and_the_tone(tone_dir: Path) -> None:
    """On speakers it never heard, transcript + prosody beats the transcript alone and the
    prosody alone by a wide margin (each alone can know about half of the label)."""
    from mmfuse import MultimodalClassifier
    from mmfuse.pretrained import BACKBONES

    if BACKBONES["minilm"].missing() or BACKBONES["prosody"].missing():
        pytest.skip("needs the minilm and prosody encoders")
    accuracy = {}
    for name, columns in (("text", ["transcript"]), ("prosody", ["audio"]), ("fused", ["transcript", "audio"])):
        encoders = {"audio": "prosody"} if "audio" in columns else None
        est = MultimodalClassifier(features=columns, encoders=encoders, epochs=40, patience=10,
                                   num_threads=1, cache_dir=str(tone_dir / "cache"), verbose=False)
        est.fit(str(tone_dir / "train.csv"), target="emotion")
        accuracy[name] = est.evaluate(str(tone_dir / "test.csv"))["accuracy"]
    assert accuracy["fused"] >= max(accuracy["text"], accuracy["prosody"]) + 0.15, accuracy
