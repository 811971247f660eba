"""The validation score that chooses among candidates: the metric on the clean validation
records, and on two damaged copies of them, because what a model meets after deployment is not
always clean.

- **missing**: each modality hidden in 30 % of the records, independently (at least one kept);
- **shuffled**: one modality at a time taken from another record (a modality that is present
  but says nothing true about the record: a wrong photo, a noisy track), averaged over the
  modalities;
- **hidden**: one modality at a time hidden in every record that has another, averaged over the
  modalities. This is what the model's guard (``models.guard``) leaves when it sets a modality
  aside whose input is drowned in noise, and what a user whose camera or microphone fails gets:
  fusion should then do as well as the modalities left. A feature-level model whose path
  without one modality is poor (measured on the demo: ``gated`` and ``concat`` with the image
  hidden .675 and .671 against .706 for the review alone, ``attention`` .715) loses here.

The selection score is ``0.4 clean + 0.2 missing + 0.2 shuffled + 0.2 hidden``. A model that is
a point better on clean data but collapses when a modality goes missing, or trusts a modality
that is garbage, loses; the damaged copies are built once, with a fixed seed, so every candidate
is judged on the same records. With one modality there is nothing to damage: the score is the
clean metric.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from mmfuse.data.preprocess import Encoded
from mmfuse.errors import MmfuseError
from mmfuse.evaluation.metrics import HIGHER_IS_BETTER, PRIMARY_METRIC, primary_metric, task_metrics

MISSING_SHARE = 0.3
WEIGHTS = {"clean": 0.4, "missing": 0.2, "shuffled": 0.2, "hidden": 0.2}
CLASSIFICATION_METRICS = ("accuracy", "f1_macro", "precision_macro", "recall_macro", "roc_auc",
                          "log_loss", "ece")
REGRESSION_METRICS = ("rmse", "mae", "r2", "pearson")


def check_metric(task: str, metric: str | None) -> str:
    """The selection metric's name (the task's primary one by default), or MmfuseError."""
    if metric is None:
        return PRIMARY_METRIC[task]
    known = CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS
    if metric not in known:
        raise MmfuseError(f"--metric {metric!r} is not a {task} metric; choose one of: {', '.join(known)}")
    return metric


def metric_fn(task: str, metric: str, decode: Callable[[np.ndarray], np.ndarray]
              ) -> Callable[[np.ndarray, np.ndarray], float]:
    """(standardised targets, outputs) -> the metric, oriented so that higher is better."""
    sign = 1.0 if HIGHER_IS_BETTER[metric] else -1.0

    def fn(targets: np.ndarray, outputs: np.ndarray) -> float:
        y, p = decode(targets), decode(outputs)
        value = primary_metric(task, y, p) if metric == PRIMARY_METRIC[task] else task_metrics(task, y, p)[metric]
        return sign * value if np.isfinite(value) else -np.inf

    return fn


@dataclass(frozen=True)
class Views:
    """The validation records, clean and damaged (see the module docstring).

    Attributes:
        clean: The records as prepared.
        missing: Each modality hidden in 30 % of them (absent when there is one modality).
        shuffled: Modality -> the records with that modality taken from other records.
        hidden: Modality -> the records with that modality hidden wherever another is present.
    """

    clean: Encoded
    missing: Encoded | None
    shuffled: Mapping[str, Encoded]
    hidden: Mapping[str, Encoded]

    @classmethod
    def build(cls, valid: Encoded, seed: int) -> Views:
        mods = sorted(valid.inputs)
        if len(mods) < 2 or len(valid) < 2:
            return cls(valid, None, {}, {})
        rng = np.random.default_rng(seed)
        return cls(valid, _hide(valid, mods, rng), {m: _shuffle(valid, m, rng) for m in mods},
                   {m: _without(valid, m) for m in mods})

    def all(self) -> list[Encoded]:
        """Every view, clean first (the order of ``outputs`` in ``combine``)."""
        return [self.clean, *([self.missing] if self.missing is not None else []), *self.shuffled.values(),
                *self.hidden.values()]

    def combine(self, outputs: list[np.ndarray], fn: Callable[[np.ndarray, np.ndarray], float],
                targets: np.ndarray | None = None) -> dict[str, float]:
        """The oriented metric on each kind of view and the weighted selection score, from the
        outputs on ``all()``'s views, in that order; ``targets``: those of other validation
        records damaged the same ways (another split's), instead of these."""
        y = self.clean.targets if targets is None else targets
        assert y is not None
        parts = {"clean": fn(y, outputs[0])}
        if self.missing is None:
            return {**parts, "selection": parts["clean"]}
        shuffled = 2 + len(self.shuffled)
        parts["missing"] = fn(y, outputs[1])
        parts["shuffled"] = float(np.mean([fn(y, o) for o in outputs[2:shuffled]]))
        parts["hidden"] = float(np.mean([fn(y, o) for o in outputs[shuffled:]]))
        return {**parts, "selection": sum(WEIGHTS[k] * v for k, v in parts.items())}


def _hide(enc: Encoded, mods: list[str], rng: np.random.Generator) -> Encoded:
    """Each modality missing in ``MISSING_SHARE`` of the records, one kept where all would go."""
    present = np.stack([enc.mask[m] for m in mods], 1)
    kept = present & (rng.random(present.shape) >= MISSING_SHARE)
    emptied = ~kept.any(1) & present.any(1)
    kept[emptied] = present[emptied]
    inputs = {m: np.where(_rows_like(kept[:, i], enc.inputs[m]), enc.inputs[m], 0) for i, m in enumerate(mods)}
    return Encoded(inputs, {m: kept[:, i] for i, m in enumerate(mods)}, enc.rows, enc.targets, [])


def _without(enc: Encoded, modality: str) -> Encoded:
    """``modality`` hidden in every record where another modality is present (a record that has
    only it keeps it: a model predicts from something)."""
    others = np.any([enc.mask[m] for m in enc.mask if m != modality], axis=0)
    kept = enc.mask[modality] & ~others
    x = enc.inputs[modality]
    return Encoded({**enc.inputs, modality: np.where(_rows_like(kept, x), x, 0)}, {**enc.mask, modality: kept},
                   enc.rows, enc.targets, [])


def _rows_like(rows: np.ndarray, x: np.ndarray) -> np.ndarray:
    return rows.reshape((-1,) + (1,) * (x.ndim - 1))


def _shuffle(enc: Encoded, modality: str, rng: np.random.Generator) -> Encoded:
    """``modality``'s inputs and mask from a random other record (a cyclic shift of a random
    order, so no record keeps its own)."""
    order = rng.permutation(len(enc))
    source = np.empty_like(order)
    source[order] = np.roll(order, 1)
    return Encoded({**enc.inputs, modality: enc.inputs[modality][source]},
                   {**enc.mask, modality: enc.mask[modality][source]}, enc.rows, enc.targets, [])
