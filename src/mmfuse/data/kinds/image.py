"""Images for the from-scratch encoders: an RGB square of ``image_size`` pixels, normalised.

A cell is a path to an image file, or an in-memory image (a PIL image, a numpy array or
encoded bytes; see ``mmfuse.data.cells``). The input is ``(3, image_size, image_size)``
float32, standardised per channel (``mmfuse.data.image.normalize_image``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mmfuse.data.kinds import register_processor
from mmfuse.data.kinds.base import Alter, CellProcessor
from mmfuse.types import InputSpec


@register_processor("image")
class ImageKind(CellProcessor):
    """Loads, resizes and normalises each image; ``alter`` sees the (3, H, W) image in [0, 1]."""

    def spec(self) -> InputSpec:
        size = self.config.image_size
        return InputSpec("image", (3, size, size))

    def decode(self, cell: Any, base_dir: Path, alter: Alter) -> np.ndarray:
        from mmfuse.data.image import load_image, normalize_image

        return normalize_image(alter(load_image(cell, self.config.image_size)))
