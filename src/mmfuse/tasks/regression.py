"""Regression: mean squared error on standardised targets."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from mmfuse.models.multimodal import ModelOutput
from mmfuse.tasks.per_modality import training_loss


class RegressionTask:
    """MSE on the combined output (plus, weighted, on the auxiliary heads' outputs); at the late
    level, on each modality's own output."""

    name = "regression"

    def loss(self, output: ModelOutput, target: Tensor) -> dict[str, Tensor]:
        """{"loss": scalar} to minimise."""
        def mse(pred: Tensor, y: Tensor) -> Tensor:
            return F.mse_loss(pred.squeeze(-1), y)

        return {"loss": training_loss(output, target.float(), mse)}

    def eval_loss(self, output: ModelOutput, target: Tensor) -> Tensor:
        """MSE of the combined prediction (for validation)."""
        return F.mse_loss(output.require_logits().squeeze(-1).float(), target.float())

    def predict(self, output: ModelOutput) -> Tensor:
        """(B,) standardised predictions."""
        return output.require_logits().float().squeeze(-1)
