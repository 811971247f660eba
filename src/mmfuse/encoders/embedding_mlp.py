"""Encoders for precomputed embedding vectors: an MLP, or the vectors unchanged."""

from __future__ import annotations

from torch import Tensor, nn

from mmfuse.encoders import register_encoder
from mmfuse.types import InputSpec


def _input_dim(spec: InputSpec) -> int:
    if len(spec.shape) != 1 or spec.shape[0] < 1:
        raise ValueError(f"embedding spec shape must be (D,), got {spec.shape}")
    return spec.shape[0]


@register_encoder("embedding", "mlp")
class EmbeddingMLPEncoder(nn.Module):
    """LayerNorm, then a two-layer MLP. Input ``(B, D)``; output ``(B, dim)``.

    Args:
        spec: Input spec; ``spec.shape`` is ``(D,)``.
        dim: Output dimension.
        hidden: Hidden width of the MLP.
        dropout: Dropout after the hidden layer.
    """

    reads = ("decoded", "features")

    def __init__(
        self, spec: InputSpec, dim: int = 128, hidden: int = 256, dropout: float = 0.1
    ) -> None:
        super().__init__()
        in_dim = _input_dim(spec)
        self.net = nn.Sequential(
            nn.LayerNorm(in_dim),
            nn.Linear(in_dim, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, dim),
        )
        self.output_dim = dim

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


@register_encoder("embedding", "identity")
class EmbeddingIdentityEncoder(nn.Module):
    """Passes the vectors through unchanged. Input and output ``(B, D)``.

    Args:
        spec: Input spec; ``spec.shape`` is ``(D,)``.
    """

    reads = ("decoded", "features")

    def __init__(self, spec: InputSpec) -> None:
        super().__init__()
        self.output_dim = _input_dim(spec)

    def forward(self, x: Tensor) -> Tensor:
        return x
