"""Data-level fusion: the raw vectors of all modalities as one token sequence, one transformer."""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmfuse.fusion import register_fusion


def num_tokens(length: int, token_size: int, max_tokens: int) -> int:
    """How many tokens a raw vector of ``length`` values becomes."""
    return min(math.ceil(length / token_size), max_tokens)


def chunk_tokens(x: Tensor, token_size: int, max_tokens: int) -> Tensor:
    """Cuts raw vectors into tokens of ``token_size`` consecutive values.

    A vector longer than ``max_tokens * token_size`` is first adaptive-average-pooled to that
    length; the last chunk is zero-padded.

    Args:
        x: Raw vectors ``(B, L)``.
        token_size: Values per token.
        max_tokens: Most tokens per vector.

    Returns:
        ``(B, num_tokens(L, token_size, max_tokens), token_size)``.
    """
    b, length = x.shape
    cap = max_tokens * token_size
    if length > cap:
        x = F.adaptive_avg_pool1d(x.unsqueeze(1), cap).squeeze(1)  # (B, cap)
    n = num_tokens(length, token_size, max_tokens)
    x = F.pad(x, (0, n * token_size - x.shape[1]))  # (B, n * token_size)
    return x.view(b, n, token_size)


@register_fusion("early_transformer")
class EarlyTransformerFusion(nn.Module):
    """Every modality's raw vector cut into tokens, all tokens in one transformer, CLS out.

    Each raw vector is cut into chunks of ``token_size`` values (the last one zero-padded; a
    vector longer than ``max_tokens * token_size`` is adaptive-average-pooled to that length
    first). A chunk becomes a token ``E_m c + p_{m,t} + t_m``: a per-modality linear embedding,
    a learned position per modality and token index, and a learned modality-type embedding.
    A learned CLS token is prepended and the sequence goes through a pre-norm
    ``nn.TransformerEncoder``; all tokens of a missing modality are key-padding-masked (and
    their raw values zeroed first), the CLS token never is, so a sample with nothing present
    still gets a finite output. The output is ``LayerNorm(h_CLS)``. Meant for the
    parameter-free ``raw`` encoders. See Dosovitskiy et al., "An Image is Worth 16x16 Words",
    ICLR 2021 (chunks as tokens, CLS readout), and Vaswani et al., "Attention Is All You
    Need", NeurIPS 2017.

    Inputs: embeddings {modality: (B, D_m)} raw vectors, mask {modality: (B,) bool}.

    Args:
        input_dims: Raw vector dimension of each modality.
        dim: Token and output dimension.
        token_size: Raw values per token.
        max_tokens: Most tokens per modality.
        num_layers: Transformer layers.
        num_heads: Attention heads; must divide ``dim``.
        dropout: Dropout inside the transformer layers.
    """

    level = "early"
    description = "all raw vectors cut into tokens of one sequence, one transformer, CLS out"
    supports_missing = True

    def __init__(
        self,
        input_dims: Mapping[str, int],
        dim: int = 128,
        token_size: int = 16,
        max_tokens: int = 32,
        num_layers: int = 2,
        num_heads: int = 4,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim ({dim}) must be divisible by num_heads ({num_heads})")
        if token_size < 1 or max_tokens < 1:
            raise ValueError(
                f"token_size and max_tokens must be >= 1, got {token_size} and {max_tokens}"
            )
        self.modalities = sorted(input_dims)  # deterministic order
        self.token_size = token_size
        self.max_tokens = max_tokens
        self.tokens_per_modality = {
            m: num_tokens(input_dims[m], token_size, max_tokens) for m in self.modalities
        }
        self.embed = nn.ModuleDict({m: nn.Linear(token_size, dim) for m in self.modalities})
        self.position = nn.ParameterDict(
            {
                m: nn.Parameter(torch.randn(self.tokens_per_modality[m], dim) * 0.02)
                for m in self.modalities
            }
        )
        self.type_embedding = nn.Parameter(torch.randn(len(self.modalities), dim) * 0.02)
        self.cls = nn.Parameter(torch.randn(dim) * 0.02)
        layer = nn.TransformerEncoderLayer(
            dim,
            num_heads,
            dim_feedforward=2 * dim,
            dropout=dropout,
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.output_dim = dim

    def forward(self, embeddings: Mapping[str, Tensor], mask: Mapping[str, Tensor]) -> Tensor:
        b = mask[self.modalities[0]].shape[0]
        tokens = [self.cls.expand(b, 1, -1)]  # (B, 1, dim)
        padding = [torch.zeros(b, 1, dtype=torch.bool, device=self.cls.device)]
        for i, m in enumerate(self.modalities):
            raw = torch.where(mask[m].unsqueeze(1), embeddings[m], 0.0)  # (B, D_m)
            chunks = chunk_tokens(raw, self.token_size, self.max_tokens)  # (B, N_m, token_size)
            tokens.append(self.embed[m](chunks) + self.position[m] + self.type_embedding[i])
            padding.append((~mask[m]).unsqueeze(1).expand(b, chunks.shape[1]))
        sequence = torch.cat(tokens, dim=1)  # (B, 1 + sum(N_m), dim)
        h = self.encoder(sequence, src_key_padding_mask=torch.cat(padding, dim=1))
        return self.norm(h[:, 0])  # (B, dim)
