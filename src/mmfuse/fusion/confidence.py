"""Decision-level fusion: per-sample weights from each modality's predictive confidence."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from mmfuse.fusion import register_fusion
from mmfuse.fusion.mean import MeanFusion
from mmfuse.fusion.weighted import mix_present, prepare_fit_data, stack_late

TEMPERATURE_GRID = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, math.inf)


@register_fusion("confidence")
class ConfidenceFusion(MeanFusion):
    """Mixes the present modalities with per-sample weights from their predictive entropy.

    Classification: ``p_bm = softmax(z_bm)``, ``H_bm = -sum_c p_bmc log p_bmc`` and
    ``w_bm = exp(-H_bm / T)`` normalised over the modalities present in sample ``b``; the output
    is ``log(sum_m w_bm p_bm)``. A modality that is uninformative (near-uniform) or corrupted
    for one sample is discounted for that sample only; ``T = inf`` is ``mean``. ``T`` is the
    buffer ``temperature`` (default 1). No modality present: uniform logits. Regression: the
    per-modality models give no uncertainty, so it falls back to the plain mean of the present
    values. Inspired by the confidence-aware late fusion of Han et al., "Trusted Multi-View
    Classification", ICLR 2021 / TPAMI 2022; this is an entropy-weighting simplification.

    ``fit_combiner`` is optional (``requires_fit`` is False: the default ``T = 1`` is a valid
    operator): it picks ``T`` from a small grid by validation log-loss; a no-op for regression.

    Inputs: outputs {modality: (B, C)} logits or values, mask {modality: (B,) bool}.

    Args:
        input_dims: Number of outputs ``C`` of each modality (all equal).
        task: ``"classification"`` or ``"regression"``.
        temperature: Initial ``T`` (> 0, may be ``inf``).
    """

    description = "per-sample weights from each modality's predictive entropy (confidence)"
    requires_fit = False
    temperature: Tensor

    def __init__(
        self,
        input_dims: Mapping[str, int],
        task: str = "classification",
        temperature: float = 1.0,
    ) -> None:
        super().__init__(input_dims, task)
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.register_buffer("temperature", torch.tensor(float(temperature)))

    def forward(self, outputs: Mapping[str, Tensor], mask: Mapping[str, Tensor]) -> Tensor:
        if self.task == "regression":
            return super().forward(outputs, mask)
        y, present = stack_late(self.modalities, outputs, mask)
        return _entropy_mix(y, present, self.temperature.to(y.dtype))

    def fit_combiner(
        self,
        outputs: Mapping[str, Tensor],
        mask: Mapping[str, Tensor],
        targets: Tensor,
        *,
        grid: Sequence[float] = TEMPERATURE_GRID,
    ) -> None:
        """Sets ``temperature`` to the grid value with the lowest validation log-loss.

        Ties go to the earlier grid value. Regression: nothing to fit (inputs are not checked).

        Args:
            outputs: Modality -> (N, C) validation logits of that modality's model.
            mask: Modality -> (N,) presence.
            targets: (N,) class indices (as float or int).
            grid: Candidate temperatures (> 0).
        """
        if self.task == "regression":
            return
        if not grid or min(grid) <= 0:
            raise ValueError(f"grid must hold temperatures > 0, got {list(grid)}")
        data = prepare_fit_data(self, outputs, mask, targets)
        losses = [
            F.cross_entropy(
                _entropy_mix(data.outputs, data.present, torch.tensor(t, dtype=torch.float64)),
                data.targets,
            ).item()
            for t in grid
        ]
        self.temperature.fill_(grid[losses.index(min(losses))])


def _entropy_mix(outputs: Tensor, present: Tensor, temperature: Tensor) -> Tensor:
    """(B, C) log of the entropy-weighted mixture of (B, M, C) zero-filled logits."""
    log_p = outputs.log_softmax(-1)  # (B, M, C)
    entropy = -(log_p.exp() * log_p).sum(-1)  # (B, M)
    return mix_present(outputs, present, -entropy / temperature, "classification")
