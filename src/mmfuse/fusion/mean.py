"""Decision-level fusion: the average of the per-modality predictions."""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from mmfuse.fusion import register_fusion

TASKS = ("classification", "regression")


@register_fusion("mean")
class MeanFusion(nn.Module):
    """Averages the predictions of the modalities present in each sample.

    Classification: the mean of the per-modality softmax probabilities, returned as its log
    (so the output is logits again and ``softmax(output)`` is exactly the mean probability);
    a sample with no modality present gets uniform probabilities. Regression: the mean of the
    present values, 0 when none is present. No parameters. See Kittler et al., "On Combining
    Classifiers", TPAMI 1998 (sum/mean rule).

    Inputs: outputs {modality: (B, C)} logits or values, mask {modality: (B,) bool}.

    Args:
        input_dims: Number of outputs ``C`` of each modality (all equal).
        task: ``"classification"`` or ``"regression"``.
    """

    level = "late"
    description = "average the per-modality predictions (probabilities or values)"
    supports_missing = True

    def __init__(self, input_dims: Mapping[str, int], task: str = "classification") -> None:
        super().__init__()
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; choose one of: {', '.join(TASKS)}")
        sizes = set(input_dims.values())
        if len(sizes) != 1:
            raise ValueError(f"late fusion needs equal output sizes, got {dict(input_dims)}")
        self.modalities = sorted(input_dims)
        self.task = task
        self.output_dim = sizes.pop()

    def forward(self, outputs: Mapping[str, Tensor], mask: Mapping[str, Tensor]) -> Tensor:
        present = torch.stack([mask[m] for m in self.modalities], 1).unsqueeze(-1)  # (B, M, 1)
        y = torch.stack([outputs[m] for m in self.modalities], 1)  # (B, M, C)
        count = present.sum(1).to(y.dtype)  # (B, 1)
        if self.task == "regression":
            return torch.where(present, y, 0.0).sum(1) / count.clamp(min=1.0)
        log_p = torch.where(present, y, 0.0).log_softmax(-1)  # (B, M, C)
        any_present = count > 0
        # log of the mean probability; rows with nothing present use all modalities (finite
        # gradients) and are replaced by uniform logits below
        log_p = log_p.masked_fill(~present & any_present.unsqueeze(1), float("-inf"))
        log_mean = torch.logsumexp(log_p, dim=1) - count.clamp(min=1.0).log()  # (B, C)
        uniform = torch.full_like(log_mean, -math.log(self.output_dim))
        return torch.where(any_present, log_mean, uniform)
