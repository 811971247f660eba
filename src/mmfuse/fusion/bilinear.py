"""Low-rank factorised bilinear pooling (MFB), generalised to any number of modalities."""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmfuse.fusion import register_fusion


def factorized_bilinear_pool(
    z: Tensor, present: Tensor, factor: int, dropout: nn.Module | None = None
) -> Tensor:
    """Multiplies the projections of present modalities and sum-pools groups of ``factor``.

    Missing modalities contribute the multiplicative identity 1, so with one present modality
    the result is that modality's pooled projection; a row with nothing present gives zeros.

    Args:
        z: Projections ``(B, M, factor * o)``; consecutive ``factor`` values form one group.
        present: ``(B, M)`` bool, True where a modality is present.
        factor: Group size ``k``.
        dropout: Applied to the elementwise product before pooling, as in MFB.

    Returns:
        ``(B, o)`` pooled bilinear features (before any normalisation).
    """
    b, _, width = z.shape
    z = torch.where(present.unsqueeze(-1), z, 1.0)  # (B, M, k*o)
    product = z.prod(dim=1)  # (B, k*o)
    if dropout is not None:
        product = dropout(product)
    pooled = product.view(b, width // factor, factor).sum(-1)  # (B, o)
    return torch.where(present.any(dim=1, keepdim=True), pooled, 0.0)


def power_l2_normalize(x: Tensor, eps: float = 1e-8) -> Tensor:
    """Signed square root, then L2 normalisation; both have finite gradients at 0.

    The power step is ``sign(x) * (sqrt(|x| + eps) - sqrt(eps))``: continuous, 0 at 0, with a
    bounded slope. A zero row stays zero after the L2 step.

    Args:
        x: Features ``(B, o)``.
        eps: Smoothing constant of the square root.

    Returns:
        Normalised features of the same shape.
    """
    root = torch.sign(x) * (torch.sqrt(x.abs() + eps) - eps**0.5)
    return F.normalize(root, dim=-1, eps=1e-12)


@register_fusion("bilinear")
class BilinearFusion(nn.Module):
    """Multi-modal factorised bilinear pooling (MFB), generalised from 2 to ``M`` modalities.

    Each modality is projected to ``k * o`` values (``o = dim``); the projections of the present
    modalities are multiplied elementwise, ``p = prod_m (W_m x_m + b_m)``, dropout is applied
    to the product, and it is sum-pooled over consecutive groups of ``k``:
    ``z_j = sum_{r<k} p_{jk + r}``. With two modalities this is exactly MFB, a rank-``k``
    factorisation of a bilinear map ``z_j = x_1^T W_j x_2``; with ``M`` modalities it is a
    rank-``k`` factorisation of an ``M``-way multilinear map. Generalisation to missing
    modalities: a missing one contributes the multiplicative identity 1 (it drops out of the
    product), so a single present modality gives its own pooled projection, and a sample
    with nothing present gives zeros. Finally the signed square root (power normalisation)
    and L2 normalisation of the original method. See Yu et al., "Multi-modal Factorized
    Bilinear Pooling with Co-Attention Learning for Visual Question Answering", ICCV 2017.

    Inputs: embeddings {modality: (B, D_m)}, mask {modality: (B,) bool}.

    Args:
        input_dims: Embedding dimension of each modality.
        dim: Output dimension ``o``.
        factor: Factor ``k`` of the low-rank factorisation (group size of the sum pooling).
        dropout: Dropout on the elementwise product, as in MFB.
        eps: Smoothing constant of the signed square root.
    """

    level = "feature"
    description = "low-rank factorised bilinear pooling (MFB) of the present modalities"
    supports_missing = True

    def __init__(
        self,
        input_dims: Mapping[str, int],
        dim: int = 128,
        factor: int = 5,
        dropout: float = 0.1,
        eps: float = 1e-8,
    ) -> None:
        super().__init__()
        if factor < 1:
            raise ValueError(f"factor must be >= 1, got {factor}")
        self.modalities = sorted(input_dims)  # deterministic order
        self.factor = factor
        self.eps = eps
        self.proj = nn.ModuleDict(
            {m: nn.Linear(input_dims[m], factor * dim) for m in self.modalities}
        )
        self.dropout = nn.Dropout(dropout)
        self.output_dim = dim

    def pooled(self, embeddings: Mapping[str, Tensor], mask: Mapping[str, Tensor]) -> Tensor:
        """The sum-pooled product ``(B, dim)`` before power and L2 normalisation."""
        present = torch.stack([mask[m] for m in self.modalities], 1)  # (B, M)
        inputs = {m: torch.where(mask[m].unsqueeze(1), embeddings[m], 0.0) for m in self.modalities}
        z = torch.stack([self.proj[m](inputs[m]) for m in self.modalities], 1)  # (B, M, k*dim)
        return factorized_bilinear_pool(z, present, self.factor, self.dropout)  # (B, dim)

    def forward(self, embeddings: Mapping[str, Tensor], mask: Mapping[str, Tensor]) -> Tensor:
        return power_l2_normalize(self.pooled(embeddings, mask), self.eps)  # (B, dim)
