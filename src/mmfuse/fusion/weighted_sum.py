"""Weighted sum of projected modality embeddings with learned modality weights."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from mmfuse.fusion import register_fusion


def masked_softmax(scores: Tensor, keep: Tensor) -> Tensor:
    """Softmax over the last dim restricted to ``keep``; a row with nothing kept is all zeros.

    A plain softmax over an all ``-inf`` row gives NaN; here such a row gives zeros.

    Args:
        scores: Scores.
        keep: Bool mask broadcastable to ``scores`` with the same last dim; True where an
            entry takes part.

    Returns:
        Weights that sum to 1 over the kept entries of each row (0 elsewhere).
    """
    any_kept = keep.any(dim=-1, keepdim=True)
    scores = scores.masked_fill(~keep, float("-inf"))
    scores = torch.where(any_kept, scores, torch.zeros_like(scores))  # no all -inf row
    return scores.softmax(dim=-1) * keep


@register_fusion("weighted_sum")
class WeightedSumFusion(nn.Module):
    """Projects every modality to ``dim``, then sums with learned softmax modality weights.

    The weights are renormalised over the modalities present in each sample; a sample with no
    modality present gives zeros. See Baltrusaitis, Ahuja and Morency, "Multimodal Machine
    Learning: A Survey and Taxonomy", TPAMI 2019 (weighted feature combination).

    Inputs: embeddings {modality: (B, D_m)}, mask {modality: (B,) bool}.

    Args:
        input_dims: Embedding dimension of each modality.
        dim: Output dimension.
    """

    level = "feature"
    description = "project each modality to dim and sum with learned softmax weights"
    supports_missing = True

    def __init__(self, input_dims: Mapping[str, int], dim: int = 128) -> None:
        super().__init__()
        self.modalities = sorted(input_dims)  # deterministic order
        self.proj = nn.ModuleDict({m: nn.Linear(input_dims[m], dim) for m in self.modalities})
        self.logits = nn.Parameter(torch.zeros(len(self.modalities)))
        self.output_dim = dim

    def forward(self, embeddings: Mapping[str, Tensor], mask: Mapping[str, Tensor]) -> Tensor:
        present = torch.stack([mask[m] for m in self.modalities], 1)  # (B, M)
        inputs = {m: torch.where(mask[m].unsqueeze(1), embeddings[m], 0.0) for m in self.modalities}
        z = torch.stack([self.proj[m](inputs[m]) for m in self.modalities], 1)  # (B, M, dim)
        w = masked_softmax(self.logits.expand_as(present), present)  # (B, M)
        return (w.unsqueeze(-1) * z).sum(1)  # (B, dim)
