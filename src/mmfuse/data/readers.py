"""Reading tables: CSV, Parquet, JSONL, a folder holding data.csv, or a pandas DataFrame.

Every reader keeps the original data-row number as the DataFrame index (0-based, header not
counted), so messages and ``rejected.csv`` point at the row the user sees. Lines that cannot
be parsed are returned as ``BadLine`` instead of being dropped silently.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from mmfuse.errors import MmfuseError

TABLE_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq", ".jsonl", ".ndjson", ".json")


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
        df, bad = _read_csv(path, "\t" if suffix == ".tsv" else ",")
    elif suffix in (".parquet", ".pq"):
        df, bad = _read_parquet(path), []
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
    """Reads a CSV, keeping rows with the wrong number of fields as BadLine entries."""
    good: list[list[str]] = []
    rows: list[int] = []
    bad: list[BadLine] = []
    with open(path, encoding="utf-8", errors="surrogateescape", newline="") as handle:
        reader = csv.reader(handle, delimiter=sep)
        try:
            header = next(reader)
        except StopIteration:
            raise MmfuseError(f"{path}: the file is empty (no header line)") from None
        except csv.Error as err:
            raise MmfuseError(f"{path}: cannot parse the header line: {err}") from None
        dupes = sorted({c for c in header if header.count(c) > 1})
        if dupes:
            raise MmfuseError(f"{path}: duplicate column names: {', '.join(dupes)}")
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
                good.append(fields)
                rows.append(row)
            row += 1
    df = pd.DataFrame(good, columns=header, index=pd.Index(rows, dtype="int64"), dtype=object)
    df = df.replace("", None)
    return _convert_types(df), bad


def _convert_types(df: pd.DataFrame) -> pd.DataFrame:
    """Turns all-numeric object columns into numbers (as read_csv would)."""
    out = {}
    for col in df.columns:
        values = df[col]
        converted = pd.to_numeric(values, errors="coerce")
        if values.notna().any() and converted.notna().sum() == values.notna().sum():
            out[col] = converted
        else:
            out[col] = values
    return pd.DataFrame(out, index=df.index)


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
    df = pd.DataFrame.from_records(records, index=pd.Index(rows, dtype="int64"))
    return df, bad
