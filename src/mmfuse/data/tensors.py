"""Tensors of preprocessed records, batched by index (no DataLoader overhead).

Inputs are in-memory tensors, or ``ShardedArray`` for records streamed to disk
(``mmfuse.data.record_store``): a batch then copies just its rows out of the shard files.
Masks and targets, a few bytes a record, are always in memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from mmfuse.data.preprocess import Encoded
from mmfuse.data.sharded import ShardedArray

Rows = Tensor | ShardedArray
"""One modality's inputs: in memory, or on disk."""


@dataclass
class TensorData:
    """Preprocessed records as tensors.

    Attributes:
        inputs: Modality -> (N, ...) tensor, or its rows on disk.
        mask: Modality -> (N,) bool tensor.
        targets: (N,) float tensor (class index or standardised value), or None.
    """

    inputs: dict[str, Rows]
    mask: dict[str, Tensor]
    targets: Tensor | None = None

    @classmethod
    def from_encoded(cls, enc: Encoded) -> TensorData:
        return cls(
            {m: x if isinstance(x, ShardedArray) else torch.from_numpy(np.ascontiguousarray(x))
             for m, x in enc.inputs.items()},
            {m: torch.from_numpy(np.ascontiguousarray(v)) for m, v in enc.mask.items()},
            None if enc.targets is None else torch.from_numpy(enc.targets.astype(np.float32)),
        )

    def __len__(self) -> int:
        return int(next(iter(self.mask.values())).shape[0])

    def batch(self, index: Tensor, device: torch.device) -> TensorData:
        """The records at ``index``, moved to ``device``."""
        return TensorData(
            {m: take(x, index).to(device, non_blocking=True) for m, x in self.inputs.items()},
            {m: v[index].to(device, non_blocking=True) for m, v in self.mask.items()},
            None if self.targets is None else self.targets[index].to(device, non_blocking=True),
        )

    def subset(self, index: np.ndarray | Tensor) -> TensorData:
        """The records at ``index`` (on the same device)."""
        idx = torch.as_tensor(index, dtype=torch.long)
        return TensorData(
            {m: x[idx.numpy()] if isinstance(x, ShardedArray) else x[idx] for m, x in self.inputs.items()},
            {m: v[idx] for m, v in self.mask.items()},
            None if self.targets is None else self.targets[idx],
        )


def take(x: Rows, index: Tensor) -> Tensor:
    """The rows ``index`` of ``x`` as a tensor (copied out of the shard files for rows on disk)."""
    return torch.from_numpy(x.take(index.numpy())) if isinstance(x, ShardedArray) else x[index]


def dtype_of(x: Rows) -> torch.dtype:
    """The tensor dtype of ``x``'s rows (a streamed modality reads back as this dtype)."""
    return x.dtype if isinstance(x, Tensor) else torch.from_numpy(np.empty(0, dtype=x.dtype)).dtype


def chunks(x: Rows, rows: int = 8192) -> list[Tensor] | Iterator[Tensor]:
    """All of ``x`` in order: the tensor itself, or its rows on disk a chunk at a time."""
    if isinstance(x, ShardedArray):
        return (torch.from_numpy(part) for part in x.chunks(rows))
    return [x]
