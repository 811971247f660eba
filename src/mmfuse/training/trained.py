"""What training returns: one value instead of a tuple to unpack."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from mmfuse.training.trainer import TrainConfig


@dataclass(frozen=True)
class TrainedModel:
    """A trained network and what rebuilds and describes it.

    Attributes:
        model: The network, on the CPU in eval mode.
        config: The architecture (``ModelConfig`` or ``RetrievalConfig``) it was built from.
        train_config: The training settings.
        history: One record per epoch (losses, validation metric, seconds).
        kept_epoch: The epoch whose weights ``model`` holds (the best validation epoch, or the
            last one when training kept the last).
        calibration: Classification: the fitted temperature and the validation calibration
            error before and after it (None: not calibrated).
    """

    model: nn.Module
    config: Any
    train_config: TrainConfig
    history: list[dict[str, float]]
    kept_epoch: int | None
    calibration: dict[str, float] | None = None
