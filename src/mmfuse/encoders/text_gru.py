"""Word embeddings read by a bidirectional GRU, mean-pooled over the real tokens."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from mmfuse.encoders import register_encoder
from mmfuse.types import InputSpec


def sequence_lengths(tokens: Tensor) -> Tensor:
    """Index of the last non-padding token plus one (0 for an all-padding row).

    Args:
        tokens: ``(B, L)`` token ids, 0 = padding.

    Returns:
        ``(B,)`` int64 lengths.
    """
    positions = torch.arange(1, tokens.shape[1] + 1, device=tokens.device)
    return ((tokens != 0).long() * positions).amax(dim=1)


def masked_mean(x: Tensor, keep: Tensor) -> Tensor:
    """Mean of ``x`` (B, L, D) over the positions where ``keep`` (B, L) is True; 0 if none."""
    weights = keep.to(x.dtype).unsqueeze(-1)  # (B, L, 1)
    return (x * weights).sum(1) / weights.sum(1).clamp(min=1.0)


@register_encoder("text", "gru")
class TextGRUEncoder(nn.Module):
    """Embedding + bidirectional GRU + masked mean pooling + linear projection.

    Input ``(B, L)`` int64 token ids (0 = padding, right-padded); output ``(B, dim)``. Padding
    never reaches the GRU (packed sequences), so appending padding does not change the output.
    A row made only of padding encodes to zeros.

    Args:
        spec: Input spec; uses ``spec.vocab_size``.
        dim: Output dimension.
        emb_dim: Word embedding size.
        hidden: GRU hidden size per direction.
    """

    def __init__(
        self, spec: InputSpec, dim: int = 128, emb_dim: int = 64, hidden: int = 64
    ) -> None:
        super().__init__()
        if spec.vocab_size < 2:
            raise ValueError(f"text spec needs vocab_size >= 2, got {spec.vocab_size}")
        self.embedding = nn.Embedding(spec.vocab_size, emb_dim, padding_idx=0)
        self.gru = nn.GRU(emb_dim, hidden, batch_first=True, bidirectional=True)
        self.proj = nn.Linear(2 * hidden, dim)
        self.output_dim = dim

    def forward(self, x: Tensor) -> Tensor:
        keep = x != 0  # (B, L)
        lengths = sequence_lengths(x)
        packed = pack_padded_sequence(
            self.embedding(x), lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False
        )
        out, _ = self.gru(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])  # (B, L, 2H)
        has_tokens = (lengths > 0).to(out.dtype).unsqueeze(1)  # (B, 1)
        return self.proj(masked_mean(out, keep)) * has_tokens
