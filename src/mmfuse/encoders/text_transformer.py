"""A small transformer encoder over word tokens, trained from scratch."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mmfuse.encoders import register_encoder
from mmfuse.encoders.text_gru import masked_mean
from mmfuse.types import InputSpec


@register_encoder("text", "transformer")
class TextTransformerEncoder(nn.Module):
    """Token + learned position embeddings, a transformer encoder, masked mean pooling.

    Input ``(B, L)`` int64 token ids (0 = padding) with ``L <= spec.shape[0]``; output
    ``(B, dim)``. Padding tokens are masked out as attention keys and from the pooling; a row
    made only of padding encodes to zeros.

    Args:
        spec: Input spec; uses ``spec.vocab_size`` and ``spec.shape[0]`` (maximum length).
        dim: Output dimension.
        d_model: Token embedding and transformer width.
        num_heads: Attention heads.
        num_layers: Transformer layers.
        ff_dim: Hidden size of each layer's feed-forward block.
        dropout: Dropout inside the transformer layers.
    """

    def __init__(
        self,
        spec: InputSpec,
        dim: int = 128,
        d_model: int = 64,
        num_heads: int = 4,
        num_layers: int = 2,
        ff_dim: int = 128,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if spec.vocab_size < 2:
            raise ValueError(f"text spec needs vocab_size >= 2, got {spec.vocab_size}")
        if len(spec.shape) != 1 or spec.shape[0] < 1:
            raise ValueError(f"text spec shape must be (max_length,), got {spec.shape}")
        self.max_length = spec.shape[0]
        self.embedding = nn.Embedding(spec.vocab_size, d_model, padding_idx=0)
        self.position = nn.Embedding(self.max_length, d_model)
        layer = nn.TransformerEncoderLayer(
            d_model, num_heads, ff_dim, dropout=dropout, batch_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.proj = nn.Linear(d_model, dim)
        self.output_dim = dim

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[1] > self.max_length:
            raise ValueError(
                f"text has {x.shape[1]} tokens; this encoder takes at most {self.max_length}"
            )
        keep = x != 0  # (B, L)
        has_tokens = keep.any(dim=1)  # (B,)
        padding = ~keep
        padding[:, 0] &= has_tokens  # an all-padding row attends to its first token: no NaN
        positions = torch.arange(x.shape[1], device=x.device)
        h = self.embedding(x) + self.position(positions)  # (B, L, d_model)
        h = self.encoder(h, src_key_padding_mask=padding)
        return self.proj(masked_mean(h, keep)) * has_tokens.to(h.dtype).unsqueeze(1)
