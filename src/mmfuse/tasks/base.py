"""What a task is to the trainer: a loss for training batches, a loss and predictions for
validation."""

from __future__ import annotations

from typing import Protocol

from torch import Tensor

from mmfuse.models.multimodal import ModelOutput


class Task(Protocol):
    """Turns a model's outputs into a loss and into predictions.

    The trainer calls ``loss`` on every training batch's output. To validate, it runs the model
    over all records and joins the batches' outputs into one (``ModelOutput.cat``), then calls
    ``eval_loss`` and ``predict`` on it: the task, not the trainer, knows what of an output it
    reads (logits for a classifier or regressor, embeddings for a retrieval model).
    """

    name: str

    def loss(self, output: ModelOutput, target: Tensor) -> dict[str, Tensor]:
        """{"loss": scalar} to minimise on one training batch."""
        ...

    def eval_loss(self, output: ModelOutput, target: Tensor) -> Tensor:
        """() validation loss of the outputs of every validation record."""
        ...

    def predict(self, output: ModelOutput) -> Tensor:
        """Predictions (one row per record) that the validation metric scores."""
        ...
