"""Tensor Fusion Network: the outer product of all (projected) modality vectors."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from mmfuse.fusion import register_fusion


def outer_product(vectors: Sequence[Tensor]) -> Tensor:
    """Flattened outer product of one vector per modality, for every sample.

    Args:
        vectors: ``(B, d_m)`` tensors, at least one.

    Returns:
        ``(B, prod(d_m))``; entry ``(i_1, ..., i_M)`` (row-major, first vector slowest) is
        ``vectors[0][:, i_1] * ... * vectors[M-1][:, i_M]``.
    """
    result = vectors[0]
    for v in vectors[1:]:
        result = torch.einsum("bi,bj->bij", result, v).flatten(1)  # (B, d_1 * ... * d_m)
    return result


@register_fusion("tensor")
class TensorFusion(nn.Module):
    """Tensor Fusion Network (TFN): the outer product of ``[W_m x_m; 1]`` over modalities, an MLP.

    Each modality is projected to a small ``rank_dim`` and a constant 1 is appended,
    ``z_m = [W_m x_m; 1]``; the flattened outer product ``z_1 ⊗ ... ⊗ z_M`` (``prod(d + 1)``
    features) holds every unimodal, bimodal, ..., M-modal interaction term, and
    ``Linear -> ReLU -> Linear`` maps it to ``dim``. A missing modality uses
    ``z_m = [0, ..., 0; 1]``, so only the terms of the present modalities remain (with none
    present the product is a single 1 and the output is a learned constant). The feature count
    grows as ``(rank_dim + 1)^M``, hence the smaller default ``rank_dim`` for more modalities
    (``5^6 = 15625`` features for six). See Zadeh et al., "Tensor Fusion Network for Multimodal
    Sentiment Analysis", EMNLP 2017.

    Inputs: embeddings {modality: (B, D_m)}, mask {modality: (B,) bool}.

    Args:
        input_dims: Embedding dimension of each modality.
        dim: Output dimension.
        rank_dim: Size ``d`` each modality is projected to before the outer product; default 8
            for up to three modalities, else 4.
        hidden: Hidden width of the MLP after the outer product; default ``dim``.
    """

    level = "feature"
    description = "outer product of [projected modality; 1] vectors (TFN), then an MLP"
    supports_missing = True

    def __init__(
        self,
        input_dims: Mapping[str, int],
        dim: int = 128,
        rank_dim: int | None = None,
        hidden: int | None = None,
    ) -> None:
        super().__init__()
        self.modalities = sorted(input_dims)  # deterministic order
        self.rank_dim = rank_dim if rank_dim is not None else (8 if len(input_dims) <= 3 else 4)
        hidden = hidden if hidden is not None else dim
        self.proj = nn.ModuleDict(
            {m: nn.Linear(input_dims[m], self.rank_dim) for m in self.modalities}
        )
        product_dim = math.prod(self.rank_dim + 1 for _ in self.modalities)
        self.mlp = nn.Sequential(nn.Linear(product_dim, hidden), nn.ReLU(), nn.Linear(hidden, dim))
        self.output_dim = dim

    def forward(self, embeddings: Mapping[str, Tensor], mask: Mapping[str, Tensor]) -> Tensor:
        vectors = []
        for m in self.modalities:
            keep = mask[m].unsqueeze(1)  # (B, 1)
            x = torch.where(keep, embeddings[m], 0.0)
            z = torch.where(keep, self.proj[m](x), 0.0)  # (B, d); missing: zeros, not the bias
            vectors.append(torch.cat([z, torch.ones_like(z[:, :1])], dim=1))  # (B, d + 1)
        return self.mlp(outer_product(vectors))  # (B, dim)
