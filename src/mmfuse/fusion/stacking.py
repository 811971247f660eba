"""Decision-level fusion: a meta-model fitted on the per-modality predictions (stacking)."""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from mmfuse.fusion import register_fusion
from mmfuse.fusion.mean import MeanFusion
from mmfuse.fusion.weighted import minimise, prepare_fit_data, stack_late

LOG_PROB_FLOOR = math.log(1e-12)


@register_fusion("stacking")
class StackingFusion(MeanFusion):
    """Stacked generalisation: a linear meta-model on the per-modality predictions.

    Features, per modality in sorted order: its log-probabilities ``log softmax(z_m)`` floored
    at ``log 1e-12`` (classification) or its values (regression), zeros when missing, plus a
    presence flag ``r_m``: ``x = [f_1, r_1, ..., f_M, r_M]`` of size ``F = M (C + 1)``. Output
    ``log_softmax(x @ coef + intercept)`` (multinomial logistic regression) or
    ``x @ coef + intercept`` (ridge regression), with buffers ``coef`` (F, C) and
    ``intercept`` (C,). No modality present: uniform logits / 0. Wolpert, "Stacked
    Generalization", Neural Networks 1992.

    Before ``fit_combiner`` (buffer ``fitted`` False) it is exactly ``mean``. ``fit_combiner``
    must get the per-modality models' predictions on held-out (validation) records, i.e.
    predictions of base models trained on other records, so the meta-model learns how far each
    modality can be trusted out of sample: no leakage from the base models' training data.
    Features are standardised for the fit and the scaling folded back into ``coef`` /
    ``intercept``; the L2 penalty ``alpha ||W||^2`` (intercept unpenalised) is solved in closed
    form for ridge and with LBFGS from zero (deterministic) for logistic regression. Use
    ``cross_fitted_predict`` to score the meta-model on the records it is fitted on.

    Inputs: outputs {modality: (B, C)} logits or values, mask {modality: (B,) bool}.

    Args:
        input_dims: Number of outputs ``C`` of each modality (all equal).
        task: ``"classification"`` or ``"regression"``.
    """

    description = "a linear meta-model on the per-modality predictions (stacked generalisation)"
    requires_fit = True
    coef: Tensor
    intercept: Tensor
    fitted: Tensor

    def __init__(self, input_dims: Mapping[str, int], task: str = "classification") -> None:
        super().__init__(input_dims, task)
        self.num_features = len(self.modalities) * (self.output_dim + 1)
        self.register_buffer("coef", torch.zeros(self.num_features, self.output_dim))
        self.register_buffer("intercept", torch.zeros(self.output_dim))
        self.register_buffer("fitted", torch.tensor(False))

    def features(self, outputs: Tensor, present: Tensor) -> Tensor:
        """(B, F) meta-features from (B, M, C) zero-filled predictions and the (B, M) mask."""
        if self.task == "classification":
            log_p = outputs.log_softmax(-1).clamp_min(LOG_PROB_FLOOR)
            outputs = torch.where(present.unsqueeze(-1), log_p, 0.0)
        flags = present.unsqueeze(-1).to(outputs.dtype)
        return torch.cat([outputs, flags], -1).flatten(1)  # (B, M * (C + 1))

    def forward(self, outputs: Mapping[str, Tensor], mask: Mapping[str, Tensor]) -> Tensor:
        if not bool(self.fitted):
            return super().forward(outputs, mask)
        y, present = stack_late(self.modalities, outputs, mask)
        x = self.features(y, present)
        out = x @ self.coef.to(x.dtype) + self.intercept.to(x.dtype)  # (B, C)
        any_present = present.any(1, keepdim=True)
        if self.task == "regression":
            return torch.where(any_present, out, 0.0)
        return torch.where(any_present, out.log_softmax(-1), -math.log(self.output_dim))

    def fit_combiner(
        self,
        outputs: Mapping[str, Tensor],
        mask: Mapping[str, Tensor],
        targets: Tensor,
        *,
        alpha: float = 1e-2,
        max_iter: int = 200,
    ) -> None:
        """Fits the meta-model on held-out per-modality predictions.

        Args:
            outputs: Modality -> (N, C) validation logits / values of that modality's model.
            mask: Modality -> (N,) presence.
            targets: (N,) class indices (as float or int) or standardised regression values.
            alpha: L2 penalty on the (standardised) coefficients.
            max_iter: LBFGS iterations (classification).
        """
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}")
        data = prepare_fit_data(self, outputs, mask, targets)
        x = self.features(data.outputs, data.present)  # (N, F) float64
        mean, std = x.mean(0), x.std(0, unbiased=False)
        std = torch.where(std > 1e-12, std, 1.0)
        z = (x - mean) / std
        if self.task == "regression":
            weight, bias = _ridge(z, data.targets, alpha)
        else:
            weight, bias = _logistic(z, data.targets, self.output_dim, alpha, max_iter)
        coef = weight / std.unsqueeze(-1)  # undo the standardisation
        self.coef.copy_(coef)
        self.intercept.copy_(bias - mean @ coef)
        self.fitted.fill_(True)

    def cross_fitted_predict(
        self,
        outputs: Mapping[str, Tensor],
        mask: Mapping[str, Tensor],
        targets: Tensor,
        folds: int = 5,
        seed: int = 0,
        **fit_kwargs: Any,
    ) -> Tensor:
        """Out-of-fold stacked predictions on the fitting records themselves.

        Records are split into ``folds`` folds (seeded, stratified by target order); each fold
        is predicted by a copy of this operator fitted on the other folds, so scoring the
        result is not optimistic. ``self`` is left unchanged.

        Returns:
            (N, C) logits (classification) or values (regression), in record order.
        """
        n = int(targets.shape[0])
        if not 2 <= folds <= n:
            raise ValueError(f"folds must be between 2 and the number of records {n}, got {folds}")
        fold = _stratified_folds(targets.detach().cpu(), folds, seed)
        ref = outputs[self.modalities[0]]
        result = torch.zeros(n, self.output_dim, dtype=ref.dtype, device=ref.device)
        for k in range(folds):
            train, test = fold != k, fold == k
            meta = copy.deepcopy(self)
            meta.fit_combiner(
                _rows(outputs, train), _rows(mask, train), targets[train.to(targets.device)],
                **fit_kwargs,
            )
            with torch.no_grad():
                pred = meta(_rows(outputs, test), _rows(mask, test))
            result[test.to(ref.device)] = pred.to(result.dtype)
        return result


