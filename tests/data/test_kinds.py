"""Tests for mmfuse.data.kinds: processors looked up by kind, the frozen-feature source given at
construction, what is stored, and transform outputs equal to those of the code before them.

The recorded values (sums, masks, first values) were computed on the same tiny table by the
Preprocessor as it was before the kind processors replaced its ``elif`` chain.
"""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mmfuse._registry import package_modules
from mmfuse.data.kinds import FROZEN, PREPARED, PROCESSORS, list_processors, processor_name
from mmfuse.data.kinds.base import Modality, modalities_of
from mmfuse.data.preprocess import FeatureSource, PreprocessConfig, Preprocessor, PretrainedInput
from mmfuse.data.readers import Table, read_table
from mmfuse.data.schema import Schema, infer_schema
from mmfuse.errors import MmfuseError
from mmfuse.types import MODALITY_KINDS

CONFIG = PreprocessConfig(
    image_size=8, text_max_length=6, n_mels=8, audio_frames=10, video_frames=2, video_size=8
)
IMAGE = PretrainedInput("efficientnet-lite0", "imagenet-224", True, 5)
FRAMES = PretrainedInput("efficientnet-lite0", "imagenet-frames-224", True, 5)


@pytest.fixture
def mixed(media, tmp_path: Path) -> Table:
    """Six records of every kind, some cells empty; videos 0-3 carry an audio track."""
    n = 6
    frame = pd.DataFrame({
        "photo": [media.png(f"img/{i}.png", level=40 * i) for i in range(n)],
        "note": ["good thing", "bad thing", "", "good good", "very bad", "ok then"],
        "vec": ["[0.1, 0.2, 0.3]", "[1, 2, 3]", "[0.5, -1, 2]", "[0,0,0]", None, "[9, 8, 7]"],
        "snd": [media.wav(f"snd/{i}.wav", freq=200 + 100 * i) for i in range(n)],
        "clip": [media.mp4(f"vid/{i}.mp4", with_audio=i < 4) for i in range(n)],
        "price": [1.0, 2.0, None, 4.0, 5.0, 6.0],
        "colour": ["red", "blue", "red", None, "blue", "red"],
        "label": ["yes", "no"] * 3,
    })  # fmt: skip
    frame.loc[1, "photo"] = None
    frame.loc[5, "snd"] = None
    frame.to_csv(tmp_path / "data.csv", index=False)
    return read_table(tmp_path / "data.csv")


class _FakeNetwork:
    """A stand-in frozen network whose features depend on every input value."""

    batch_size = 2

    def __init__(self, dim: int, fingerprint: str) -> None:
        self.dim, self.fingerprint = dim, fingerprint

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        flat = batch.reshape(len(batch), -1).astype(np.float64)
        features = np.outer(flat.mean(1), np.arange(1, self.dim + 1)) + flat.std(1)[:, None]
        return features.astype(np.float32)


def _corrupt(modality: str, value: object, rng: np.random.Generator) -> object:
    if isinstance(value, str):
        return value + " bad " + str(rng.integers(9))
    return np.asarray(value) * 0.5 + rng.normal(0, 0.01, np.shape(value)).astype(np.float32)


def _fit(
    table: Table,
    pretrained: dict[str, PretrainedInput] | None = None,
    features: FeatureSource | None = None,
) -> Preprocessor:
    schema = infer_schema(table.df, "label", "note=text", base_dir=table.base_dir)
    return Preprocessor(schema, CONFIG, "classification", pretrained, features).fit(table)


def _sums(pre: Preprocessor, table: Table, **kw: object) -> dict[str, float]:
    enc = pre.transform(table, num_threads=2, verbose=False, **kw)
    return {m: float(x.astype(np.float64).sum()) for m, x in enc.inputs.items()}


# --------------------------------------------------------------------------- registry
def test_every_modality_kind_and_pretrained_input_has_a_processor() -> None:
    assert list_processors() == sorted({*MODALITY_KINDS, PREPARED, FROZEN})
    with pytest.raises(KeyError, match="unknown kind processor 'smell'; choose one of: audio, "):
        PROCESSORS.get("smell")


