"""Decision-level fusion: a weighted mean of the per-modality predictions, weights fitted on
validation data.

Also holds the small helpers shared by the fitted decision-level operators (``stacking``,
``confidence``): checking and stacking the ``fit_combiner`` arguments, and the masked weighted
mixture of per-modality predictions, and the LBFGS minimisation they fit with.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from mmfuse.fusion import register_fusion
from mmfuse.fusion.mean import MeanFusion


class LateFitData(NamedTuple):
    """Validation predictions prepared for fitting a decision-level combiner (float64, CPU).

    Attributes:
        outputs: (N, M, C) per-modality logits / values in sorted modality order, 0 where missing.
        present: (N, M) presence mask.
        targets: (N,) long class indices (classification) or (N, C) values (regression).
    """

    outputs: Tensor
    present: Tensor
    targets: Tensor


def stack_late(
    modalities: list[str], outputs: Mapping[str, Tensor], mask: Mapping[str, Tensor]
) -> tuple[Tensor, Tensor]:
    """(B, M, C) predictions with missing entries zeroed (NaN-safe) and the (B, M) mask."""
    present = torch.stack([mask[m].bool() for m in modalities], 1)  # (B, M)
    y = torch.stack([outputs[m] for m in modalities], 1)  # (B, M, C)
    return torch.where(present.unsqueeze(-1), y, 0.0), present


def mix_present(outputs: Tensor, present: Tensor, log_weights: Tensor, task: str) -> Tensor:
    """Weighted mean over the present modalities of each sample.

    Args:
        outputs: (B, M, C) logits / values, already zero where missing.
        present: (B, M) presence mask.
        log_weights: (M,) or (B, M) unnormalised log-weights; they are renormalised over the
            modalities present in each sample.
        task: "classification" (mix probabilities, return their log) or "regression" (mix
            values). A sample with nothing present gets uniform logits / 0.
    """
    any_present = present.any(1, keepdim=True)  # (B, 1)
    # rows with nothing present use all modalities (finite gradients); replaced below
    use = present | ~any_present
    log_w = log_weights.expand(present.shape).masked_fill(~use, float("-inf"))
    log_w = log_w.log_softmax(1)  # (B, M), -inf where unused
    if task == "regression":
        mixed = (log_w.exp().unsqueeze(-1) * outputs).sum(1)  # (B, C)
        return torch.where(any_present, mixed, 0.0)
    log_p = outputs.log_softmax(-1)  # (B, M, C)
    mixed = torch.logsumexp(log_w.unsqueeze(-1) + log_p, dim=1)  # (B, C)
    return torch.where(any_present, mixed, -math.log(outputs.shape[-1]))


def prepare_fit_data(
    fusion: MeanFusion,
    outputs: Mapping[str, Tensor],
    mask: Mapping[str, Tensor],
    targets: Tensor,
) -> LateFitData:
    """Checks and stacks ``fit_combiner`` arguments; drops records with no modality present."""
    mods, width = fusion.modalities, fusion.output_dim
    absent = [m for m in mods if m not in outputs or m not in mask]
    if absent:
        raise ValueError(f"fit_combiner: no outputs or mask for {absent}; expected {mods}")
    n = int(targets.shape[0])
    for m in mods:
        if tuple(outputs[m].shape) != (n, width) or tuple(mask[m].shape) != (n,):
            raise ValueError(
                f"fit_combiner: {m!r} outputs {tuple(outputs[m].shape)} / mask "
                f"{tuple(mask[m].shape)}; expected ({n}, {width}) / ({n},) to match targets"
            )
    cpu = {m: outputs[m].detach().to("cpu", torch.float64) for m in mods}
    y, present = stack_late(mods, cpu, {m: mask[m].detach().cpu() for m in mods})
    if not torch.isfinite(y).all():
        raise ValueError("fit_combiner: non-finite outputs for a present modality")
    t = targets.detach().to("cpu", torch.float64)
    if fusion.task == "classification":
        if t.dim() != 1 or (t != t.round()).any() or (t < 0).any() or (t >= width).any():
            raise ValueError(f"fit_combiner: targets must be class indices in [0, {width})")
        t = t.long()
    else:
        t = t.reshape(n, -1)
        if t.shape[1] != width or not torch.isfinite(t).all():
            raise ValueError(f"fit_combiner: targets must be {width} finite value(s) per record")
    keep = present.any(1)
    if not keep.any():
        raise ValueError("fit_combiner: no record has any modality present")
    return LateFitData(y[keep], present[keep], t[keep])


def minimise(params: list[Tensor], loss: Callable[[], Tensor], max_iter: int) -> None:
    """Minimises ``loss()`` over ``params`` (leaf tensors with ``requires_grad``) in place with
    LBFGS and a strong-Wolfe line search: deterministic from the given starting values."""
    opt = torch.optim.LBFGS(params, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        opt.zero_grad()
        value = loss()
        value.backward()
        return value

    opt.step(closure)  # type: ignore[no-untyped-call]  # grad on inside


def fit_loss(prediction: Tensor, targets: Tensor, task: str) -> Tensor:
    """Mean log-loss (classification) or mean squared error (regression)."""
    if task == "classification":
        return F.cross_entropy(prediction, targets)
    return F.mse_loss(prediction, targets)


@register_fusion("weighted")
class WeightedFusion(MeanFusion):
    """A weighted mean of the per-modality predictions with one fitted weight per modality.

    With non-negative weights ``w_m`` (buffer ``weights``, summing to 1) and presence
    ``r_bm``, each sample renormalises over its present modalities:
    ``a_bm = r_bm w_m / sum_k r_bk w_k``. Classification: ``log(sum_m a_bm softmax(z_bm))``
    (logits of the mixed probability); regression: ``sum_m a_bm y_bm``. No modality present:
    uniform logits / 0; present modalities whose weights are all 0 count equally. Weighted sum
    rule of Kittler et al., "On Combining Classifiers", TPAMI 1998.

    Before ``fit_combiner`` the weights are uniform, so it is exactly ``mean``. ``fit_combiner``
    minimises validation log-loss / MSE over the simplex, ``w = softmax(theta)``, with LBFGS
    from ``theta = 0`` (deterministic) plus ``(reg / N) * ||theta - mean(theta)||^2``, a
    Gaussian prior pulling towards uniform weights whose relative strength grows as the number
    ``N`` of validation records shrinks, so small validation sets give moderate weights.

    Inputs: outputs {modality: (B, C)} logits or values, mask {modality: (B,) bool}.

    Args:
        input_dims: Number of outputs ``C`` of each modality (all equal).
        task: ``"classification"`` or ``"regression"``.
    """

    description = "weighted mean of the per-modality predictions, weights fitted on validation"
    requires_fit = True
    weights: Tensor

    def __init__(self, input_dims: Mapping[str, int], task: str = "classification") -> None:
        super().__init__(input_dims, task)
        num = len(self.modalities)
        self.register_buffer("weights", torch.full((num,), 1.0 / num))

    def forward(self, outputs: Mapping[str, Tensor], mask: Mapping[str, Tensor]) -> Tensor:
        y, present = stack_late(self.modalities, outputs, mask)
        weights = self.weights.to(y.dtype).clamp_min(torch.finfo(y.dtype).tiny)
        return mix_present(y, present, weights.log(), self.task)

    def fit_combiner(
        self,
        outputs: Mapping[str, Tensor],
        mask: Mapping[str, Tensor],
        targets: Tensor,
        *,
        reg: float = 1.0,
        max_iter: int = 200,
    ) -> None:
        """Fits ``weights`` on held-out per-modality predictions.

        Args:
            outputs: Modality -> (N, C) validation logits / values of that modality's model.
            mask: Modality -> (N,) presence.
            targets: (N,) class indices (as float or int) or standardised regression values.
            reg: Strength of the prior pulling the log-weights towards uniform (>= 0).
            max_iter: LBFGS iterations.
        """
        if reg < 0:
            raise ValueError(f"reg must be >= 0, got {reg}")
        data = prepare_fit_data(self, outputs, mask, targets)
        strength = reg / data.targets.shape[0]
        theta = torch.zeros(len(self.modalities), dtype=torch.float64, requires_grad=True)

        def loss() -> Tensor:
            pred = mix_present(data.outputs, data.present, theta, self.task)
            return fit_loss(pred, data.targets, self.task) + strength * (theta - theta.mean()).pow(2).sum()

        minimise([theta], loss, max_iter)
        self.weights.copy_(theta.detach().softmax(0))
