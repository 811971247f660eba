"""Scaled dot-product self-attention over modality tokens."""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from mmfuse.fusion import register_fusion
from mmfuse.fusion.weighted_sum import masked_softmax


@register_fusion("attention")
class AttentionFusion(nn.Module):
    """One multi-head self-attention layer over one token per modality, then a masked mean.

    Each modality is projected to ``dim`` and gets a learned modality-type embedding. Per head,
    ``softmax(Q K^T / sqrt(d_k)) V`` with ``d_k = dim / num_heads``; missing modalities are
    masked out as keys and left out of the final mean, so they never influence the output. The
    attended tokens go through an output projection, a residual connection and LayerNorm; the
    result is the mean over present tokens (zeros when no modality is present). The last
    attention weights ``(B, num_heads, M, M)`` are kept in ``last_attention`` for explanation
    (rows of missing queries and columns of missing keys are zero). See Vaswani et al.,
    "Attention Is All You Need", NeurIPS 2017.

    Inputs: embeddings {modality: (B, D_m)}, mask {modality: (B,) bool}.

    Args:
        input_dims: Embedding dimension of each modality.
        dim: Token and output dimension.
        num_heads: Attention heads; must divide ``dim``.
    """

    level = "feature"
    description = "self-attention over modality tokens, softmax(QK^T/sqrt(d_k))V, masked mean"
    supports_missing = True

    def __init__(self, input_dims: Mapping[str, int], dim: int = 128, num_heads: int = 4) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim ({dim}) must be divisible by num_heads ({num_heads})")
        self.modalities = sorted(input_dims)  # deterministic order
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.proj = nn.ModuleDict({m: nn.Linear(input_dims[m], dim) for m in self.modalities})
        self.type_embedding = nn.Parameter(torch.randn(len(self.modalities), dim) * 0.02)
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim)
        self.output_dim = dim
        self.last_attention: Tensor | None = None

    def _split_heads(self, x: Tensor) -> Tensor:
        b, m, _ = x.shape
        return x.view(b, m, self.num_heads, self.head_dim).transpose(1, 2)  # (B, H, M, d_k)

    def forward(self, embeddings: Mapping[str, Tensor], mask: Mapping[str, Tensor]) -> Tensor:
        present = torch.stack([mask[m] for m in self.modalities], 1)  # (B, M)
        inputs = {m: torch.where(mask[m].unsqueeze(1), embeddings[m], 0.0) for m in self.modalities}
        tokens = torch.stack([self.proj[m](inputs[m]) for m in self.modalities], 1)
        tokens = tokens + self.type_embedding  # (B, M, dim)
        q = self._split_heads(self.query(tokens))
        k = self._split_heads(self.key(tokens))
        v = self._split_heads(self.value(tokens))
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)  # (B, H, M, M)
        keys = present[:, None, None, :]  # (B, 1, 1, M)
        attn = masked_softmax(scores, keys) * present[:, None, :, None]  # (B, H, M, M)
        self.last_attention = attn.detach()
        mixed = (attn @ v).transpose(1, 2).reshape_as(tokens)  # (B, M, dim)
        h = self.norm(tokens + self.out(mixed))
        weights = present.to(h.dtype).unsqueeze(-1)  # (B, M, 1)
        return (h * weights).sum(1) / weights.sum(1).clamp(min=1.0)  # (B, dim)
