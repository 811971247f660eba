"""Exact inner-product search over vectors that need not fit in memory.

An IVF-PQ index (``VectorIndex(kind="ivfpq")``) keeps only PQ codes in memory; its full
vectors stay where they are, normally the index directory's ``vectors.npy`` opened as a
memory map. ``ChunkedFlatIP`` holds them and answers what ``faiss.IndexFlatIP`` answers for
the other kinds (``d``, ``ntotal``, ``add``, ``search``), scanning the rows in chunks so that
memory stays bounded by the chunk, not the collection, plus ``rows`` (the re-ranking reads)
and ``save`` (a streamed write, after which the rows are read from the file written).

Rows arrive as blocks: the array given at build (a read-only memory map is kept as it is,
anything else is copied), then one block per ``add``; ``save`` merges them into one file.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from mmfuse._io import atomic_open
from mmfuse.errors import MmfuseError
from mmfuse.retrieval.index_inputs import as_vectors

SCAN_FLOATS = 2**24  # scores computed per chunk of a scan (64 MiB of float32)
MIN_SCAN_ROWS, MAX_SCAN_ROWS = 1024, 262144
WRITE_ROWS = 65536


def kept_vectors(values: np.ndarray, dim: int | None, name: str) -> np.ndarray:
    """(N, D) float32 finite vectors for a ``ChunkedFlatIP`` to keep.

    A read-only C-contiguous float32 memory map (``np.load(path, mmap_mode="r")``) is kept as
    it is and checked a chunk at a time, so a collection larger than memory is never loaded;
    anything else is checked by ``as_vectors`` and copied, so later writes by the caller
    cannot change the index.
    """
    if not _read_only_map(values):
        x = as_vectors(values, dim, name)
        return x.copy() if np.may_share_memory(x, values) else x
    as_vectors(values[:0], dim, name)  # the shape and dtype checks, no data read
    for start in range(0, len(values), WRITE_ROWS):
        bad = np.flatnonzero(~np.isfinite(values[start : start + WRITE_ROWS]).all(1))
        if bad.size:
            raise MmfuseError(
                f"{name} hold non-finite values (NaN or inf), first row {start + int(bad[0])}"
            )
    return values


def _read_only_map(values: object) -> bool:
    return (
        isinstance(values, np.memmap)
        and values.ndim == 2
        and values.dtype == np.float32
        and values.flags.c_contiguous
        and not values.flags.writeable
    )


class ChunkedFlatIP:
    """Exact inner-product search by scanning (N, D) float32 rows in chunks.

    Attributes:
        d: The dimension D.
        ntotal: The row count N.
    """

    def __init__(self, vectors: np.ndarray) -> None:
        """Keeps ``vectors`` (from ``kept_vectors``, or a memory map read by ``load``)."""
        self.d = int(vectors.shape[1])
        self._blocks = [vectors]
        self._starts = [0]
        self.ntotal = len(vectors)

    def add(self, vectors: np.ndarray) -> None:
        """Appends rows (from ``kept_vectors``) as a new block."""
        self._blocks.append(vectors)
        self._starts.append(self.ntotal)
        self.ntotal += len(vectors)

    def rows(self, ids: np.ndarray) -> np.ndarray:
        """(U, D) rows at ``ids`` (sorted unique positions), read in position order."""
        if len(self._blocks) == 1:
            return np.asarray(self._blocks[0][ids])
        out = np.empty((len(ids), self.d), dtype=np.float32)
        block_of = np.searchsorted(self._starts, ids, side="right") - 1
        for number, (start, block) in enumerate(zip(self._starts, self._blocks)):
            chosen = block_of == number
            out[chosen] = block[ids[chosen] - start]
        return out

    def array(self) -> np.ndarray:
        """Every row as one array: the block itself when there is one (no copy), else a
        concatenation in memory."""
        return self._blocks[0] if len(self._blocks) == 1 else np.concatenate(self._blocks)

    def chunks(self, size: int) -> Iterator[tuple[int, np.ndarray]]:
        """(first position, rows) of consecutive chunks of at most ``size`` rows."""
        for start, block in zip(self._starts, self._blocks):
            for offset in range(0, len(block), size):
                yield start + offset, block[offset : offset + size]

    def search(
        self, queries: np.ndarray, k: int, excluded: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(scores, positions), each (Q, k), of the k best rows for each query.

        Ties are ordered by position, as in a sort by (score descending, position); -inf and
        -1 pad queries that have fewer than k rows to rank.

        Args:
            queries: (Q, D) float32.
            k: Hits per query.
            excluded: Sorted positions to leave out (the held-out rows of a recall measurement).
        """
        best_scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        best_ids = np.full((len(queries), k), -1, dtype=np.int64)
        size = int(np.clip(SCAN_FLOATS // max(len(queries), 1), MIN_SCAN_ROWS, MAX_SCAN_ROWS))
        for start, chunk in self.chunks(size):
            scores = queries @ np.asarray(chunk).T  # (Q, B)
            if excluded is not None:
                inside = excluded[(excluded >= start) & (excluded < start + len(chunk))]
                scores[:, inside - start] = -np.inf
            top = _top_positions(scores, k)  # (Q, <=k), increasing within each row
            scores = np.concatenate([best_scores, np.take_along_axis(scores, top, 1)], 1)
            ids = np.concatenate([best_ids, top + start], 1)
            order = np.argsort(-scores, axis=1, kind="stable")[:, :k]  # earlier rows win ties
            best_scores = np.take_along_axis(scores, order, 1)
            best_ids = np.take_along_axis(ids, order, 1)
        best_ids[~np.isfinite(best_scores)] = -1
        return best_scores, best_ids

    def save(self, path: Path) -> None:
        """Writes the rows to ``path`` as one .npy file, atomically and a chunk at a time,
        then reads them from there (memory-mapped), releasing the blocks held in memory."""
        from numpy.lib import format as npy

        header = npy.header_data_from_array_1_0(np.zeros((0, self.d), dtype=np.float32))
        header["shape"] = (self.ntotal, self.d)
        with atomic_open(path, "wb") as handle:
            npy.write_array_header_1_0(handle, header)
            for _, chunk in self.chunks(WRITE_ROWS):
                handle.write(np.ascontiguousarray(chunk, dtype=np.float32).data)
        if self.ntotal:  # an empty file cannot be memory-mapped
            self._blocks = [np.load(path, mmap_mode="r", allow_pickle=False)]
            self._starts = [0]


def _top_positions(scores: np.ndarray, k: int) -> np.ndarray:
    """(Q, min(k, B)) column positions of the k largest scores of each row, sorted by
    position (which of several equal scores at the cut-off is kept is unspecified)."""
    if scores.shape[1] <= k:
        return np.broadcast_to(np.arange(scores.shape[1]), scores.shape).copy()
    return np.sort(np.argpartition(-scores, k - 1, axis=1)[:, :k], axis=1)
