"""Bad input through the CLI: exit code 2, a message naming file, row and column, no
traceback; with ``--on-bad-record skip`` the fit succeeds and ``rejected.csv`` lists the rows.

Rows are 0-based data-row numbers (the header is not a row).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from mmfuse.cli.main import main

N = 24
FAST = ["--epochs", "1", "--dim", "8", "--threads", "1", "--quiet"]


def _frame(media) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "photo": [media.png(f"img/{i}.png", level=10 * i) for i in range(N)],
            "note": [f"note number {i} is {'good' if i % 2 else 'bad'}" for i in range(N)],
            "price": [str(float(i)) for i in range(N)],
            "label": ["yes", "no"] * (N // 2),
        }
    )


def _write(frame: pd.DataFrame, folder: Path) -> Path:
    path = folder / "data.csv"
    frame.to_csv(path, index=False)
    return path


def _patch_line(path: Path, row: int, old: bytes, new: bytes) -> None:
    """Replaces bytes in the line of data row ``row`` (line row + 2 of the file)."""
    lines = path.read_bytes().split(b"\n")
    assert old in lines[row + 1]
    lines[row + 1] = lines[row + 1].replace(old, new)
    path.write_bytes(b"\n".join(lines))


@dataclass(frozen=True)
class Case:
    """One kind of bad input in one record."""

    row: int
    column: str  # "" for a line that cannot be parsed at all
    reason: str  # part of the message
    damage: Callable[[pd.DataFrame, Path], None]  # edits the frame before it is written
    patch: tuple[bytes, bytes] | None = None  # raw bytes replaced in the row's line afterwards
    kinds: str | None = None


def _set(column: str, row: int, value: object) -> Callable[[pd.DataFrame, Path], None]:
    def damage(frame: pd.DataFrame, folder: Path) -> None:
        frame.loc[row, column] = value

    return damage


def _media_file(row: int, name: str, content: bytes) -> Callable[[pd.DataFrame, Path], None]:
    def damage(frame: pd.DataFrame, folder: Path) -> None:
        (folder / "img" / name).write_bytes(content)
        frame.loc[row, "photo"] = f"img/{name}"

    return damage


def _nothing(frame: pd.DataFrame, folder: Path) -> None:
    pass


CASES = {
    "missing media file": Case(
        3, "photo", "file not found: {folder}/img/gone.png", _set("photo", 3, "img/gone.png")
    ),
    "corrupt image": Case(
        4,
        "photo",
        "cannot decode image {folder}/img/bad.png",
        _media_file(4, "bad.png", b"\x89garbage" * 9),
    ),
    "zero-byte image": Case(
        5,
        "photo",
        "image file is empty (0 bytes): {folder}/img/zero.png",
        _media_file(5, "zero.png", b""),
    ),
    "wrong field count": Case(
        6, "", "expected 4 fields, found 5 (line 8)", _nothing, (b",yes", b",surplus,yes")
    ),
    "infinite number": Case(7, "price", "is not a finite number", _set("price", 7, "-inf")),
    "non-numeric text": Case(9, "price", "'cheap' is not a number", _set("price", 9, "cheap")),
    "missing target": Case(10, "label", "the target is missing", _set("label", 10, None)),
    "non-UTF-8 text": Case(
        11, "note", "the text is not valid UTF-8", _nothing, (b"number 11", b"\xff\xfe 11")
    ),
    "unsupported extension": Case(
        12,
        "photo",
        "unsupported image extension '.xyz'",
        _media_file(12, "x.xyz", b"abc"),
        kinds="photo=image",
    ),
}


def _build(case: Case, media, folder: Path) -> Path:
    frame = _frame(media)
    case.damage(frame, folder)
    path = _write(frame, folder)
    if case.patch is not None:
        _patch_line(path, case.row, *case.patch)
    return path


def _fit(path: Path, out: Path, *extra: str) -> list[str]:
    return ["fit", str(path), "--target", "label", "--out", str(out), *FAST, *extra]


@pytest.mark.parametrize("name", list(CASES))
def test_bad_record_stops_with_a_clear_message(
    name: str, media, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    case = CASES[name]
    path = _build(case, media, tmp_path)
    kinds = ["--kinds", case.kinds] if case.kinds else []
    assert main(_fit(path, tmp_path / "model", *kinds)) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.startswith(f"error: {path}: 1 bad value(s) in 1 record(s)")
    where = f"row {case.row}" + (f", column '{case.column}'" if case.column else "")
    assert where in err
    assert case.reason.format(folder=tmp_path) in err
    assert not (tmp_path / "model" / "model.safetensors").exists()


@pytest.mark.parametrize("name", list(CASES))
def test_bad_record_is_skipped_and_listed(
    name: str, media, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    case = CASES[name]
    path = _build(case, media, tmp_path)
    kinds = ["--kinds", case.kinds] if case.kinds else []
    out = tmp_path / "model"
    assert main(_fit(path, out, "--on-bad-record", "skip", *kinds)) == 0
    assert f"skipped 1 bad record(s): see {out / 'rejected.csv'}" in capsys.readouterr().out
    rejected = pd.read_csv(out / "rejected.csv", keep_default_na=False)
    assert list(rejected.columns) == ["file", "row", "column", "reason"]
    assert rejected["row"].tolist() == [case.row]
    assert rejected["column"].tolist() == [case.column]
    assert case.reason.format(folder=tmp_path) in rejected.loc[0, "reason"]


def test_every_bad_row_at_once(media, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    frame = _frame(media)
    for case in CASES.values():
        case.damage(frame, tmp_path)
    path = _write(frame, tmp_path)
    for case in CASES.values():
        if case.patch is not None:
            _patch_line(path, case.row, *case.patch)
    out = tmp_path / "model"
    assert main(_fit(path, out, "--kinds", "photo=image")) == 2
    err = capsys.readouterr().err
    assert f"{len(CASES)} bad value(s) in {len(CASES)} record(s)" in err and "Traceback" not in err
    assert main(_fit(path, out, "--kinds", "photo=image", "--on-bad-record", "skip")) == 0
    rejected = pd.read_csv(out / "rejected.csv", keep_default_na=False)
    assert rejected["row"].tolist() == sorted(c.row for c in CASES.values())
    by_row = dict(zip(rejected["row"], rejected["reason"], strict=True))
    for case in CASES.values():
        assert case.reason.format(folder=tmp_path) in by_row[case.row]
    metrics = pd.read_json(out / "metrics.json", typ="series")
    assert metrics["n_train"] + metrics["n_valid"] == N - len(CASES)
    assert metrics["n_rejected"] == len(CASES)


def test_missing_values_in_a_numeric_column_are_imputed(media, tmp_path: Path) -> None:
    frame = _frame(media)
    frame.loc[2, "price"] = "NaN"
    frame.loc[3, "price"] = None
    out = tmp_path / "model"
    assert main(_fit(_write(frame, tmp_path), out, "--on-bad-record", "skip")) == 0
    assert pd.read_csv(out / "rejected.csv").empty
    metrics = pd.read_json(out / "metrics.json", typ="series")
    assert metrics["n_train"] + metrics["n_valid"] == N


def test_missing_files_can_count_as_missing(media, tmp_path: Path) -> None:
    frame = _frame(media)
    frame.loc[3, "photo"] = "img/gone.png"
    out = tmp_path / "model"
    assert main(_fit(_write(frame, tmp_path), out, "--missing-files", "missing")) == 0
    metrics = pd.read_json(out / "metrics.json", typ="series")
    assert metrics["n_train"] + metrics["n_valid"] == N and metrics["n_rejected"] == 0


@pytest.mark.parametrize(
    ("edit", "args", "message"),
    [
        (
            None,
            ["--target", "lable"],
            "unknown target column 'lable'; the columns are: photo, note, price, label",
        ),
        (
            None,
            ["--target", "label", "--features", "photo,colour"],
            "unknown column 'colour'; the columns are: photo, note, price, label",
        ),
        (
            "one class",
            ["--target", "label"],
            "target column 'label' has 1 class (yes); classification needs at least two classes",
        ),
        (
            None,
            ["--target", "label", "--kinds", "photo=picture"],
            "unknown kind 'picture' for column 'photo'",
        ),
        (
            None,
            ["--target", "label", "--fusion", "tensorial"],
            "unknown fusion 'tensorial'; choose one of: attention",
        ),
        (
            None,
            ["--target", "label", "--encoder", "text=bert"],
            "unknown text encoder 'bert'; choose one of: gru",
        ),
    ],
)
def test_table_level_errors(
    edit: str | None,
    args: list[str],
    message: str,
    media,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    frame = _frame(media)
    if edit == "one class":
        frame["label"] = "yes"
    path = _write(frame, tmp_path)
    assert main(["fit", str(path), "--out", str(tmp_path / "model"), *FAST, *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    if "column" in message:
        assert str(path) in err  # the file is named too


def test_missing_data_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_fit(tmp_path / "nope.csv", tmp_path / "model")) == 2
    assert f"data file not found: {tmp_path / 'nope.csv'}" in capsys.readouterr().err
