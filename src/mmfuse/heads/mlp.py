"""A small MLP head on top of a fused (or single-modality) vector."""

from __future__ import annotations

from torch import Tensor, nn


class MLPHead(nn.Module):
    """LayerNorm -> Linear -> GELU -> Dropout -> Linear.

    Args:
        input_dim: Size of the fused vector.
        output_dim: Number of classes (logits) or 1 for regression.
        hidden_dim: Hidden width.
        dropout: Dropout probability.
    """

    def __init__(self, input_dim: int, output_dim: int, hidden_dim: int = 128, dropout: float = 0.1) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(input_dim),
            nn.Linear(input_dim, hidden_dim),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden_dim, output_dim),
        )
        self.output_dim = output_dim

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)  # (B, output_dim)
