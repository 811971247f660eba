"""Regression: mean squared error on standardised targets."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from mmfuse.models.multimodal import ModelOutput


class RegressionTask:
    """MSE on the combined output; at the late level, on each modality's own output."""

    name = "regression"

    def loss(self, output: ModelOutput, target: Tensor) -> dict[str, Tensor]:
        """{"loss": scalar} to minimise."""
        combined = output.require_logits()
        if output.per_modality is None:
            return {"loss": F.mse_loss(combined.squeeze(-1), target.float())}
        total = combined.new_zeros(())
        for m, pred in output.per_modality.items():
            present = output.mask[m]
            if present.any():
                total = total + F.mse_loss(pred.squeeze(-1)[present], target.float()[present])
        return {"loss": total / len(output.per_modality)}

    def eval_loss(self, output: ModelOutput, target: Tensor) -> Tensor:
        """MSE of the combined prediction (for validation)."""
        return F.mse_loss(output.require_logits().squeeze(-1).float(), target.float())

    def predict(self, output: ModelOutput) -> Tensor:
        """(B,) standardised predictions."""
        return output.require_logits().float().squeeze(-1)
