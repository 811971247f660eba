"""Checking what a VectorIndex is given: vectors, metadata and info, and why a small build is
exact instead of approximate."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from mmfuse.errors import MmfuseError
from mmfuse.retrieval.index_files import ROW_ID

MIN_EVAL_QUERIES = 50
MIN_MEASURED_ROWS = 2 * MIN_EVAL_QUERIES  # a build holds out at most half of its rows

def fallback_reason(kind: str, count: int) -> str:
    """Why a build of ``count`` rows is exact although ``kind`` was asked for."""
    return (
        f"{count} rows are too few to measure the recall of an approximate ({kind}) index "
        f"(measuring holds out {MIN_EVAL_QUERIES} rows as queries and needs at least "
        f"{MIN_MEASURED_ROWS} rows), so the index uses exact search (recall 1.0, and as fast at "
        f"this size); it stays exact when rows are appended: build it again as an approximate "
        f"index once the collection has at least {MIN_MEASURED_ROWS} rows"
    )


def as_vectors(values: np.ndarray, dim: int | None, name: str) -> np.ndarray:
    """(N, D) float32 C-contiguous finite vectors; D must equal ``dim`` when given."""
    array = np.asarray(values)
    if array.ndim != 2:
        raise MmfuseError(f"{name} must be a 2-D (N, D) array; got shape {array.shape}")
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise MmfuseError(f"{name} must hold numbers; got dtype {array.dtype}")
    if dim is not None and array.shape[1] != dim:
        raise MmfuseError(
            f"{name} have dimension {array.shape[1]} but the index has dimension {dim}"
        )
    if dim is None and array.shape[1] == 0:
        raise MmfuseError(f"{name} have dimension 0; need at least one column")
    array = np.ascontiguousarray(array, dtype=np.float32)
    bad = ~np.isfinite(array).all(1)
    if bad.any():
        raise MmfuseError(
            f"{name} hold non-finite values (NaN or inf) in {int(bad.sum())} rows, "
            f"first row {int(np.flatnonzero(bad)[0])}"
        )
    return array


def optional_vectors(values: np.ndarray | None, dim: int, name: str) -> np.ndarray | None:
    if values is None:
        return None
    array = as_vectors(values, dim, name)
    if len(array) == 0:
        raise MmfuseError(f"{name} is empty; pass at least one query or None")
    return array


def metadata_for(
    metadata: pd.DataFrame | None, count: int, start: int, columns: list[str] | None
) -> pd.DataFrame:
    """The caller's metadata with a ``row_id`` column (start..start+count-1) in front."""
    frame = pd.DataFrame(index=range(count)) if metadata is None else metadata
    if not isinstance(frame, pd.DataFrame):
        raise MmfuseError(f"metadata must be a pandas DataFrame; got {type(frame).__name__}")
    if len(frame) != count:
        raise MmfuseError(f"metadata has {len(frame)} rows but there are {count} vectors")
    if ROW_ID in frame.columns:
        raise MmfuseError(f"metadata may not have a {ROW_ID!r} column; the index adds it")
    names = [c for c in frame.columns if not isinstance(c, str)]
    if names:
        raise MmfuseError(f"metadata column names must be strings; got {names[0]!r}")
    if columns is not None and sorted(frame.columns) != sorted(columns):
        raise MmfuseError(
            f"metadata columns {sorted(frame.columns)} differ from the index's {sorted(columns)}"
        )
    frame = frame.reset_index(drop=True)
    frame = frame if columns is None else frame[columns]
    frame.insert(0, ROW_ID, np.arange(start, start + count, dtype=np.int64))
    return frame


def check_info(info: dict[str, Any] | None) -> dict[str, Any]:
    info = {} if info is None else info
    if not isinstance(info, dict):
        raise MmfuseError(f"info must be a dict; got {type(info).__name__}")
    try:
        return json.loads(json.dumps(info))
    except (TypeError, ValueError) as err:
        raise MmfuseError(f"info must be JSON-serialisable: {err}") from err
