"""Data-level fusion: the raw vectors of all modalities joined and fed to one MLP."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from mmfuse.fusion import register_fusion


@register_fusion("early_concat")
class EarlyConcatFusion(nn.Module):
    """Joins the raw modality vectors (missing ones zeroed) and the presence mask, then an MLP.

    The joined raw vector is layer-normalised (optional), the ``M`` presence flags are appended
    as 0/1 features so the MLP can tell a missing modality from a zero one, and
    ``Linear -> ReLU -> Dropout -> Linear -> ReLU`` maps it to ``dim``. Meant for the
    parameter-free ``raw`` encoders. See Baltrusaitis, Ahuja and Morency, "Multimodal Machine
    Learning: A Survey and Taxonomy", TPAMI 2019 (early fusion).

    Inputs: embeddings {modality: (B, D_m)} raw vectors, mask {modality: (B,) bool}.

    Args:
        input_dims: Raw vector dimension of each modality.
        dim: Output dimension.
        hidden: Hidden width of the MLP.
        dropout: Dropout after the hidden layer.
        use_layer_norm: Layer-normalise the joined raw vector before the MLP.
    """

    level = "early"
    description = "join the raw modality vectors and the presence mask, then one MLP"
    supports_missing = True

    def __init__(
        self,
        input_dims: Mapping[str, int],
        dim: int = 128,
        hidden: int = 256,
        dropout: float = 0.1,
        use_layer_norm: bool = True,
    ) -> None:
        super().__init__()
        self.modalities = sorted(input_dims)  # deterministic order
        joined_dim = sum(input_dims[m] for m in self.modalities)
        self.norm = nn.LayerNorm(joined_dim) if use_layer_norm else nn.Identity()
        self.mlp = nn.Sequential(
            nn.Linear(joined_dim + len(self.modalities), hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, dim),
            nn.ReLU(),
        )
        self.output_dim = dim

    def forward(self, embeddings: Mapping[str, Tensor], mask: Mapping[str, Tensor]) -> Tensor:
        parts = [
            torch.where(mask[m].unsqueeze(1), embeddings[m], 0.0) for m in self.modalities
        ]
        present = torch.stack([mask[m] for m in self.modalities], 1)  # (B, M)
        joined = self.norm(torch.cat(parts, dim=1))  # (B, sum(D_m))
        return self.mlp(torch.cat([joined, present.to(joined.dtype)], dim=1))
