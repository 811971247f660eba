"""Cell helpers: what counts as empty, text checks, paths, embedding widths."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mmfuse.data.cells import (
    as_text,
    checked_cell,
    checked_dim,
    checked_text,
    is_empty,
    resolve_path,
    valid_texts,
)
from mmfuse.errors import DecodeError


@pytest.mark.parametrize("value", [None, math.nan, "", "   \t"])
def test_empty_cells(value: object) -> None:
    assert is_empty(value)


@pytest.mark.parametrize("value", [0, 0.0, "0", " a ", False])
def test_cells_with_a_value(value: object) -> None:
    assert not is_empty(value)


def test_text_is_normalised_and_bad_bytes_are_refused() -> None:
    assert as_text(12) == "12"
    assert checked_text("Cafe\u0301") == "Caf\u00e9"  # NFC: one code point for é
    bad = b"ok \xff".decode("utf-8", "surrogateescape")
    with pytest.raises(DecodeError, match="not valid UTF-8"):
        checked_text(bad)


def test_paths_resolve_against_the_table_folder(tmp_path: Path) -> None:
    assert resolve_path(" images/a.png ", tmp_path) == tmp_path / "images/a.png"
    assert resolve_path("/abs/a.png", tmp_path) == Path("/abs/a.png")


def test_embedding_width_is_checked() -> None:
    v = np.zeros(3, np.float32)
    assert checked_dim(v, 3) is v
    with pytest.raises(DecodeError, match="embedding has 3 values; expected 4"):
        checked_dim(v, 4)


def test_checked_cell_decides_empty_text_and_embedding_cells(tmp_path: Path) -> None:
    assert checked_cell("  ", "image", tmp_path) is None
    assert checked_cell(None, "text", tmp_path) is None
    assert checked_cell("Cafe\u0301", "text", tmp_path) == "Caf\u00e9"
    assert checked_cell("[1, 2]", "embedding", tmp_path) == "[1, 2]"
    bad = b"caf\xe9 \xff\xfe".decode("utf-8", "surrogateescape")
    with pytest.raises(DecodeError) as err:
        checked_cell(bad, "text", tmp_path)
    assert str(err.value) == (
        "the text is not valid UTF-8 (byte(s) 0xe9 0xff 0xfe at character 3); save the file as "
        "UTF-8 (it looks like Latin-1 or another legacy encoding)"
    )


def test_checked_cell_refuses_urls_missing_files_and_folders(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(b"x")
    (tmp_path / "frames").mkdir()
    assert checked_cell(" a.png ", "image", tmp_path) == tmp_path / "a.png"
    assert checked_cell("frames", "video", tmp_path) == tmp_path / "frames"  # a frame folder
    assert checked_cell("gone.png", "image", tmp_path, missing_files="missing") is None
    url = r"^'https://example.invalid/a.png' is a URL; mmfuse reads local files only"
    with pytest.raises(DecodeError, match=url):
        checked_cell("https://example.invalid/a.png", "image", tmp_path)
    with pytest.raises(DecodeError, match=f"^file not found: {tmp_path / 'gone.wav'}; fix the"):
        checked_cell("gone.wav", "audio", tmp_path)
    with pytest.raises(DecodeError, match=f"^{tmp_path / 'frames'} is a folder, not an audio file"):
        checked_cell("frames", "audio", tmp_path)
    with pytest.raises(DecodeError, match="^cannot access image file"):
        checked_cell("x" * 5000 + ".png", "image", tmp_path)  # longer than any file name


def test_a_video_without_sound_is_a_missing_audio_track(media, tmp_path: Path) -> None:
    silent, loud = media.mp4("silent.mp4"), media.mp4("loud.mp4", with_audio=True)
    assert checked_cell(silent, "video", tmp_path, audio_track=True) is None
    assert checked_cell(loud, "video", tmp_path, audio_track=True) == tmp_path / loud


def test_valid_texts_leave_out_empty_and_undecodable_cells() -> None:
    bad = b"\xff".decode("utf-8", "surrogateescape")
    assert list(valid_texts(["a", None, " ", bad, 3])) == ["a", "3"]


class _ZeroExtractor:
    """A stand-in frozen network: zeros of the right width."""

    fingerprint = "zeros"
    batch_size = 4

    def __init__(self, dim: int) -> None:
        self.dim = dim

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return np.zeros((len(batch), self.dim), np.float32)


def test_every_encoder_path_rejects_the_same_cells_the_same_way(media, tmp_path: Path) -> None:
    from mmfuse.data.preprocess import (
        FeatureSource,
        PreprocessConfig,
        Preprocessor,
        PretrainedInput,
    )
    from mmfuse.data.readers import read_table
    from mmfuse.data.schema import infer_schema
    from mmfuse.pretrained import BACKBONES

    if BACKBONES["minilm"].missing():
        pytest.skip("the MiniLM tokenizer is not installed")
    n = 8
    frame = pd.DataFrame(
        {
            "photo": [media.png(f"img/{i}.png", level=20 * i) for i in range(n)],
            "note": [f"note {i} says something" for i in range(n)],
            "label": ["yes", "no"] * (n // 2),
        }
    )
    (tmp_path / "img" / "dir.png").mkdir()
    (tmp_path / "img" / "bad.png").write_bytes(b"not a picture")
    bad = ["http://example.invalid/a.png", "img/gone.png", "img/dir.png", "img/bad.png"]
    frame.loc[1:4, "photo"] = bad  # a URL, a missing file, a folder, a corrupt file
    frame.loc[6, "note"] = "MARKER"
    frame.to_csv(tmp_path / "data.csv", index=False)
    path = tmp_path / "data.csv"
    path.write_bytes(path.read_bytes().replace(b"MARKER", b"caf\xe9"))
    table = read_table(path)
    schema = infer_schema(table.df, "label", "note=text", base_dir=table.base_dir)
    config = PreprocessConfig(image_size=8, text_max_length=6)
    plans = {
        "image": PretrainedInput("efficientnet-lite0", "imagenet-224", True, 5),
        "text": PretrainedInput("minilm", "minilm-wordpiece-128", True, 3),
    }

    def rejected(frozen: bool | None) -> list[tuple[int, str, str]]:
        pretrained = {} if frozen is None else {
            "photo": PretrainedInput(**{**vars(plans["image"]), "frozen": frozen}),
            "note": PretrainedInput(**{**vars(plans["text"]), "frozen": frozen}),
        }
        extractors = {"photo": _ZeroExtractor(5), "note": _ZeroExtractor(3)} if frozen else {}
        features = FeatureSource(extractors)
        pre = Preprocessor(schema, config, "classification", pretrained, features).fit(table)
        enc = pre.transform(table, on_bad_record="skip", num_threads=1, verbose=False)
        return [(r.row, r.column, r.reason) for r in enc.rejected]

    scratch = rejected(None)
    assert [(row, column) for row, column, _ in scratch] == [
        (1, "photo"), (2, "photo"), (3, "photo"), (4, "photo"), (6, "note")
    ]  # fmt: skip
    assert rejected(False) == scratch  # fine-tuned pretrained encoders
    assert rejected(True) == scratch  # frozen pretrained features
