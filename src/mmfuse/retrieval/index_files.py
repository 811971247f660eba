"""The files of a vector-index directory: names, header checks, and reading each file back
with its counts checked against ``index.json`` (see ``mmfuse.retrieval.index`` for the layout).
Nothing is unpickled; a file that disagrees with the header is reported as incomplete or
corrupted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmfuse._io import read_json
from mmfuse.errors import MmfuseError
from mmfuse.retrieval import ann

FORMAT = "mmfuse-vector-index"
VERSION = 1
KINDS = ("exact", *ann.APPROXIMATE_KINDS)
INDEX_FILE, VECTORS_FILE = "index.json", "vectors.npy"
METADATA_FILE, ANN_FILE = "metadata.parquet", "ann.faiss"
ROW_ID = "row_id"


def write_parquet(metadata: pd.DataFrame, path: Path) -> None:
    """Writes the metadata table; MmfuseError for columns Parquet cannot store."""
    import pyarrow as pa

    try:
        metadata.to_parquet(path, index=False)
    except (pa.ArrowException, ValueError, TypeError) as err:
        raise MmfuseError(f"metadata cannot be stored as Parquet: {err}") from err


def read_header(root: Path) -> dict[str, Any]:
    """``index.json`` of ``root``, checked: format, version, kind, counts and parameters."""
    if not root.is_dir():
        raise MmfuseError(f"index directory {root} does not exist")
    path = root / INDEX_FILE
    if not path.is_file():
        raise MmfuseError(f"{root} is not an mmfuse index (no {INDEX_FILE})")
    try:
        header = read_json(path)
    except (OSError, ValueError) as err:
        raise MmfuseError(f"{path} is not readable JSON: {err}") from err
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise MmfuseError(f"{path} is not an mmfuse index header (format != {FORMAT!r})")
    if header.get("version") != VERSION:
        raise MmfuseError(f"{path} has index version {header.get('version')!r}; expected {VERSION}")
    if header.get("kind") not in KINDS:
        raise MmfuseError(f"{path} has unknown kind {header.get('kind')!r}")
    missing = [key for key in ("count", "dim", "parameters", "info") if key not in header]
    parameter = ann.SEARCH_PARAMETER.get(header["kind"])
    if parameter is not None and parameter not in (header.get("parameters") or {}):
        missing.append(f"parameters.{parameter}")
    if missing:
        raise MmfuseError(f"{path} lacks {', '.join(missing)}")
    for key in ("count", "dim"):
        if isinstance(header[key], bool) or not isinstance(header[key], int) or header[key] < 0:
            raise MmfuseError(f"{path} has an invalid {key}: {header[key]!r}")
    return header


def read_vectors(path: Path, count: int, dim: int) -> np.ndarray:
    try:
        vectors = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as err:
        raise MmfuseError(f"cannot read {path}: {err}") from err
    if vectors.dtype != np.float32 or vectors.shape != (count, dim):
        raise MmfuseError(
            f"{path} holds {vectors.dtype} {vectors.shape} but {INDEX_FILE} says "
            f"float32 ({count}, {dim}); the index is incomplete or corrupted"
        )
    return vectors


def read_metadata(path: Path, count: int) -> pd.DataFrame:
    try:
        metadata = pd.read_parquet(path)
    except (OSError, ValueError) as err:
        raise MmfuseError(f"cannot read {path}: {err}") from err
    if len(metadata) != count:
        raise MmfuseError(
            f"{path} has {len(metadata)} rows but {INDEX_FILE} says {count}; "
            "the index is incomplete or corrupted"
        )
    if ROW_ID not in metadata.columns or not np.array_equal(metadata[ROW_ID], np.arange(count)):
        raise MmfuseError(f"{path} lacks a {ROW_ID!r} column numbering the rows 0..{count - 1}")
    return metadata


def read_ann(path: Path, kind: str, count: int, dim: int) -> Any:
    import faiss

    if not path.is_file():
        raise MmfuseError(f"{path} is missing; the index is incomplete")
    try:
        index = faiss.read_index(str(path))
    except RuntimeError as err:
        raise MmfuseError(f"cannot read {path}: {err}") from err
    expected = faiss.IndexIVFFlat if kind == "ivf" else faiss.IndexIDMap
    if not isinstance(index, expected):
        raise MmfuseError(
            f"{path} holds a {type(index).__name__}, not the {expected.__name__} of a {kind} index"
        )
    if index.ntotal != count or index.d != dim:
        raise MmfuseError(
            f"{path} holds {index.ntotal} vectors of dimension {index.d} but {INDEX_FILE} says "
            f"{count} of dimension {dim}; the index is incomplete or corrupted"
        )
    return index
