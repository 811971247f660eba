"""Decision-level fusion: the product of the per-modality probabilities (a logarithmic opinion
pool), each modality's weight and the class prior fitted on validation data."""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor

from mmfuse.fusion import register_fusion
from mmfuse.fusion.mean import MeanFusion
from mmfuse.fusion.weighted import fit_loss, minimise, mix_present, prepare_fit_data, stack_late


@register_fusion("product")
class ProductFusion(MeanFusion):
    """Multiplies the present modalities' probabilities, each divided by the class prior.

    Classification: with ``log_p_bm = log softmax(z_bm)``, presence ``r_bm``, weights ``w_m >= 0``
    (buffer ``weights``, default 1) and log prior ``b`` (buffer ``log_prior``, default uniform)
    the output logits are ``b + sum_m r_bm w_m (log_p_bm - b)``. With ``w = 1`` this is the
    Bayes posterior when the modalities are independent given the class: each present modality
    multiplies in its evidence ``p(y | x_m) / p(y)``, so two modalities that agree give a surer
    answer than either (where ``mean`` gives their average), and a missing modality simply adds
    no evidence. No modality present: the prior. A weight under 1 tempers an overconfident or
    redundant modality. Regression: the weighted mean of the present values (the mean of
    Gaussian experts with precisions ``w_m``), 0 when none is present. Kittler et al., "On
    Combining Classifiers", TPAMI 1998 (product rule); Genest & Zidek, "Combining Probability
    Distributions", Statistical Science 1986 (logarithmic opinion pool).

    ``fit_combiner`` is optional (``requires_fit`` is False: the plain product rule is a valid
    operator). It minimises validation log-loss / MSE over ``w = exp(theta)`` and the prior's
    logits with LBFGS from ``theta = 0`` and the validation class frequencies, plus
    ``(reg / N) * ||theta||^2``: a prior pulling every weight towards 1 whose relative strength
    grows as the number ``N`` of validation records shrinks. The fitted prior is the one that
    predicts best with the weights, which need not be the class frequencies when the modalities'
    own predictions already hold the prior.

    Inputs: outputs {modality: (B, C)} logits or values, mask {modality: (B,) bool}.

    Args:
        input_dims: Number of outputs ``C`` of each modality (all equal).
        task: ``"classification"`` or ``"regression"``.
    """

    description = "product of the per-modality probabilities over the prior (weights fitted on validation)"
    requires_fit = False
    weights: Tensor
    log_prior: Tensor

    def __init__(self, input_dims: Mapping[str, int], task: str = "classification") -> None:
        super().__init__(input_dims, task)
        self.register_buffer("weights", torch.ones(len(self.modalities)))
        self.register_buffer("log_prior", torch.full((self.output_dim,), -math.log(self.output_dim)))

    def forward(self, outputs: Mapping[str, Tensor], mask: Mapping[str, Tensor]) -> Tensor:
        y, present = stack_late(self.modalities, outputs, mask)
        return _pool(y, present, self.weights.to(y.dtype), self.log_prior.to(y.dtype), self.task)

    def fit_combiner(
        self,
        outputs: Mapping[str, Tensor],
        mask: Mapping[str, Tensor],
        targets: Tensor,
        *,
        reg: float = 1.0,
        max_iter: int = 200,
    ) -> None:
        """Fits ``weights`` (and, for classification, ``log_prior``) on held-out predictions.

        Args:
            outputs: Modality -> (N, C) validation logits / values of that modality's model.
            mask: Modality -> (N,) presence.
            targets: (N,) class indices (as float or int) or standardised regression values.
            reg: Strength of the prior pulling the log-weights towards 0 (weights 1; >= 0).
            max_iter: LBFGS iterations.
        """
        if reg < 0:
            raise ValueError(f"reg must be >= 0, got {reg}")
        data = prepare_fit_data(self, outputs, mask, targets)
        strength = reg / data.targets.shape[0]
        theta = torch.zeros(len(self.modalities), dtype=torch.float64, requires_grad=True)
        params = [theta]
        prior = torch.zeros(self.output_dim, dtype=torch.float64)
        if self.task == "classification":
            counts = torch.bincount(data.targets, minlength=self.output_dim).to(torch.float64)
            prior = (counts + 1.0).log().requires_grad_(True)  # add-one smoothed frequencies
            params.append(prior)

        def loss() -> Tensor:
            pred = _pool(data.outputs, data.present, theta.exp(), prior.log_softmax(0), self.task)
            return fit_loss(pred, data.targets, self.task) + strength * theta.pow(2).sum()

        minimise(params, loss, max_iter)
        self.weights.copy_(theta.detach().exp())
        if self.task == "classification":
            self.log_prior.copy_(prior.detach().log_softmax(0))


def _pool(outputs: Tensor, present: Tensor, weights: Tensor, log_prior: Tensor, task: str) -> Tensor:
    """(B, C) logits of the weighted product (classification) or the weighted mean (regression)
    of (B, M, C) zero-filled predictions."""
    if task == "regression":
        return mix_present(outputs, present, weights.clamp_min(torch.finfo(outputs.dtype).tiny).log(), task)
    evidence = outputs.log_softmax(-1) - log_prior  # (B, M, C): log p(y | x_m) / p(y)
    used = (present.to(outputs.dtype) * weights).unsqueeze(-1)  # (B, M, 1), 0 where missing
    return log_prior + (used * evidence).sum(1)
