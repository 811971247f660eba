"""Concatenation of modality embeddings, the simplest feature-level fusion."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from mmfuse.fusion import register_fusion


@register_fusion("concat")
class ConcatFusion(nn.Module):
    """Concatenates the embeddings in sorted modality order; a missing modality is all zeros.

    Output ``(B, sum(D_m))``. There is no parameter and no projection: the head that follows
    does the mixing. See Baltrusaitis, Ahuja and Morency, "Multimodal Machine Learning: A Survey
    and Taxonomy", TPAMI 2019 (early/feature concatenation).

    Inputs: embeddings {modality: (B, D_m)}, mask {modality: (B,) bool}.

    Args:
        input_dims: Embedding dimension of each modality.
    """

    level = "feature"
    description = "concatenate the modality embeddings (a missing modality is zeros)"
    supports_missing = True

    def __init__(self, input_dims: Mapping[str, int]) -> None:
        super().__init__()
        self.modalities = sorted(input_dims)
        self.output_dim = sum(input_dims[m] for m in self.modalities)

    def forward(self, embeddings: Mapping[str, Tensor], mask: Mapping[str, Tensor]) -> Tensor:
        parts = [
            torch.where(mask[m].unsqueeze(1), embeddings[m], 0.0) for m in self.modalities
        ]
        return torch.cat(parts, dim=1)  # (B, sum(D_m))
