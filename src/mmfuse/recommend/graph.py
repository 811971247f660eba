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

    def sample(self, rows: np.ndarray, cap: int, rng: np.random.Generator,
               exclude: np.ndarray | None = None) -> np.ndarray:
        """(len(rows), cap) neighbours of each row, a random subset where there are more, -1
        padding; ``exclude[k]`` (e.g. the positive being predicted) is never drawn for row k."""
        out = np.full((len(rows), cap), -1, dtype=np.int64)
        for k, row in enumerate(rows):
            found = self.of(int(row))
            if exclude is not None:
                found = found[found != exclude[k]]
            if len(found) > cap:
                found = rng.choice(found, cap, replace=False)
            out[k, : len(found)] = found
        return out

    def mean(self, vectors: Tensor, rows: np.ndarray | None = None) -> tuple[Tensor, Tensor]:
        """((R, D) mean of each row's neighbours' ``vectors``, (R,) whether it has any)."""
        rows = np.arange(self.num_rows) if rows is None else rows
        deg = self.degree(rows)
        starts = self.indptr[rows]
        flat = np.concatenate([self.indices[s : s + d] for s, d in zip(starts, deg)]) if len(rows) else np.zeros(0, np.int64)
        owner = np.repeat(np.arange(len(rows)), deg)
        total = torch.zeros(len(rows), vectors.shape[1], dtype=vectors.dtype)
        total.index_add_(0, torch.from_numpy(owner), vectors[torch.from_numpy(flat)])
        present = torch.from_numpy(deg > 0)
        return total / torch.from_numpy(np.maximum(deg, 1)).to(vectors.dtype).unsqueeze(1), present


def padded_mean(vectors: Tensor, index: np.ndarray) -> tuple[Tensor, Tensor]:
    """((B, D) mean of ``vectors[index[b]]`` over the non-negative entries, (B,) any present)."""
    idx = torch.from_numpy(index)
    valid = idx >= 0
    gathered = vectors[idx.clamp_min(0)] * valid.unsqueeze(-1).to(vectors.dtype)
    count = valid.sum(1, keepdim=True).clamp_min(1).to(vectors.dtype)
    return gathered.sum(1) / count, valid.any(1)
