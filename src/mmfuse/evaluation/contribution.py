"""How much each modality contributes to a trained model's predictions.

- ``shapley_values`` / ``modality_shapley``: Shapley values of the modalities, the players
  being "present" or "absent" for a sample: absent is a mask entry False, or, given a
  ``baseline``, the modality's embedding replaced by a reference embedding (e.g. its training
  mean) with the mask kept, for a model that never saw a modality missing in training. Exact
  over all ``2^M`` coalitions for up to ``exact_max`` modalities, permutation sampling above.
  See Shapley, "A Value for n-Person Games", 1953; Lundberg and Lee, "A Unified Approach to
  Interpreting Model Predictions", NeurIPS 2017.
- ``ablation_deltas``: metric with every modality minus metric with one removed.
- ``fusion_weights``: the weights a fusion operator itself gives each modality.

Input-level attribution (occlusion) is in ``occlusion.py``, the fusion operator's own weights
in ``fusion_weights.py``, the plots in ``contribution_plots.py``; all are re-exported here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from mmfuse.data.preprocess import Encoded
from mmfuse.data.tensors import TensorData
from mmfuse.evaluation._forward import check_task, embeddings_of, on_embeddings, outputs_under
from mmfuse.evaluation.contribution_plots import plot_contributions, plot_sample
from mmfuse.evaluation.fusion_weights import fusion_weights
from mmfuse.evaluation.occlusion import occlusion_attribution
from mmfuse.models.multimodal import MultimodalModel

ValueFn = Callable[[Mapping[str, np.ndarray]], np.ndarray]
"""present {modality: (N,) bool} -> (N,) value of that coalition for every sample."""

Baseline = Mapping[str, np.ndarray]
"""modality -> (D_m,) embedding that stands in for the modality where it is hidden."""

MetricFn = Callable[[np.ndarray, np.ndarray], float]
"""(targets, predictions) -> metric; probabilities (N, C) or standardised values (N,)."""

UNITS = {  # what a Shapley value measures, per task
    "classification": "contribution to P(predicted class)",
    "regression": "contribution to prediction (standardised)",
}

__all__ = [
    "Ablation",
    "ShapleyResult",
    "ablation_deltas",
    "fusion_weights",
    "modality_shapley",
    "model_value_fn",
    "occlusion_attribution",
    "plot_contributions",
    "plot_sample",
    "shapley_values",
]


# ----------------------------------------------------------------- Shapley values
def shapley_values(
    value_fn: ValueFn,
    modalities: Sequence[str],
    exact_max: int = 6,
    num_permutations: int = 200,
    seed: int = 0,
    num_samples: int | None = None,
) -> np.ndarray:
    """Per-sample Shapley values of the modalities, ``(N, M)`` in the order of ``modalities``.

    Exact when ``M <= exact_max``: ``phi_j = sum_{S not containing j} |S|!(M-|S|-1)!/M!
    (v(S + j) - v(S))``. Otherwise ``num_permutations`` random orderings (antithetic pairs:
    each ordering and its reverse) average the marginal contributions. Coalition values are
    cached, so each coalition is evaluated once. Both modes are efficient: the values of a
    sample sum to ``v(all) - v(none)``.

    Args:
        value_fn: Coalition -> per-sample value; the same coalition is used for every sample.
        modalities: The players.
        exact_max: Largest number of modalities computed exactly.
        num_permutations: Orderings sampled in Monte Carlo mode (rounded up to even).
        seed: Seed of the orderings.
        num_samples: N, the length of the coalition arrays; None: ``value_fn.num_samples``
            if it has one, else the first call gets length-1 arrays (to broadcast) and the
            length of its result sets N.
    """
    mods = list(modalities)
    num = len(mods)
    cache: dict[int, np.ndarray] = {}
    size = [num_samples if num_samples is not None else getattr(value_fn, "num_samples", None)]

    def value(coalition: int) -> np.ndarray:
        if coalition not in cache:
            n = 1 if size[0] is None else size[0]
            present = {m: np.full(n, bool(coalition >> j & 1)) for j, m in enumerate(mods)}
            cache[coalition] = np.asarray(value_fn(present), dtype=np.float64).reshape(-1)
            size[0] = len(cache[coalition])
        return cache[coalition]

    if num == 0:
        return np.zeros((len(value(0)), 0))
    if num <= exact_max:
        return _exact(value, num)
    return _sampled(value, num, num_permutations, seed)


def _exact(value: Callable[[int], np.ndarray], num: int) -> np.ndarray:
    first = value((1 << num) - 1)
    phi = np.zeros((len(first), num))
    for j in range(num):
        bit = 1 << j
        for coalition in range(1 << num):
            if coalition & bit:
                continue
            size = bin(coalition).count("1")
            weight = math.factorial(size) * math.factorial(num - size - 1) / math.factorial(num)
            phi[:, j] += weight * (value(coalition | bit) - value(coalition))
    return phi


def _sampled(
    value: Callable[[int], np.ndarray], num: int, num_permutations: int, seed: int
) -> np.ndarray:
    rng = np.random.default_rng(seed)
    phi = np.zeros((len(value((1 << num) - 1)), num))
    pairs = max(1, (num_permutations + 1) // 2)
    for _ in range(pairs):
        order = rng.permutation(num)
        for perm in (order, order[::-1]):
            coalition, previous = 0, value(0)
            for j in perm:
                coalition |= 1 << int(j)
                current = value(coalition)
                phi[:, j] += current - previous
                previous = current
    return phi / (2 * pairs)


# -------------------------------------------------------------- a model's values
def model_value_fn(
    model: MultimodalModel,
    enc: Encoded,
    task: str,
    batch_size: int = 256,
    baseline: Baseline | None = None,
) -> ValueFn:
    """The value function of ``model`` on the records of ``enc``.

    ``v(S)`` for record ``i`` is the probability of the class predicted with all of the
    record's modalities (classification), or the prediction on the target's standardised
    scale (regression), with the modalities outside ``S`` hidden: masked (mask ``original
    mask AND S``), or with ``baseline`` (one embedding for every model modality), their
    embeddings replaced by the baseline's and the mask kept. A modality missing in the data
    stays missing either way, so its Shapley value is exactly 0.

    Raises:
        ValueError: An unknown task, or a baseline that lacks a modality or has the wrong width.
    """
    check_task(task)
    return ModelValue(model, enc, task, batch_size, baseline)


class ModelValue:
    """The value function ``model_value_fn`` returns (``num_samples`` = number of records;
    ``outputs``: the model's predictions with every present modality, (N, C) or (N,))."""

    def __init__(
        self, model: MultimodalModel, enc: Encoded, task: str, batch_size: int,
        baseline: Baseline | None = None,
    ) -> None:  # fmt: skip
        self.data = embeddings_of(model, enc, batch_size)
        self.model = on_embeddings(model)
        self.task, self.batch_size = task, batch_size
        self.baseline = None if baseline is None else _baseline_tensors(baseline, self.data)
        self.num_samples = len(enc)
        self.outputs = outputs_under(self.model, self.data, task, self.data.mask, batch_size)
        self.predicted = self.outputs.argmax(1) if task == "classification" else None

    def __call__(self, present: Mapping[str, np.ndarray]) -> np.ndarray:
        hide = {m: ~torch.as_tensor(np.asarray(present[m], dtype=bool))
                for m in self.model.modalities}  # fmt: skip
        data, mask = _hidden(self.data, hide, self.baseline)
        out = outputs_under(self.model, data, self.task, mask, self.batch_size)
        if self.predicted is not None:
            out = out.gather(1, self.predicted.unsqueeze(1)).squeeze(1)
        return out.double().numpy()


def _baseline_tensors(baseline: Baseline, data: TensorData) -> dict[str, Tensor]:
    """``baseline`` as float32 tensors, checked against the embeddings ``data`` holds.

    Raises:
        ValueError: A modality of ``data`` without a baseline, or a baseline of the wrong width.
    """
    lacking = sorted(set(data.inputs) - set(baseline))
    if lacking:
        raise ValueError(f"the baseline has no embedding for {', '.join(lacking)}")
    out = {m: torch.as_tensor(np.asarray(baseline[m], dtype=np.float32)) for m in data.inputs}
    for m, b in out.items():
        width = data.inputs[m].shape[1]
        if b.shape != (width,):
            raise ValueError(f"the baseline of {m!r} has shape {tuple(b.shape)}; its embeddings "
                             f"are {width}-d")  # fmt: skip
    return out


def _hidden(
    data: TensorData, hide: Mapping[str, Tensor], baseline: Mapping[str, Tensor] | None
) -> tuple[TensorData, dict[str, Tensor]]:
    """The embeddings and mask with each modality hidden where ``hide`` ((N,) or (1,) bool) is
    True: masked out, or, with ``baseline``, its embedding replaced by the baseline's and the
    mask kept. A modality missing in the data stays as it is (zeros, mask False)."""
    if baseline is None:
        return data, {m: v & ~hide[m] for m, v in data.mask.items()}
    inputs = {m: torch.where((hide[m] & data.mask[m]).unsqueeze(1), baseline[m], x)  # (N, D)
              for m, x in data.inputs.items()}  # fmt: skip
    return TensorData(inputs, dict(data.mask), data.targets), dict(data.mask)


@dataclass
class ShapleyResult:
    """Per-modality Shapley values of a model on some records.

    Attributes:
        values: (N, M) per-record values, columns in the order of ``modalities``.
        modalities: Modality names.
        base: (N,) value with no modality present, ``v(none)``.
        full: (N,) value with every (available) modality present, ``v(all)``.
        mean_abs: (M,) mean |phi| per modality.
        mean_abs_ci: (M, 2) 95% bootstrap interval of ``mean_abs``.
        mean: (M,) mean signed phi per modality.
        mean_ci: (M, 2) 95% bootstrap interval of ``mean``.
        task: "classification" or "regression" (sets the units, see ``units``).
    """

    values: np.ndarray
    modalities: list[str]
    base: np.ndarray
    full: np.ndarray
    mean_abs: np.ndarray
    mean_abs_ci: np.ndarray
    mean: np.ndarray
    mean_ci: np.ndarray
    task: str

    @property
    def units(self) -> str:
        """What the values measure, for axis labels."""
        return UNITS[self.task]


def modality_shapley(
    model: MultimodalModel,
    enc: Encoded,
    task: str,
    exact_max: int = 6,
    num_permutations: int = 200,
    num_bootstrap: int = 1000,
    seed: int = 0,
    batch_size: int = 256,
    baseline: Baseline | None = None,
) -> ShapleyResult:
    """Shapley values of the modalities of ``model`` for every record of ``enc``.

    Args:
        model: Trained model.
        enc: Preprocessed records.
        task: "classification" or "regression".
        exact_max: Largest number of modalities computed exactly (see ``shapley_values``).
        num_permutations: Orderings sampled above ``exact_max``.
        num_bootstrap: Bootstrap resamples of the records for the 95% intervals.
        seed: Seed of the orderings and of the bootstrap.
        batch_size: Records per forward pass.
        baseline: What a hidden modality's embedding becomes (see ``model_value_fn``);
            None: hidden modalities are masked.
    """
    value = model_value_fn(model, enc, task, batch_size, baseline)
    mods = list(model.modalities)
    phi = shapley_values(value, mods, exact_max, num_permutations, seed, num_samples=len(enc))
    n = len(enc)
    base = value({m: np.zeros(n, dtype=bool) for m in mods})
    full = value({m: np.ones(n, dtype=bool) for m in mods})
    mean_abs, mean_abs_ci = _mean_with_interval(np.abs(phi), num_bootstrap, seed)
    mean, mean_ci = _mean_with_interval(phi, num_bootstrap, seed)
    return ShapleyResult(phi, mods, base, full, mean_abs, mean_abs_ci, mean, mean_ci, task)


def _mean_with_interval(
    x: np.ndarray, num_bootstrap: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Column means of ``x`` (N, M) and their 95% percentile-bootstrap intervals (M, 2)."""
    n, width = x.shape
    if n == 0:
        return np.full(width, np.nan), np.full((width, 2), np.nan)
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n, np.full(n, 1.0 / n), size=num_bootstrap)  # (B, N) resample counts
    means = counts @ x / n  # (B, M)
    return x.mean(0), np.percentile(means, [2.5, 97.5], axis=0).T


# ------------------------------------------------------------------ ablation
@dataclass
class Ablation:
    """A metric with every modality and with each modality removed for every record.

    Attributes:
        full: Metric with every available modality.
        without: Modality -> metric with that modality removed.
        deltas: Modality -> how much the modality helps: ``full - without`` when higher is
            better, ``without - full`` otherwise (positive = the modality helps).
    """

    full: float
    without: dict[str, float]
    deltas: dict[str, float]


def ablation_deltas(
    model: MultimodalModel,
    enc: Encoded,
    task: str,
    metric_fn: MetricFn,
    higher_is_better: bool = True,
    batch_size: int = 256,
    baseline: Baseline | None = None,
) -> Ablation:
    """Removes each modality from every record in turn and measures the change of a metric.

    Args:
        model: Trained model.
        enc: Preprocessed records with targets.
        task: "classification" or "regression".
        metric_fn: (targets, predictions) -> metric, predictions being probabilities (N, C)
            or standardised values (N,).
        higher_is_better: Direction of the metric (e.g. False for rmse).
        batch_size: Records per forward pass.
        baseline: What a removed modality's embedding becomes (see ``model_value_fn``);
            None: removed modalities are masked.
    """
    check_task(task)
    if enc.targets is None:
        raise ValueError("ablation_deltas needs records with targets")
    targets = enc.targets
    data = embeddings_of(model, enc, batch_size)
    fast = on_embeddings(model)
    reference = None if baseline is None else _baseline_tensors(baseline, data)

    def score(removed: str | None) -> float:
        hide = {m: torch.tensor([m == removed]) for m in model.modalities}
        inputs, mask = _hidden(data, hide, reference)
        predictions = outputs_under(fast, inputs, task, mask, batch_size).numpy()
        return float(metric_fn(targets, predictions))

    full = score(None)
    without = {m: score(m) for m in model.modalities}
    sign = 1.0 if higher_is_better else -1.0
    return Ablation(full, without, {m: sign * (full - w) for m, w in without.items()})
