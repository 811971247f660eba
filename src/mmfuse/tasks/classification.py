"""Classification: (optionally class-weighted) cross-entropy; softmax probabilities."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from mmfuse.models.multimodal import ModelOutput
from mmfuse.tasks.per_modality import training_loss


def balanced_class_weights(targets: np.ndarray, num_classes: int) -> list[float]:
    """``n / (k * count_c)`` per class (sklearn's "balanced"), 1.0 for unseen classes."""
    counts = np.bincount(targets.astype(int), minlength=num_classes).astype(float)
    weights = np.where(counts > 0, counts.sum() / (num_classes * np.maximum(counts, 1)), 1.0)
    return [float(w) for w in weights]


class ClassificationTask:
    """Cross-entropy on the combined logits (plus, weighted, on the auxiliary heads' logits);
    at the late level, on each modality's own logits.

    Args:
        num_classes: Number of classes.
        class_weights: Per-class loss weights (for imbalanced targets), or None.
    """

    name = "classification"

    def __init__(self, num_classes: int, class_weights: list[float] | None = None) -> None:
        self.num_classes = num_classes
        self.class_weights = class_weights

    def loss(self, output: ModelOutput, target: Tensor) -> dict[str, Tensor]:
        """{"loss": scalar} to minimise."""
        y, combined = target.long(), output.require_logits()
        weight = None
        if self.class_weights is not None:
            weight = torch.tensor(self.class_weights, dtype=combined.dtype, device=y.device)

        def ce(logits: Tensor, y: Tensor) -> Tensor:
            return F.cross_entropy(logits, y, weight=weight)

        return {"loss": training_loss(output, y, ce)}

    def eval_loss(self, output: ModelOutput, target: Tensor) -> Tensor:
        """Unweighted cross-entropy of the combined prediction (for validation)."""
        return F.cross_entropy(output.require_logits(), target.long())

    def predict(self, output: ModelOutput) -> Tensor:
        """(B, C) class probabilities."""
        return output.require_logits().float().softmax(-1)
