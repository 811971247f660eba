"""Decision-level fusion: majority vote (classification) or median (regression)."""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from mmfuse.fusion import register_fusion
from mmfuse.fusion.mean import MeanFusion
from mmfuse.fusion.weighted import stack_late


@register_fusion("vote")
class VoteFusion(MeanFusion):
    """Majority vote of the present modalities (classification), median (regression).

    Classification: each present modality votes for its argmax class, ``v_bc`` votes in all;
    the output is ``log_softmax(log(v_bc + eps * pbar_bc))`` where ``pbar`` is the mean
    probability of the present modalities (as in ``mean``) and ``eps = 1e-3``. Since
    ``eps * pbar < 1`` the mean probability only breaks ties between classes with equal votes
    and ranks classes with no vote; it never overturns a majority. Votes are piecewise constant,
    so all gradient flows through the ``eps * pbar`` term: it is a differentiable surrogate,
    not a straight-through estimator. No modality present: uniform logits. Regression: the
    median of the present values (mean of the two middle ones for an even count; 0 when none
    is present); its gradient reaches only the middle value(s). No parameters, nothing to fit.
    See Kittler et al., "On Combining Classifiers", TPAMI 1998 (majority vote and median rules).

    Inputs: outputs {modality: (B, C)} logits or values, mask {modality: (B,) bool}.

    Args:
        input_dims: Number of outputs ``C`` of each modality (all equal).
        task: ``"classification"`` or ``"regression"``.
    """

    description = "majority vote of the modalities' predicted classes (median for regression)"
    tie_break = 1e-3

    def forward(self, outputs: Mapping[str, Tensor], mask: Mapping[str, Tensor]) -> Tensor:
        y, present = stack_late(self.modalities, outputs, mask)
        if self.task == "regression":
            return _median_present(y, present)
        votes = F.one_hot(y.argmax(-1), self.output_dim).to(y.dtype)  # (B, M, C)
        votes = (votes * present.unsqueeze(-1)).sum(1)  # (B, C)
        log_mean = super().forward(outputs, mask)  # (B, C) log mean probability
        scores = torch.logaddexp(votes.log(), math.log(self.tie_break) + log_mean)
        return scores.log_softmax(-1)


def _median_present(values: Tensor, present: Tensor) -> Tensor:
    """(B, C) median over the present modalities of (B, M, C) values; 0 where none is present."""
    filled = torch.where(present.unsqueeze(-1), values, float("inf"))
    ordered = filled.sort(1).values  # (B, M, C), missing (inf) last
    count = present.sum(1)  # (B,)
    lower = ((count - 1).clamp(min=0) // 2).view(-1, 1, 1).expand(-1, 1, values.shape[-1])
    upper = (count // 2).clamp(max=values.shape[1] - 1).view(-1, 1, 1).expand_as(lower)
    median = (ordered.gather(1, lower) + ordered.gather(1, upper)).squeeze(1) / 2  # (B, C)
    return torch.where((count > 0).unsqueeze(-1), median, 0.0)
