"""In-memory tensors of preprocessed records, batched by index (no DataLoader overhead)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from mmfuse.data.preprocess import Encoded


@dataclass
class TensorData:
    """Preprocessed records as tensors.

    Attributes:
        inputs: Modality -> (N, ...) tensor.
        mask: Modality -> (N,) bool tensor.
        targets: (N,) float tensor (class index or standardised value), or None.
    """

    inputs: dict[str, Tensor]
    mask: dict[str, Tensor]
    targets: Tensor | None = None

    @classmethod
    def from_encoded(cls, enc: Encoded) -> TensorData:
        return cls(
            {m: torch.from_numpy(np.ascontiguousarray(x)) for m, x in enc.inputs.items()},
            {m: torch.from_numpy(np.ascontiguousarray(v)) for m, v in enc.mask.items()},
            None if enc.targets is None else torch.from_numpy(enc.targets.astype(np.float32)),
        )

    def __len__(self) -> int:
        return int(next(iter(self.mask.values())).shape[0])

    def batch(self, index: Tensor, device: torch.device) -> TensorData:
        """The records at ``index``, moved to ``device``."""
        return TensorData(
            {m: x[index].to(device, non_blocking=True) for m, x in self.inputs.items()},
            {m: v[index].to(device, non_blocking=True) for m, v in self.mask.items()},
            None if self.targets is None else self.targets[index].to(device, non_blocking=True),
        )

    def subset(self, index: np.ndarray | Tensor) -> TensorData:
        """The records at ``index`` (on the same device)."""
        idx = torch.as_tensor(index, dtype=torch.long)
        return TensorData(
            {m: x[idx] for m, x in self.inputs.items()},
            {m: v[idx] for m, v in self.mask.items()},
            None if self.targets is None else self.targets[idx],
        )
