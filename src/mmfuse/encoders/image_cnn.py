"""Small convolutional image encoder trained from scratch."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from mmfuse.encoders import register_encoder
from mmfuse.types import InputSpec


def conv_stack(in_channels: int, widths: Sequence[int]) -> nn.Sequential:
    """Stride-2 ``conv3x3 -> BatchNorm -> ReLU`` blocks, one per entry of ``widths``.

    Args:
        in_channels: Channels of the input feature map.
        widths: Output channels of each block; every block halves height and width.

    Returns:
        The blocks as one ``nn.Sequential``.
    """
    layers: list[nn.Module] = []
    for width in widths:
        layers += [
            nn.Conv2d(in_channels, width, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        ]
        in_channels = width
    return nn.Sequential(*layers)


@register_encoder("image", "cnn")
class ImageCNNEncoder(nn.Module):
    """Stride-2 conv blocks, global average pooling and a linear projection.

    Input ``(B, C, H, W)`` with any ``H, W >= 8``; output ``(B, dim)``.

    Args:
        spec: Input spec; ``spec.shape`` is ``(C, H, W)``.
        dim: Output dimension.
        widths: Channels of the conv blocks.
    """

    def __init__(
        self, spec: InputSpec, dim: int = 128, widths: Sequence[int] = (32, 64, 128, 128)
    ) -> None:
        super().__init__()
        if len(spec.shape) != 3:
            raise ValueError(f"image spec shape must be (C, H, W), got {spec.shape}")
        if not widths:
            raise ValueError("widths must name at least one conv block")
        self.features = conv_stack(spec.shape[0], widths)
        self.proj = nn.Linear(widths[-1], dim)
        self.output_dim = dim

    def forward(self, x: Tensor) -> Tensor:
        h = self.features(x)  # (B, widths[-1], H', W')
        return self.proj(torch.flatten(h.mean(dim=(2, 3)), 1))
