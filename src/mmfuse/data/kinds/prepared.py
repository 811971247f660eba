"""Modalities fed to a fine-tuned pretrained network: the network's own input preparation.

The preparation (``mmfuse.data.preparations``, named by the modality's ``PretrainedInput``)
decodes each checked cell and finishes it into the network's input: 224-px ImageNet crops
(images, video frames), WordPiece ids (text), mel partials (audio). The network itself runs in
the model, so nothing is learned here.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mmfuse.data.kinds import PREPARED, register_processor
from mmfuse.data.kinds.base import Alter, CellProcessor, Modality
from mmfuse.types import InputSpec

if TYPE_CHECKING:
    from mmfuse.data.preparations import Preparation
    from mmfuse.data.preprocess import PretrainedInput


def pretrained_input(modality: Modality) -> PretrainedInput:
    """The modality's pretrained network (ValueError for a from-scratch modality)."""
    if modality.pretrained is None:
        raise ValueError(f"modality {modality.name!r} feeds no pretrained network")
    return modality.pretrained


def preparation_of(modality: Modality) -> Preparation:
    """The input preparation of the modality's pretrained network."""
    from mmfuse.data.preparations import get_preparation

    return get_preparation(pretrained_input(modality).preparation)


@register_processor(PREPARED)
class PreparedKind(CellProcessor):
    """Prepares each cell for the fine-tuned network; ``alter`` sees the decoded value (an
    image, frames, a waveform or the text), before the network's last preparation step."""

    def spec(self) -> InputSpec:
        backbone = pretrained_input(self.modality).backbone
        return InputSpec(self.modality.kind, preparation_of(self.modality).shape, backbone=backbone)

    def decode(self, cell: Any, base_dir: Path, alter: Alter) -> np.ndarray:
        prep = preparation_of(self.modality)
        # media: a checked path, or in-memory media read from the value itself; text: the text
        return prep.finish(alter(prep.decode(cell, cell if isinstance(cell, Path) else None)))
