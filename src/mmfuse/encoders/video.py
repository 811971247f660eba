"""Video encoder: a per-frame image CNN followed by temporal pooling."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from mmfuse.encoders import register_encoder
from mmfuse.encoders.image_cnn import ImageCNNEncoder
from mmfuse.types import InputSpec

TEMPORAL_POOLING = ("mean", "gru", "attention")
"""Valid values of ``VideoCNNEncoder``'s ``temporal`` argument."""


@register_encoder("video", "cnn")
class VideoCNNEncoder(nn.Module):
    """Encodes every frame with ``ImageCNNEncoder``, pools over time, projects to ``dim``.

    Temporal pooling: ``"mean"`` averages the frame features; ``"gru"`` takes the last hidden
    state of a GRU over the frames; ``"attention"`` weights the frames by a softmax over their
    scores against one learned query.

    Input ``(B, N, 3, H, W)``; output ``(B, dim)``.

    Args:
        spec: Input spec; ``spec.shape`` is ``(N, C, H, W)``.
        dim: Output dimension.
        frame_dim: Output dimension of the frame encoder.
        temporal: Temporal pooling, one of ``TEMPORAL_POOLING``.
        widths: Channels of the frame CNN's blocks; narrower than the image encoder's
            default because every clip runs it once per frame.
    """

    def __init__(
        self,
        spec: InputSpec,
        dim: int = 128,
        frame_dim: int = 128,
        temporal: str = "mean",
        widths: tuple[int, ...] = (16, 32, 64, 64),
    ) -> None:
        super().__init__()
        if temporal not in TEMPORAL_POOLING:
            raise ValueError(
                f"unknown temporal pooling {temporal!r}; choose one of: "
                f"{', '.join(TEMPORAL_POOLING)}"
            )
        if len(spec.shape) != 4:
            raise ValueError(f"video spec shape must be (N, C, H, W), got {spec.shape}")
        self.temporal = temporal
        self.frame_encoder = ImageCNNEncoder(
            InputSpec("image", spec.shape[1:]), dim=frame_dim, widths=tuple(widths)
        )
        if temporal == "gru":
            self.gru = nn.GRU(frame_dim, frame_dim, batch_first=True)
        elif temporal == "attention":
            self.query = nn.Parameter(torch.randn(frame_dim) / math.sqrt(frame_dim))
        self.proj = nn.Linear(frame_dim, dim)
        self.output_dim = dim

    def forward(self, x: Tensor) -> Tensor:
        b, n = x.shape[:2]
        frames = self.frame_encoder(x.flatten(0, 1)).view(b, n, -1)  # (B, N, frame_dim)
        if self.temporal == "gru":
            _, last = self.gru(frames)  # (1, B, frame_dim)
            pooled = last[0]
        elif self.temporal == "attention":
            scores = frames @ self.query / math.sqrt(frames.shape[-1])  # (B, N)
            pooled = (scores.softmax(dim=1).unsqueeze(-1) * frames).sum(1)
        else:
            pooled = frames.mean(dim=1)
        return self.proj(pooled)
