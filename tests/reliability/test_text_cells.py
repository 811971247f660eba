"""Battery, inline cells: non-UTF-8, huge, blank and NUL-holding text; broken embeddings.

Issue 11 item 5: one latin-1 cell crashed the default (pretrained) fit, because only the
from-scratch text path checked the bytes. Both paths now validate cells in one place, so the
message, the skip and predict's error column are the same for either.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from media_cases import (
    encoder_flags,
    check_bad_cell,
    check_good_cells,
    embedding_table,
    text_table,
)
from reliability_harness import FAST, expect_user_error, snapshot


ROW = 3
LATIN1 = "the text is not valid UTF-8"


def _latin1(raw: bytes) -> bytes:
    """Puts undecodable bytes (latin-1 'café' and a UTF-16 byte-order mark) into row 3's note."""
    assert raw.count(b"note number 3 is") == 1
    return raw.replace(b"note number 3 is", b"note \xff\xfe caf\xe9 3 is")


@pytest.fixture(params=["scratch", "pretrained"])
def encoders(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The fit flags of one text encoder path (pretrained: the MiniLM tokenizer and network)."""
    return encoder_flags(request.param, "minilm", monkeypatch)


def test_non_utf8_text_is_a_bad_record_on_every_path(
    cli, tmp_path: Path, encoders: list[str]
) -> None:
    model = check_bad_cell(
        cli, tmp_path, text_table(), "note", ROW, LATIN1, "0xff", "save the file as UTF-8",
        data_bytes=_latin1, fast=encoders,
    )
    data = tmp_path / "data" / "data.csv"
    out = tmp_path / "predictions.csv"
    where = f"row {ROW}, column 'note'"
    expect_user_error(cli("predict", model, data, "--out", out), str(data), where, LATIN1)
    result = cli("predict", model, data, "--out", out, "--on-bad-record", "skip")
    assert result.code == 0, result.err
    predictions = pd.read_csv(out, keep_default_na=False)
    assert predictions.loc[ROW, "prediction"] == ""
    assert predictions.loc[ROW, "error"].startswith(f"column 'note': {LATIN1}")
    assert (predictions.drop(index=ROW)["error"] == "").all()


def test_huge_blank_and_nul_text_cells_work(cli, tmp_path: Path, encoders: list[str]) -> None:
    frame = text_table()
    frame.loc[0, "note"] = "a very long note " * 62_000  # about 1 MB: the tokenizer truncates it
    frame.loc[1, "note"] = ""  # missing modality
    frame.loc[2, "note"] = "   \t "  # missing modality
    frame.loc[ROW, "note"] = "a note with a \x00 NUL byte"
    check_good_cells(cli, tmp_path, frame, fast=encoders)


BAD_EMBEDDINGS = {
    "wrong length": ("[0.1, 0.2, 0.3]", "embedding has 3 values; expected 4"),
    "non-numeric": ('[0.1, "x", 0.3, 0.4]', "must hold numbers"),
    "NaN": ("[0.1, NaN, 0.3, 0.4]", "non-finite values"),
    "not a vector": ("0.1 0.2 0.3 0.4", "neither a JSON list nor a .npy path"),
}


@pytest.mark.parametrize("kind", list(BAD_EMBEDDINGS))
def test_bad_embedding_is_a_bad_record(kind: str, cli, tmp_path: Path) -> None:
    value, needle = BAD_EMBEDDINGS[kind]
    frame = embedding_table()
    frame.loc[ROW, "vec"] = value
    check_bad_cell(cli, tmp_path, frame, "vec", ROW, needle)
