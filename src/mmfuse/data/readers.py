"""Reading tables: CSV, Parquet, JSONL, a folder holding data.csv, or a pandas DataFrame.

Every reader keeps the original data-row number as the DataFrame index (0-based, header not
counted), so messages and ``rejected.csv`` point at the row the user sees. Lines that cannot
be parsed are returned as ``BadLine`` instead of being dropped silently.
"""

from __future__ import annotations

import csv
import io
import json
from array import array
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mmfuse.errors import MmfuseError

TABLE_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq", ".jsonl", ".ndjson", ".json")
MAX_FIELD_CHARS = 256 * 2**20
"""Longest CSV cell read (the csv module's default, 128 KiB, refuses a long text cell)."""
SHARED_VALUES = 4096
"""Distinct values of a column up to which the reader keeps one string per value."""


@dataclass(frozen=True)
class BadLine:
    """A line of the data file that could not be parsed into a record."""

    row: int
    reason: str
    raw: str


@dataclass
class Table:
    """A table of records plus where it came from.

    Attributes:
        df: The records; the index is the 0-based data-row number in the source.
        base_dir: Folder against which relative media paths resolve.
        name: File name used in messages ("<DataFrame>" for in-memory tables).
        bad_lines: Lines that could not be parsed.
    """

    df: pd.DataFrame
    base_dir: Path
    name: str
    bad_lines: list[BadLine] = field(default_factory=list)


def read_table(source: str | Path | pd.DataFrame | Table, base_dir: str | Path | None = None) -> Table:
    """Reads a CSV / TSV / Parquet / JSONL file, a folder with data.csv, or wraps a DataFrame.

    Args:
        source: Path or DataFrame (an existing Table is returned unchanged).
        base_dir: Folder for relative media paths; defaults to the file's folder (or the
            current directory for a DataFrame).

    Raises:
        MmfuseError: The file does not exist, has an unknown suffix or cannot be read.
    """
    if isinstance(source, Table):
        return source
    if isinstance(source, pd.DataFrame):
        df = source.reset_index(drop=True)
        return Table(df, Path(base_dir or ".").resolve(), "<DataFrame>")
    path = Path(source)
    if path.is_dir():
        path = path / "data.csv"
    if not path.exists():
        raise MmfuseError(f"data file not found: {path}")
    suffix = path.suffix.lower()
    folder = Path(base_dir).resolve() if base_dir else path.resolve().parent
    if suffix in (".csv", ".tsv"):
        df, bad = _read_csv(path, "\t" if suffix == ".tsv" else sniff_delimiter(path))
    elif suffix in (".parquet", ".pq"):
        df, bad = _nested_cells_as_json(_read_parquet(path), path), []
    elif suffix in (".jsonl", ".ndjson", ".json"):
        df, bad = _read_jsonl(path)
    else:
        raise MmfuseError(
            f"{path}: unsupported table format {suffix!r}; use one of: {', '.join(TABLE_SUFFIXES)}"
        )
    if df.columns.duplicated().any():
        dupes = sorted(set(df.columns[df.columns.duplicated()]))
        raise MmfuseError(f"{path}: duplicate column names: {', '.join(map(str, dupes))}")
    df.columns = [str(c) for c in df.columns]
    return Table(df, folder, str(path), bad)


def _read_csv(path: Path, sep: str) -> tuple[pd.DataFrame, list[BadLine]]:
    """Reads a CSV, keeping rows with the wrong number of fields as BadLine entries.

    Memory is what a million rows ask for, not more: fields are collected column by column (no
    list per row), an empty field as None (no second pass replacing them), row numbers in an
    int64 array (not a Python int each), and each column's list is dropped as soon as it is an
    array. The cells' text remains: a Python string per distinct value in a column of few
    values (labels, categories), per non-empty cell in others (paths, texts)."""
    rows = array("q")
    bad: list[BadLine] = []
    # utf-8-sig: a byte-order mark (Excel's "CSV UTF-8") is not part of the first column's name
    with open(path, encoding="utf-8-sig", errors="surrogateescape", newline="") as handle:
        csv.field_size_limit(max(csv.field_size_limit(), MAX_FIELD_CHARS))
        reader = csv.reader(handle, delimiter=sep)
        try:
            header = next(reader)
        except StopIteration:
            raise MmfuseError(f"{path}: the file is empty (no header line)") from None
        except csv.Error as err:
            raise MmfuseError(f"{path}: cannot parse the header line: {err}") from None
        _check_header_text(path, header)
        dupes = sorted({c for c in header if header.count(c) > 1})
        if dupes:
            raise MmfuseError(f"{path}: duplicate column names: {', '.join(dupes)}")
        columns: list[list[str | None]] = [[] for _ in header]
        seen: list[dict[str, str] | None] = [{} for _ in header]
        row = 0
        while True:
            try:
                fields = next(reader)
            except StopIteration:
                break
            except csv.Error as err:
                bad.append(BadLine(row, f"cannot parse line {reader.line_num}: {err}", ""))
                row += 1
                continue
            if not fields:  # blank line
                continue
            if len(fields) != len(header):
                reason = f"expected {len(header)} fields, found {len(fields)} (line {reader.line_num})"
                bad.append(BadLine(row, reason, sep.join(fields)))
            else:
                for i, text in enumerate(fields):
                    columns[i].append(_shared(seen, i, text))
                rows.append(row)
            row += 1
    index = pd.Index(np.frombuffer(rows, dtype=np.int64).copy(), dtype="int64")
    values = {}
    for i, name in enumerate(header):
        typed = _typed(np.array(columns[i], dtype=object))
        values[name] = pd.Series(typed, index=index, dtype=typed.dtype, copy=False)  # text stays object
        columns[i] = []
    return pd.DataFrame(values, index=index, copy=False), bad