def _ridge(z: Tensor, targets: Tensor, alpha: float) -> tuple[Tensor, Tensor]:
    """Closed-form ridge on centred features: (Z'Z/N + alpha I) W = Z'(y - ybar)/N.

    The pseudo-inverse gives the minimum-norm solution when ``alpha = 0`` and a column is
    constant (e.g. a modality present in every record).
    """
    n, f = z.shape
    y_mean = targets.mean(0)
    gram = z.T @ z / n + alpha * torch.eye(f, dtype=z.dtype)
    weight = torch.linalg.pinv(gram, hermitian=True) @ (z.T @ (targets - y_mean) / n)  # (F, C)
    return weight, y_mean  # z is centred, so the intercept is the target mean


def _logistic(
    z: Tensor, targets: Tensor, num_classes: int, alpha: float, max_iter: int
) -> tuple[Tensor, Tensor]:
    """Multinomial logistic regression, mean log-loss + alpha ||W||^2, LBFGS from zero."""
    weight = torch.zeros(z.shape[1], num_classes, dtype=z.dtype, requires_grad=True)
    bias = torch.zeros(num_classes, dtype=z.dtype, requires_grad=True)
    minimise([weight, bias], lambda: F.cross_entropy(z @ weight + bias, targets) + alpha * weight.pow(2).sum(),
             max_iter)
    return weight.detach(), bias.detach()


def _stratified_folds(targets: Tensor, folds: int, seed: int) -> Tensor:
    """(N,) fold index: shuffle, stable-sort by target, deal out round-robin."""
    n = targets.shape[0]
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    order = perm[torch.argsort(targets.reshape(n, -1)[perm, 0], stable=True)]
    fold = torch.empty(n, dtype=torch.long)
    fold[order] = torch.arange(n) % folds
    return fold


def _rows(tensors: Mapping[str, Tensor], rows: Tensor) -> dict[str, Tensor]:
    return {m: t[rows.to(t.device)] for m, t in tensors.items()}
