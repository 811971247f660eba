"""Bidirectional GRU over log-mel frames."""

from __future__ import annotations

from torch import Tensor, nn

from mmfuse.encoders import register_encoder
from mmfuse.types import InputSpec


@register_encoder("audio", "gru")
class AudioGRUEncoder(nn.Module):
    """A bidirectional GRU reads the frames; its outputs are averaged over time and projected.

    Input ``(B, n_mels, T)`` log-mel; output ``(B, dim)``.

    Args:
        spec: Input spec; ``spec.shape`` is ``(n_mels, T)``.
        dim: Output dimension.
        hidden: GRU hidden size per direction.
    """

    def __init__(self, spec: InputSpec, dim: int = 128, hidden: int = 64) -> None:
        super().__init__()
        if len(spec.shape) != 2:
            raise ValueError(f"audio spec shape must be (n_mels, T), got {spec.shape}")
        self.gru = nn.GRU(spec.shape[0], hidden, batch_first=True, bidirectional=True)
        self.proj = nn.Linear(2 * hidden, dim)
        self.output_dim = dim

    def forward(self, x: Tensor) -> Tensor:
        out, _ = self.gru(x.transpose(1, 2))  # (B, T, 2 * hidden)
        return self.proj(out.mean(dim=1))
