"""Video clips for the from-scratch encoders: ``video_frames`` evenly spaced RGB frames.

A cell is a path to a video file or to a folder of frame images, or the encoded bytes of a
video file (MP4 / MOV, Matroska / WebM, AVI; see ``mmfuse.data.cells``). The input is
``(video_frames, 3, video_size, video_size)`` float32, each frame normalised like an image. A
clip's sound, when the schema asks for it, is the separate audio-track modality
(``<column>_audio``), served by the audio processor (from the same file or bytes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mmfuse.data.kinds import register_processor
from mmfuse.data.kinds.base import Alter, CellProcessor
from mmfuse.types import InputSpec


@register_processor("video")
class VideoKind(CellProcessor):
    """Samples, resizes and normalises frames; ``alter`` sees the (N, 3, H, W) frames in [0, 1]."""

    def spec(self) -> InputSpec:
        c = self.config
        return InputSpec("video", (c.video_frames, 3, c.video_size, c.video_size))

    def decode(self, cell: Any, base_dir: Path, alter: Alter) -> np.ndarray:
        from mmfuse.data.image import normalize_image
        from mmfuse.data.video import load_video_frames

        c = self.config
        return normalize_image(alter(load_video_frames(cell, c.video_frames, c.video_size)))
