"""Who interacted with what, and who knows whom: rows of neighbour indices (CSR), averaged or
sampled in batches."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor


@dataclass(frozen=True)
class Neighbours:
    """For each of ``num_rows`` rows, its neighbours: ``indices[indptr[r]:indptr[r + 1]]``."""

    indptr: np.ndarray
    indices: np.ndarray

    @classmethod
    def from_pairs(cls, rows: np.ndarray, cols: np.ndarray, num_rows: int) -> Neighbours:
        order = np.lexsort((cols, rows))
        counts = np.bincount(rows, minlength=num_rows)
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return cls(indptr, np.asarray(cols, dtype=np.int64)[order])

    @property
    def num_rows(self) -> int:
        return len(self.indptr) - 1

    def degree(self, rows: np.ndarray | None = None) -> np.ndarray:
        deg = np.diff(self.indptr)
        return deg if rows is None else deg[rows]

    def of(self, row: int) -> np.ndarray:
        return self.indices[self.indptr[row] : self.indptr[row + 1]]

    def entries(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(owner, offset, neighbour) of every neighbour entry of ``rows``: the position in
        ``rows`` it belongs to, its place in that row's list, and the neighbour itself."""
        deg = self.degree(rows)
        first = np.cumsum(deg) - deg
        owner = np.repeat(np.arange(len(rows)), deg)
        offset = np.arange(int(deg.sum())) - np.repeat(first, deg)
        return owner, offset, self.indices[np.repeat(self.indptr[rows], deg) + offset]

    def sample(self, rows: np.ndarray, cap: int, rng: np.random.Generator,
               exclude: np.ndarray | None = None) -> np.ndarray:
        """(len(rows), cap) neighbours of each row in their stored order, a random subset where
        there are more, -1 padding; ``exclude[k]`` (e.g. the positive being predicted) is never
        drawn for row k. Vectorised: one random key per entry, the ``cap`` smallest kept."""
        owner, offset, flat = self.entries(rows)
        keys = rng.random(len(flat))
        if exclude is not None:
            keys[flat == np.asarray(exclude)[owner]] = 2.0  # sorts after every real key
        order = np.lexsort((keys, owner))
        owner, offset, flat, keys = owner[order], offset[order], flat[order], keys[order]
        keep = (_position_in_group(owner) < cap) & (keys < 2.0)
        owner, offset, flat = owner[keep], offset[keep], flat[keep]
        order = np.lexsort((offset, owner))  # back to the stored order
        owner, flat = owner[order], flat[order]
        out = np.full((len(rows), cap), -1, dtype=np.int64)
        out[owner, _position_in_group(owner)] = flat
        return out

    def mean(self, vectors: Tensor, rows: np.ndarray | None = None,
             allowed: np.ndarray | None = None) -> tuple[Tensor, Tensor]:
        """((R, D) mean of each row's neighbours' ``vectors``, (R,) whether it has any); with
        ``allowed`` (a bool per neighbour id), only the allowed neighbours count."""
        rows = np.arange(self.num_rows) if rows is None else rows
        owner, _, flat = self.entries(rows)
        if allowed is not None:
            keep = allowed[flat]
            owner, flat = owner[keep], flat[keep]
        count = np.bincount(owner, minlength=len(rows))
        total = torch.zeros(len(rows), vectors.shape[1], dtype=vectors.dtype)
        total.index_add_(0, torch.from_numpy(owner), vectors[torch.from_numpy(flat)])
        scale = torch.from_numpy(np.maximum(count, 1)).to(vectors.dtype).unsqueeze(1)
        return total / scale, torch.from_numpy(count > 0)


def _position_in_group(owner: np.ndarray) -> np.ndarray:
    """For a sorted array of group labels, each element's position within its group."""
    if len(owner) == 0:
        return owner
    starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
    sizes = np.diff(np.r_[starts, len(owner)])
    return np.arange(len(owner)) - np.repeat(starts, sizes)


def padded_mean(vectors: Tensor, index: np.ndarray) -> tuple[Tensor, Tensor]:
    """((B, D) mean of ``vectors[index[b]]`` over the non-negative entries, (B,) any present)."""
    rows, cols = np.nonzero(index >= 0)
    picked = vectors.index_select(0, torch.from_numpy(index[rows, cols]))
    return group_mean(picked, rows, len(index))


def group_mean(vectors: Tensor, owner: np.ndarray, num_groups: int) -> tuple[Tensor, Tensor]:
    """((G, D) mean of the rows of ``vectors`` owned by each group, (G,) whether it has any).
    Sums with ``index_add`` (its gradient is a gather), not by indexing a padded tensor (whose
    gradient is a slow scatter on CPU)."""
    owned = torch.from_numpy(np.asarray(owner, dtype=np.int64))
    total = vectors.new_zeros(num_groups, vectors.shape[1]).index_add(0, owned, vectors)
    count = torch.bincount(owned, minlength=num_groups)
    return total / count.clamp_min(1).unsqueeze(1).to(vectors.dtype), count > 0
