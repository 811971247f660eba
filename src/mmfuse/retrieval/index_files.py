"""The files of a vector-index directory: names, header checks, and reading each file back
with its counts checked against ``index.json`` (see ``mmfuse.retrieval.index`` for the layout).
Nothing is unpickled; a file that disagrees with the header is reported as incomplete or
corrupted.
"""

from __future__ import annotations

import re
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


REBUILD = "rebuild it with `mmfuse index MODEL DATA --column COL --out DIR`"


def damaged(path: Path, what: str) -> MmfuseError:
    """The error for an index file that is not what ``VectorIndex.save`` wrote."""
    return MmfuseError(f"{path} {what}; the index is incomplete or corrupted: {REBUILD}")


def read_header(root: Path) -> dict[str, Any]:
    """``index.json`` of ``root``, checked: format, version, kind, counts and parameters."""
    if not root.exists():
        raise MmfuseError(f"index directory {root} does not exist")
    if not root.is_dir():
        raise MmfuseError(f"{root} is a file, not an index directory (`mmfuse index` writes one)")
    path = root / INDEX_FILE
    if not path.is_file():
        raise MmfuseError(f"{root} is not an mmfuse index (no {INDEX_FILE}); {REBUILD}")
    try:
        header = read_json(path)
    except (OSError, ValueError) as err:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise damaged(path, f"is not readable JSON ({err})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise damaged(path, f"is not an mmfuse index header (format != {FORMAT!r})")
    if header.get("version") != VERSION:
        raise MmfuseError(
            f"{path} has index version {header.get('version')!r}; expected {VERSION}: {REBUILD}"
        )
    if header.get("kind") not in KINDS:
        raise damaged(path, f"has unknown kind {header.get('kind')!r} (known: {', '.join(KINDS)})")
    missing = [key for key in ("count", "dim", "parameters", "info") if key not in header]
    for key in ("parameters", "info"):
        if key in header and not isinstance(header[key], dict):
            raise damaged(path, f"has {key} {header[key]!r}, which is not an object")
    search_parameter = ann.SEARCH_PARAMETER.get(header["kind"])
    required = [] if search_parameter is None else [search_parameter]
    if header["kind"] == "ivfpq":
        required.append("rerank_factor")  # every search reads it
    missing += [f"parameters.{p}" for p in required if p not in (header.get("parameters") or {})]
    if missing:
        raise damaged(path, f"lacks {', '.join(missing)}")
    for key in ("count", "dim"):
        if isinstance(header[key], bool) or not isinstance(header[key], int) or header[key] < 0:
            raise damaged(path, f"has an invalid {key}: {header[key]!r}")
    for parameter in required:
        value = header["parameters"][parameter]
        if not _positive_int(value):
            raise damaged(path, f"has an invalid parameters.{parameter}: {value!r}")
    return header


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def read_vectors(path: Path, count: int, dim: int) -> np.ndarray:
    """The (count, dim) float32 vectors, memory-mapped; the .npy header is checked before the
    data is touched, and a file of Python objects (a pickle) is refused unread."""
    _require_file(path)
    dtype, shape, offset = _npy_header(path)
    if dtype.hasobject:
        raise damaged(path, "holds Python objects (pickled data), which mmfuse never loads")
    if dtype != np.float32 or shape != (count, dim):
        raise damaged(path, f"holds {dtype} {shape} but {INDEX_FILE} says float32 ({count}, {dim})")
    needed = offset + count * dim * dtype.itemsize
    if path.stat().st_size < needed:
        raise damaged(path, f"is truncated ({path.stat().st_size} bytes; its header needs {needed})")
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as err:  # e.g. shorter than its header says: truncated
        raise damaged(path, f"cannot be read ({err})") from None


def _npy_header(path: Path) -> tuple[np.dtype, tuple[int, ...], int]:
    """dtype, shape and data offset from a .npy header (format 1.0 or 2.0), data unread."""
    from numpy.lib import format as npy

    readers = {(1, 0): npy.read_array_header_1_0, (2, 0): npy.read_array_header_2_0}
    try:
        with open(path, "rb") as handle:
            version = npy.read_magic(handle)
            if version not in readers:
                raise damaged(path, f"is a .npy file of format {version}, which mmfuse does not write")
            shape, _, dtype = readers[version](handle)
            offset = handle.tell()
    except ValueError as err:  # no magic string, or a malformed header
        raise damaged(path, f"is not a NumPy .npy file ({err})") from None
    return dtype, shape, offset


def _require_file(path: Path) -> None:
    if not path.exists():
        raise damaged(path, "is missing")
    if not path.is_file():
        raise damaged(path, "is not a regular file")


def read_metadata(path: Path, count: int) -> pd.DataFrame:
    """The metadata table (Parquet only: pandas' Parquet reader runs no code from the file)."""
    _require_file(path)
    try:
        metadata = pd.read_parquet(path)
    except (OSError, ValueError) as err:  # pyarrow's ArrowInvalid is a ValueError
        raise damaged(path, f"is not a readable Parquet file ({str(err).splitlines()[0]})") from None
    if len(metadata) != count:
        raise damaged(path, f"has {len(metadata)} rows but {INDEX_FILE} says {count}")
    if ROW_ID not in metadata.columns or not np.array_equal(metadata[ROW_ID], np.arange(count)):
        raise damaged(path, f"lacks a {ROW_ID!r} column numbering the rows 0..{count - 1}")
    return metadata


def read_ann(path: Path, kind: str, count: int, dim: int) -> Any:
    """The approximate index in ``ann.faiss`` (FAISS's own binary format, no pickle)."""
    import faiss

    _require_file(path)
    try:
        index = faiss.read_index(str(path))
    except RuntimeError as err:
        reason = re.sub(r"^Error in .*? at \S+:\d+: ", "", str(err).splitlines()[0])  # C++ location
        raise damaged(path, f"is not a readable FAISS index ({reason})") from None
    expected = {"ivf": faiss.IndexIVFFlat, "ivfpq": faiss.IndexIVFPQ}.get(kind, faiss.IndexIDMap)
    if not isinstance(index, expected):
        raise damaged(path, f"holds a {type(index).__name__}, not the {expected.__name__} of a {kind} index")
    if index.ntotal != count or index.d != dim:
        raise damaged(
            path,
            f"holds {index.ntotal} vectors of dimension {index.d} but {INDEX_FILE} says "
            f"{count} of dimension {dim}",
        )
    return index
