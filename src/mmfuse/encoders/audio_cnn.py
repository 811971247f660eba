"""2-D CNN over a log-mel spectrogram treated as a one-channel image."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from mmfuse.encoders import register_encoder
from mmfuse.encoders.image_cnn import conv_stack
from mmfuse.types import InputSpec


@register_encoder("audio", "cnn")
class AudioCNNEncoder(nn.Module):
    """Stride-2 conv blocks over ``(n_mels, T)``, global average pooling, linear projection.

    Input ``(B, n_mels, T)`` log-mel; output ``(B, dim)``.

    Args:
        spec: Input spec; ``spec.shape`` is ``(n_mels, T)``.
        dim: Output dimension.
        widths: Channels of the conv blocks.
    """

    def __init__(
        self, spec: InputSpec, dim: int = 128, widths: Sequence[int] = (32, 64, 128)
    ) -> None:
        super().__init__()
        if len(spec.shape) != 2:
            raise ValueError(f"audio spec shape must be (n_mels, T), got {spec.shape}")
        if not widths:
            raise ValueError("widths must name at least one conv block")
        self.features = conv_stack(1, widths)
        self.proj = nn.Linear(widths[-1], dim)
        self.output_dim = dim

    def forward(self, x: Tensor) -> Tensor:
        h = self.features(x.unsqueeze(1))  # (B, widths[-1], n_mels', T')
        return self.proj(h.mean(dim=(2, 3)))
