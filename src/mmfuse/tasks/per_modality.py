"""The loss of per-modality predictions: each modality's own prediction scored on the records
where it is present (the late level's heads, and the feature level's auxiliary heads), and a
prediction task's training loss built from them."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from torch import Tensor

from mmfuse.models.multimodal import ModelOutput

AUXILIARY_WEIGHT = 1.0
"""Weight of the auxiliary heads' loss next to the fused prediction's (feature level)."""


def per_modality_loss(outputs: Mapping[str, Tensor], mask: Mapping[str, Tensor], target: Tensor,
                      loss: Callable[[Tensor, Tensor], Tensor]) -> Tensor:
    """The mean over the modalities of ``loss(prediction, target)`` on the rows where each is
    present (a modality present in no row adds zero)."""
    first = next(iter(outputs.values()))
    total = first.new_zeros(())
    for m, prediction in outputs.items():
        present = mask[m]
        if present.any():
            total = total + loss(prediction[present], target[present])
    return total / len(outputs)


def training_loss(output: ModelOutput, target: Tensor, loss: Callable[[Tensor, Tensor], Tensor]) -> Tensor:
    """``loss`` of a model's output: at the late level each modality's own prediction (where
    present); else the combined prediction's, plus ``AUXILIARY_WEIGHT`` times the auxiliary
    heads' (feature level, in training)."""
    if output.per_modality is not None:
        return per_modality_loss(output.per_modality, output.mask, target, loss)
    total = loss(output.require_logits(), target)
    if output.auxiliary is not None:
        total = total + AUXILIARY_WEIGHT * per_modality_loss(output.auxiliary, output.mask, target, loss)
    return total
