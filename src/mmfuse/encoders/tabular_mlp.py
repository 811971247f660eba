"""Tabular encoder: categorical embeddings joined with the numeric features, then an MLP."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mmfuse.encoders import register_encoder
from mmfuse.types import InputSpec


def embedding_size(cardinality: int) -> int:
    """Embedding width for a categorical feature with ``cardinality`` codes."""
    return min(16, (cardinality + 1) // 2 + 1)


@register_encoder("tabular", "mlp")
class TabularMLPEncoder(nn.Module):
    """Numeric features as they are plus one embedding per categorical feature, then an MLP.

    Input ``(B, num_numeric + num_categorical)`` float, numeric first, then categorical codes
    (0 = missing, 1 = unknown). Codes outside ``[0, cardinality)`` are clipped into it.
    Output ``(B, dim)``.

    Args:
        spec: Input spec; uses ``spec.num_numeric`` and ``spec.cardinalities``.
        dim: Output dimension.
        hidden: Hidden width of the MLP.
        dropout: Dropout after the hidden layer.
    """

    def __init__(
        self, spec: InputSpec, dim: int = 128, hidden: int = 128, dropout: float = 0.1
    ) -> None:
        super().__init__()
        self.num_numeric = spec.num_numeric
        self.cardinalities = tuple(spec.cardinalities)
        if any(card < 1 for card in self.cardinalities):
            raise ValueError(f"cardinalities must be >= 1, got {self.cardinalities}")
        self.embeddings = nn.ModuleList(
            nn.Embedding(card, embedding_size(card)) for card in self.cardinalities
        )
        in_dim = self.num_numeric + sum(embedding_size(card) for card in self.cardinalities)
        if in_dim == 0:
            raise ValueError("tabular spec has no numeric and no categorical features")
        self.mlp = nn.Sequential(
            nn.Linear(in_dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, dim)
        )
        self.output_dim = dim

    def forward(self, x: Tensor) -> Tensor:
        parts = [x[:, : self.num_numeric]]
        codes = x[:, self.num_numeric :].long()  # (B, num_categorical)
        for i, (card, embedding) in enumerate(zip(self.cardinalities, self.embeddings)):
            parts.append(embedding(codes[:, i].clamp(0, card - 1)))
        return self.mlp(torch.cat(parts, dim=1))