def test_every_processor_class_in_the_package_is_registered() -> None:
    """A new kind is one new file: discovery finds its class, and none is left out."""
    registered = {PROCESSORS.get(name) for name in list_processors()}
    defined = [
        cls
        for module in package_modules("mmfuse.data.kinds")
        for _, cls in inspect.getmembers(importlib.import_module(module), inspect.isclass)
        if cls.__module__ == module and cls.__name__.endswith("Kind")
    ]
    assert len(defined) == len(registered) and set(defined) == registered


def test_the_processor_follows_the_kind_and_the_pretrained_input() -> None:
    def photo(pretrained: PretrainedInput | None = None) -> Modality:
        return Modality("photo", "image", {"photo": "image"}, pretrained=pretrained)

    tuned = PretrainedInput(IMAGE.backbone, IMAGE.preparation, False, IMAGE.dim)
    assert processor_name(photo()) == "image"
    assert processor_name(photo(IMAGE)) == FROZEN
    assert processor_name(photo(tuned)) == PREPARED


def test_modalities_know_their_columns(mixed: Table) -> None:
    schema = infer_schema(mixed.df, "label", "note=text", base_dir=mixed.base_dir)
    mods = modalities_of(schema, {"photo": IMAGE})
    assert list(mods) == list(schema.modalities())
    assert mods["tabular"].columns_of("numeric") == ["price"]
    assert mods["tabular"].columns_of("categorical") == ["colour"]
    track = mods["clip_audio"]
    assert (track.column, track.kind, track.cell_kind) == ("clip", "audio", "video")
    assert track.audio_track and not mods["snd"].audio_track
    assert mods["photo"].pretrained == IMAGE and mods["note"].pretrained is None


# ------------------------------------------------------------- same output as before
def test_transform_of_every_kind_is_unchanged(mixed: Table) -> None:
    pre = _fit(mixed)
    enc = pre.transform(mixed, num_threads=2, verbose=False)
    assert {m: (x.shape, x.dtype.name) for m, x in enc.inputs.items()} == {
        "clip": ((6, 2, 3, 8, 8), "float32"), "clip_audio": ((6, 8, 10), "float32"),
        "note": ((6, 6), "int64"), "photo": ((6, 3, 8, 8), "float32"),
        "snd": ((6, 8, 10), "float32"), "tabular": ((6, 2), "float32"),
        "vec": ((6, 3), "float32"),
    }  # fmt: skip
    assert {m: v.astype(int).tolist() for m, v in enc.mask.items()} == {
        "clip": [1, 1, 1, 1, 1, 1], "clip_audio": [1, 1, 1, 1, 0, 0], "note": [1, 1, 0, 1, 1, 1],
        "photo": [1, 0, 1, 1, 1, 1], "snd": [1, 1, 1, 1, 1, 0], "tabular": [1, 1, 1, 1, 1, 1],
        "vec": [1, 1, 1, 1, 0, 1],
    }  # fmt: skip
    assert enc.inputs["note"][:, :3].tolist() == [
        [2, 4, 0], [3, 4, 0], [0, 0, 0], [2, 2, 0], [7, 3, 0], [5, 6, 0]
    ]  # fmt: skip
    np.testing.assert_array_equal(enc.inputs["tabular"][:, 1], [2, 3, 2, 0, 3, 2])
    np.testing.assert_allclose(enc.inputs["tabular"][:2, 0], [-1.568929076, -0.98058069], rtol=1e-6)
    np.testing.assert_array_equal(enc.inputs["vec"][5], [9, 8, 7])
    assert _sums(pre, mixed) == pytest.approx({
        "clip": -2976.4796104431152, "clip_audio": -64.45025050640106, "note": 38.0,
        "photo": -179.37725138664246, "snd": -46.3559141382575, "tabular": 12.000000029802322,
        "vec": 32.10000001639128,
    }, rel=1e-6)  # fmt: skip


