"""One modality's prepared inputs in shard files on disk, read by row without loading them.

A streamed ``fit`` (``mmfuse.data.record_store``) writes each chunk of prepared records as one
``.npy`` shard per modality. ``ShardedArray`` maps the shards read-only and copies out just the
rows asked for, so a batch costs its own bytes and nothing else. Indexing it with a row
selection (``x[keep]``, ``x[positions]``) gives another ``ShardedArray``: a view that reads
through to the same files, so splitting records into training and validation copies nothing.

Memory stays flat as rows grow: pages of a mapped file that a read touched count in the
process's resident set until the kernel reclaims them, which on a machine with free memory it
does not. Once reads may have touched ``RELEASE_BYTES`` of pages (a row touches at least one
page, however small it is), the maps are told the pages are no longer needed
(``madvise(MADV_DONTNEED)``): they stay in the page cache, so a later read is served from
memory without counting against the process.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

RELEASE_BYTES = 16 * 2**20


@dataclass
class ShardFiles:
    """The shard files of one modality, mapped read-only.

    Attributes:
        arrays: One (rows, *item) array per shard, backed by its map.
        starts: (S + 1,) the first row of each shard, then the total row count.
        maps: The memory maps behind ``arrays``.
        touched: Bytes of pages reads may have touched since the maps last released them.
    """

    arrays: list[np.ndarray]
    starts: np.ndarray
    maps: list[mmap.mmap] = field(default_factory=list)
    touched: int = 0

    @classmethod
    def open(cls, paths: list[Path]) -> ShardFiles:
        """Maps the ``.npy`` files ``paths`` (same dtype and item shape), in order."""
        arrays, maps = [], []
        for path in paths:
            array, handle = _map_npy(path)
            arrays.append(array)
            if handle is not None:
                maps.append(handle)
        starts = np.concatenate([[0], np.cumsum([len(a) for a in arrays])]).astype(np.int64)
        return cls(arrays, starts, maps)

    @property
    def rows(self) -> int:
        return int(self.starts[-1])

    def gather(self, rows: np.ndarray, item: tuple[int, ...], dtype: np.dtype[Any]) -> np.ndarray:
        """A new array holding the file rows ``rows``, in that order."""
        out = np.empty((len(rows), *item), dtype=dtype)
        shard = np.searchsorted(self.starts, rows, side="right") - 1
        for s in np.unique(shard):
            where = shard == s
            out[where] = self.arrays[s][rows[where] - self.starts[s]]
        self.touched += len(rows) * max(out.itemsize * int(np.prod(item)), mmap.PAGESIZE)
        if self.touched >= RELEASE_BYTES:
            self.release()
        return out

    def release(self) -> None:
        """Drops the mapped pages from this process's resident set (they stay cached)."""
        self.touched = 0
        for handle in self.maps:
            handle.madvise(mmap.MADV_DONTNEED)


class ShardedArray:
    """Rows of a modality's inputs on disk: ``len``, ``shape``, ``dtype`` like an array;
    ``take`` copies rows out; indexing with rows gives a view (see the module docstring).

    Args:
        files: The mapped shards.
        index: File row of each row of this array (None: every file row, in order).
    """

    def __init__(self, files: ShardFiles, index: np.ndarray | None = None) -> None:
        self.files = files
        self.index = index
        first = files.arrays[0] if files.arrays else np.zeros((0,), dtype=np.float32)
        self.dtype = first.dtype
        self.item: tuple[int, ...] = tuple(first.shape[1:])

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self), *self.item)

    @property
    def ndim(self) -> int:
        return 1 + len(self.item)

    def __len__(self) -> int:
        return self.files.rows if self.index is None else len(self.index)

    def __repr__(self) -> str:
        return f"ShardedArray(shape={self.shape}, dtype={self.dtype}, shards={len(self.files.arrays)})"

    def __getitem__(self, key: Any) -> ShardedArray:
        """The rows ``key`` selects (a boolean mask or positions) as a view on the same files."""
        positions = np.arange(len(self))[key if isinstance(key, slice) else np.asarray(key)]
        return ShardedArray(self.files, self._file_rows(positions))

    def take(self, positions: np.ndarray | Any) -> np.ndarray:
        """A new array with the rows at ``positions`` (in that order)."""
        return self.files.gather(self._file_rows(np.asarray(positions, dtype=np.int64)), self.item, self.dtype)

    def chunks(self, rows: int = 8192) -> Iterator[np.ndarray]:
        """Every row in order, ``rows`` at a time."""
        for start in range(0, len(self), rows):
            yield self.take(np.arange(start, min(start + rows, len(self))))

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        """Every row in memory (what NumPy functions given this array see)."""
        whole = self.take(np.arange(len(self)))
        return whole if dtype is None else whole.astype(dtype)

    def _file_rows(self, positions: np.ndarray) -> np.ndarray:
        return positions.astype(np.int64) if self.index is None else self.index[positions]


def _map_npy(path: Path) -> tuple[np.ndarray, mmap.mmap | None]:
    """The array of a ``.npy`` file, backed by a read-only map (an empty file is not mapped)."""
    with open(path, "rb") as handle:
        version = np.lib.format.read_magic(handle)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(handle)
        offset = handle.tell()
        count = int(np.prod(shape))
        if fortran:
            raise ValueError(f"{path}: a Fortran-ordered array; shards are written C-ordered")
        if count == 0:
            return np.zeros(shape, dtype=dtype), None
        mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    return np.frombuffer(mapped, dtype=dtype, count=count, offset=offset).reshape(shape), mapped
