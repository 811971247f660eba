"""Low-rank Multimodal Fusion: tensor fusion with the weight tensor factorised per modality."""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from mmfuse.fusion import register_fusion


@register_fusion("low_rank_tensor")
class LowRankTensorFusion(nn.Module):
    """Low-rank Multimodal Fusion (LMF): a rank-``r`` factorisation of the TFN weight tensor.

    With ``z_m = [x_m; 1]`` (a missing modality uses ``[0, ..., 0; 1]``) and per-modality
    factors ``W_m^(i)`` of shape ``(D_m + 1, dim)`` for ``i = 1..r``, the output is
    ``sum_i w_i * prod_m (z_m W_m^(i)) + b`` (product elementwise over modalities), which equals
    a linear map of the full outer product ``z_1 ⊗ ... ⊗ z_M`` whose weight tensor has rank
    ``r``, without ever forming it. Initialisation keeps outputs O(1) for any ``M``: the rows
    of ``W_m^(i)`` for ``x_m`` have std ``1 / sqrt(2 D_m)`` and the row for the constant 1 has
    std ``1 / sqrt(2)``, so each factor ``z_m W_m^(i)`` has variance about 1 for unit-variance
    inputs, the product of ``M`` independent zero-mean factors then also has variance about 1,
    and ``w_i`` has std ``1 / sqrt(r)``. A missing modality's factor has variance about 1/2.
    See Liu et al., "Efficient Low-rank Multimodal Fusion with Modality-Specific Factors",
    ACL 2018.

    Inputs: embeddings {modality: (B, D_m)}, mask {modality: (B,) bool}.

    Args:
        input_dims: Embedding dimension of each modality.
        dim: Output dimension.
        rank: Rank ``r`` of the factorisation.
    """

    level = "feature"
    description = "low-rank tensor fusion (LMF): rank-r modality-specific factors multiplied"
    supports_missing = True

    def __init__(self, input_dims: Mapping[str, int], dim: int = 128, rank: int = 4) -> None:
        super().__init__()
        self.modalities = sorted(input_dims)  # deterministic order
        self.rank = rank
        self.factors = nn.ParameterDict(
            {m: nn.Parameter(self._init_factor(rank, input_dims[m], dim)) for m in self.modalities}
        )
        self.fusion_weights = nn.Parameter(torch.randn(rank) / math.sqrt(rank))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.output_dim = dim

    @staticmethod
    def _init_factor(rank: int, input_dim: int, dim: int) -> Tensor:
        factor = torch.randn(rank, input_dim + 1, dim)  # (r, D_m + 1, dim)
        factor[:, :-1] /= math.sqrt(2 * max(input_dim, 1))
        factor[:, -1] /= math.sqrt(2)
        return factor

    def forward(self, embeddings: Mapping[str, Tensor], mask: Mapping[str, Tensor]) -> Tensor:
        factors = []
        for m in self.modalities:
            x = torch.where(mask[m].unsqueeze(1), embeddings[m], 0.0)
            z = torch.cat([x, torch.ones_like(x[:, :1])], dim=1)  # (B, D_m + 1)
            factors.append(torch.einsum("bd,rdk->brk", z, self.factors[m]))  # (B, r, dim)
        product = torch.stack(factors).prod(0)  # (B, r, dim)
        return torch.einsum("r,brk->bk", self.fusion_weights, product) + self.bias  # (B, dim)
