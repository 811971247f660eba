"""Crossmodal attention: each modality token attends to the tokens of the other modalities."""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from mmfuse.fusion import register_fusion
from mmfuse.fusion.weighted_sum import masked_softmax


@register_fusion("cross_attention")
class CrossAttentionFusion(nn.Module):
    """MulT-style crossmodal attention with one token per modality, then a masked mean.

    Each modality is projected to a ``dim`` token. Every token is a query that attends only to
    the tokens of the *other* present modalities: per head ``softmax(Q_m K_n^T / sqrt(d_k)) V_n``
    over ``n != m`` with ``d_k = dim / num_heads``, then an output projection, a residual
    connection and LayerNorm. A token with no other present modality skips this sublayer and
    keeps its own token. Every token then goes through a feed-forward sublayer
    (``Linear -> ReLU -> Linear``, width ``2 * dim``) with a residual connection and LayerNorm,
    and the output is the mean over present tokens (zeros when no modality is present). The
    attention weights are shared by all modality pairs (MulT learns one block per ordered pair);
    the per-modality input projections keep the tokens modality-specific. Missing modalities are
    masked out as keys and left out of the mean, so they never influence the output. The last
    attention weights ``(B, num_heads, M, M)`` are kept in ``last_attention`` (query rows,
    key columns; the diagonal, rows of missing queries and columns of missing keys are zero).
    See Tsai et al., "Multimodal Transformer for Unaligned Multimodal Language Sequences",
    ACL 2019.

    Inputs: embeddings {modality: (B, D_m)}, mask {modality: (B,) bool}.

    Args:
        input_dims: Embedding dimension of each modality.
        dim: Token and output dimension.
        num_heads: Attention heads; must divide ``dim``.
    """

    level = "feature"
    description = "each modality token attends to the other modalities' tokens, masked mean"
    supports_missing = True

    def __init__(self, input_dims: Mapping[str, int], dim: int = 128, num_heads: int = 4) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim ({dim}) must be divisible by num_heads ({num_heads})")
        self.modalities = sorted(input_dims)  # deterministic order
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.proj = nn.ModuleDict({m: nn.Linear(input_dims[m], dim) for m in self.modalities})
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)
        self.norm_attention = nn.LayerNorm(dim)
        self.feed_forward = nn.Sequential(
            nn.Linear(dim, 2 * dim), nn.ReLU(), nn.Linear(2 * dim, dim)
        )
        self.norm_feed_forward = nn.LayerNorm(dim)
        self.output_dim = dim
        self.last_attention: Tensor | None = None

    def _split_heads(self, x: Tensor) -> Tensor:
        b, m, _ = x.shape
        return x.view(b, m, self.num_heads, self.head_dim).transpose(1, 2)  # (B, H, M, d_k)

    def forward(self, embeddings: Mapping[str, Tensor], mask: Mapping[str, Tensor]) -> Tensor:
        present = torch.stack([mask[m] for m in self.modalities], 1)  # (B, M)
        inputs = {m: torch.where(mask[m].unsqueeze(1), embeddings[m], 0.0) for m in self.modalities}
        tokens = torch.stack([self.proj[m](inputs[m]) for m in self.modalities], 1)  # (B, M, dim)
        num = len(self.modalities)
        others = ~torch.eye(num, dtype=torch.bool, device=present.device)  # (M, M) key != query
        keys = others & present[:, None, :]  # (B, M, M): present keys other than the query
        q = self._split_heads(self.query(tokens))
        k = self._split_heads(self.key(tokens))
        v = self._split_heads(self.value(tokens))
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)  # (B, H, M, M)
        attn = masked_softmax(scores, keys.unsqueeze(1)) * present[:, None, :, None]
        self.last_attention = attn.detach()
        mixed = (attn @ v).transpose(1, 2).reshape_as(tokens)  # (B, M, dim)
        attended = self.norm_attention(tokens + self.out(mixed))
        has_context = keys.any(-1).unsqueeze(-1)  # (B, M, 1)
        h = torch.where(has_context, attended, tokens)  # no other modality: keep own token
        h = self.norm_feed_forward(h + self.feed_forward(h))
        weights = present.to(h.dtype).unsqueeze(-1)  # (B, M, 1)
        return (h * weights).sum(1) / weights.sum(1).clamp(min=1.0)  # (B, dim)
