"""One modality's prepared inputs in shard files on disk, read by row without loading them.

A streamed ``fit`` (``mmfuse.data.record_store``) writes a modality's prepared records as raw
rows into shard files. ``ShardedArray`` reads just the rows asked for, straight into the
batch's array (``os.preadv``: one call per run of consecutive rows), so a batch costs its own
bytes and nothing else. Indexing it with a row selection (``x[keep]``, ``x[positions]``) gives
another ``ShardedArray``: a view that reads through to the same files, so splitting records
into training and validation copies nothing.

Why not memory maps: pages of a mapped file that reads touch count in the process's resident
set, and the kernel maps the neighbours of every faulting page too, so random batches over a
mapped store keep all of it resident (measured: a 73 MB store raised the peak by 73 MB). Read
with ``preadv``, the data pass through the page cache, which the kernel shares and reclaims,
and the process holds only the batch.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np


class ShardFiles:
    """The raw shard files of one modality: rows of ``item`` shape and ``dtype``, back to back.

    Args:
        paths: The shard files, in row order.
        rows: Rows in each file.
        dtype: Element type.
        item: Shape of one row.
    """

    def __init__(self, paths: list[Path], rows: list[int], dtype: np.dtype[Any], item: tuple[int, ...]) -> None:
        self.paths = list(paths)
        self.starts = np.concatenate([[0], np.cumsum(rows)]).astype(np.int64)
        self.dtype = np.dtype(dtype)
        self.item = tuple(item)
        self.row_bytes = self.dtype.itemsize * int(np.prod(self.item))
        self._fds: dict[int, int] = {}

    @property
    def rows(self) -> int:
        return int(self.starts[-1])

    def gather(self, rows: np.ndarray) -> np.ndarray:
        """A new array holding the file rows ``rows``, in that order."""
        out = np.empty((len(rows), *self.item), dtype=self.dtype)
        if len(rows) == 0 or self.row_bytes == 0:
            return out
        raw = out.reshape(len(rows), -1).view(np.uint8)
        shard = np.searchsorted(self.starts, rows, side="right") - 1
        # runs of consecutive rows within one shard: one read each
        breaks = np.flatnonzero((np.diff(rows) != 1) | (np.diff(shard) != 0)) + 1
        for begin, end in zip(np.concatenate([[0], breaks]), np.concatenate([breaks, [len(rows)]])):
            s = int(shard[begin])
            offset = int(rows[begin] - self.starts[s]) * self.row_bytes
            target = memoryview(raw[begin:end].reshape(-1))
            if os.preadv(self._fd(s), [target], offset) != target.nbytes:
                raise OSError(f"{self.paths[s]}: shorter than its records (a truncated record store)")
        return out

    def _fd(self, shard: int) -> int:
        if shard not in self._fds:
            self._fds[shard] = os.open(self.paths[shard], os.O_RDONLY)
        return self._fds[shard]

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    def __del__(self) -> None:
        self.close()


class ShardedArray:
    """Rows of a modality's inputs on disk: ``len``, ``shape``, ``dtype`` like an array;
    ``take`` copies rows out; indexing with rows gives a view (see the module docstring).

    Args:
        files: The shard files.
        index: File row of each row of this array (None: every file row, in order).
    """

    def __init__(self, files: ShardFiles, index: np.ndarray | None = None) -> None:
        self.files = files
        self.index = index
        self.dtype = files.dtype
        self.item = files.item

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self), *self.item)

    @property
    def ndim(self) -> int:
        return 1 + len(self.item)

    def __len__(self) -> int:
        return self.files.rows if self.index is None else len(self.index)

    def __repr__(self) -> str:
        return f"ShardedArray(shape={self.shape}, dtype={self.dtype}, shards={len(self.files.paths)})"

    def __getitem__(self, key: Any) -> ShardedArray:
        """The rows ``key`` selects (a boolean mask, positions or a slice) as a view on the same files."""
        positions = np.arange(len(self))[key if isinstance(key, slice) else np.asarray(key)]
        return ShardedArray(self.files, self._file_rows(positions))

    def take(self, positions: np.ndarray | Any) -> np.ndarray:
        """A new array with the rows at ``positions`` (in that order)."""
        return self.files.gather(self._file_rows(np.asarray(positions, dtype=np.int64)))

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