def _check_header_text(path: Path, header: list[str]) -> None:
    """Refuses column names with bytes that are not UTF-8 (a binary or compressed file named .csv)."""
    for number, name in enumerate(header, start=1):
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            shown = name.encode("utf-8", "surrogateescape")[:16]
            raise MmfuseError(
                f"{path}: the name of column {number} is not UTF-8 text ({shown!r}); is it a table "
                "file? Decompress it or save it as UTF-8 first"
            ) from None


DELIMITERS = ",;\t|"


def sniff_delimiter(path: Path, sample_bytes: int = 64 * 1024) -> str:
    """The field separator of a CSV: ``,`` when it splits the header into several fields and
    every sampled line into as many; else the first of ``; TAB |`` that does (European
    spreadsheets write ``;``); else ``,``."""
    with open(path, encoding="utf-8-sig", errors="surrogateescape", newline="") as handle:
        sample = handle.read(sample_bytes)
    if len(sample) == sample_bytes:
        sample = sample[: sample.rfind("\n") + 1] or sample  # drop a line cut off by the sample
    for sep in DELIMITERS:
        try:
            counts = {len(fields) for fields in csv.reader(io.StringIO(sample), delimiter=sep) if fields}
        except csv.Error:
            continue
        if len(counts) == 1 and counts.pop() > 1:
            return sep
    return ","


def _nested_cells_as_json(df: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Parquet list columns: a list of numbers becomes the JSON text of an ``embedding`` cell;
    other nested values (structs, maps, nested lists) are refused with the column's name.
    A Parquet column has one type, so its first value tells (text columns are not scanned)."""
    for col in df.columns:
        row = df[col].first_valid_index() if df[col].dtype == object else None
        if row is None:
            continue
        value = df[col].loc[row]
        if isinstance(value, (list, tuple, np.ndarray)):
            df[col] = [_vector_json(v, path, col, r) for r, v in df[col].items()]
        elif isinstance(value, dict):
            raise MmfuseError(_nested_message(path, col, int(row), "a struct or map"))
    return df


def _vector_json(value: object, path: Path, col: str, row: object) -> object:
    if not isinstance(value, (list, tuple, np.ndarray)):
        return value  # a missing cell, or a scalar the per-cell checks will name
    try:
        vector = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        vector = None
    if vector is None or vector.ndim != 1:
        raise MmfuseError(_nested_message(path, col, int(row), "a list that is not a flat list of numbers"))  # type: ignore[call-overload]
    return json.dumps(vector.tolist())


def _nested_message(path: Path, col: str, row: int, what: str) -> str:
    return (
        f"{path}, row {row}, column {col!r}: holds {what}; mmfuse reads numbers, text, media "
        "paths and flat lists of numbers (embeddings). Flatten it into plain columns, or drop it "
        "from the file"
    )


def _shared(seen: list[dict[str, str] | None], column: int, field: str) -> str | None:
    """The field's text (None when empty), one string object for each value repeated in a column
    (a label or category column of a million rows holds a few strings, not a million). A column
    with more than ``SHARED_VALUES`` distinct values (paths, texts) stops being looked up."""
    values = seen[column]
    if values is None or not field:
        return field or None
    shared = values.setdefault(field, field)
    if len(values) > SHARED_VALUES:
        seen[column] = None
    return shared


def _typed(values: np.ndarray) -> np.ndarray:
    """An object column as numbers when every present value is one (as read_csv would)."""
    converted = pd.to_numeric(values, errors="coerce")
    present = pd.notna(values)
    if present.any() and np.count_nonzero(pd.notna(converted)) == np.count_nonzero(present):
        return converted
    return values


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        df = pd.read_parquet(path)
    except (OSError, ValueError) as err:
        raise MmfuseError(f"{path}: cannot read Parquet file: {err}") from None
    return df.reset_index(drop=True)


def _read_jsonl(path: Path) -> tuple[pd.DataFrame, list[BadLine]]:
    records: list[dict[str, object]] = []
    rows: list[int] = []
    bad: list[BadLine] = []
    with open(path, encoding="utf-8", errors="surrogateescape") as handle:
        row = 0
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                bad.append(BadLine(row, f"invalid JSON on line {line_no}: {err.msg}", line.strip()))
            else:
                if isinstance(record, dict):
                    records.append(record)
                    rows.append(row)
                else:
                    reason = f"line {line_no} is not a JSON object"
                    bad.append(BadLine(row, reason, line.strip()))
            row += 1
    if bad and not records:
        raise MmfuseError(
            f"{path}: no line holds a record ({bad[0].reason}); mmfuse reads JSON Lines, one "
            "{...} object per line: write a JSON array of records one element per line"
        )
    _check_header_text(path, list(dict.fromkeys(key for record in records for key in record)))
    df = pd.DataFrame.from_records(records, index=pd.Index(rows, dtype="int64"))
    return df, bad