def test_corruption_reaches_every_kind_as_before(mixed: Table) -> None:
    assert _sums(_fit(mixed), mixed, corrupt=_corrupt) == pytest.approx({
        "clip": -3778.338256895542, "clip_audio": -0.9659228026866913, "note": 58.0,
        "photo": -1042.6694629713893, "snd": -0.6879259869456291, "tabular": 6.002648625522852,
        "vec": 16.039135981351137,
    }, rel=1e-6)  # fmt: skip


def test_pretrained_inputs_are_unchanged(mixed: Table) -> None:
    tuned = {m: PretrainedInput(p.backbone, p.preparation, False, p.dim)
             for m, p in {"photo": IMAGE, "clip": FRAMES}.items()}  # fmt: skip
    sums = _sums(_fit(mixed, tuned), mixed)
    assert sums["photo"] == pytest.approx(-140631.7650871277, rel=1e-6)
    assert sums["clip"] == pytest.approx(-9396933.17175293, rel=1e-6)
    networks = FeatureSource({"photo": _FakeNetwork(5, "p"), "clip": _FakeNetwork(5, "c")})
    frozen = _fit(mixed, {"photo": IMAGE, "clip": FRAMES}, networks)
    assert frozen.input_specs()["clip"].shape == (8, 5) and frozen.input_specs()["photo"].features
    sums = _sums(frozen, mixed)
    assert sums["photo"] == pytest.approx(10.532597430050373, rel=1e-6)
    assert sums["clip"] == pytest.approx(-814.1089582443237, rel=1e-6)


# -------------------------------------------------------------- the feature source
def test_the_feature_source_is_given_at_construction(mixed: Table, tmp_path: Path) -> None:
    from mmfuse.data.cache import FeatureCache

    network, cache = _FakeNetwork(5, "p"), FeatureCache(tmp_path / "cache")
    pre = _fit(mixed, {"photo": IMAGE}, FeatureSource({"photo": network}, cache))
    assert pre.extractors == {"photo": network} and pre.cache is cache
    first = pre.transform(mixed, verbose=False).inputs["photo"]
    again = pre.with_features(FeatureSource({"photo": _FakeNetwork(5, "p")}, cache))
    np.testing.assert_array_equal(again.transform(mixed, verbose=False).inputs["photo"], first)
    assert (cache.stats.misses, cache.stats.hits) == (5, 5)  # 6 photos, 1 empty; then all cached
    sub = pre.restrict(["photo", "note"])
    assert sub.extractors == {"photo": network} and sub.cache is cache
    assert pre.restrict(["note"]).extractors == {}


def test_a_frozen_modality_without_a_network_is_named(mixed: Table) -> None:
    pre = _fit(mixed, {"photo": IMAGE})
    message = "^no feature extractor for the frozen image modality 'photo'$"
    with pytest.raises(MmfuseError, match=message):
        pre.transform(mixed, verbose=False)


# ---------------------------------------------------------------------- storage
def test_stored_sections_keep_their_format(mixed: Table) -> None:
    stored = _fit(mixed).to_dict()
    assert list(stored) == [
        "config", "schema", "vocabularies", "tabular", "embedding_dims", "target", "pretrained"
    ]  # fmt: skip
    assert stored["vocabularies"] == {
        "note": {"tokens": ["<pad>", "<unk>", "good", "bad", "thing", "ok", "then", "very"]}
    }
    assert stored["embedding_dims"] == {"vec": 3}
    assert stored["tabular"]["numeric"] == ["price"] and stored["tabular"]["medians"] == [4.0]
    assert Preprocessor.from_dict(stored).to_dict() == stored


@pytest.mark.parametrize(
    ("kinds", "message"),
    [
        ({"note": "text"}, "text modality 'note' has no vocabulary yet: fit the preprocessor"),
        ({"vec": "embedding"}, "embedding modality 'vec' has no width yet: fit the preprocessor"),
        ({"price": "numeric"}, "the tabular modality has no statistics yet: fit the preprocessor"),
    ],
)
def test_unfitted_processors_say_what_is_missing(kinds: dict[str, str], message: str) -> None:
    with pytest.raises(MmfuseError, match=f"^{re.escape(message)}$"):
        Preprocessor(Schema(kinds), CONFIG).input_specs()
