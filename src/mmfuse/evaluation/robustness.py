"""A trained model's metrics as one modality at a time is corrupted or dropped.

:func:`robustness_curves` measures every metric for each modality, each corruption of its
kind (see :mod:`mmfuse.evaluation.corruptions`) plus ``drop``, and each severity;
:func:`robustness_summary` condenses the curves into the relative and effective robustness
of MultiBench (Liang et al., 2021, "MultiBench: Multiscale Benchmarks for Multimodal
Representation Learning", NeurIPS Datasets and Benchmarks, section 3 and appendix);
:func:`plot_robustness` draws them.

Definitions (``m(s)`` is the metric at severity ``s``, ``AUC`` the trapezoid rule over the
severity grid divided by its width, so over the grid 0..1 it is the area under the curve,
and for a flat curve it equals the metric; ``sign`` is +1 for a metric where higher is better
and -1 for an error such as rmse, as MultiBench negates its MSE-scored finance tasks):

- ``auc`` = AUC(m): the raw area, in the metric's units.
- ``relative_robustness`` = sign * AUC(m): MultiBench's relative robustness (its code sums
  trapezoids of width 0.1 over 11 imperfection levels, i.e. the same area over [0, 1]).
  Higher is more robust for every metric (for rmse it is the negated mean rmse).
- ``effective_robustness`` = sign * AUC(m(s) - m(0) - (r(s) - r(0))): MultiBench's effective
  robustness is the performance above that of a reference curve ``r`` (its late-fusion
  baseline) shifted to the same clean performance, ``sum(f - (lf + f[0] - lf[0]))``. Given
  ``reference`` curves (e.g. of a late-fusion or unimodal model) that is what is computed
  (as an area, not a sum over levels, so it does not depend on how many severities there
  are). With a single model there is no reference; then ``r`` is taken flat, the curve of a
  model unaffected by the corruption, and the value is the area of the drop below clean
  performance: 0 = no loss, more negative = faster degradation.
- ``retention`` = AUC(m(s) / m(0)) (AUC(m(0) / m(s)) for errors): a unitless score in
  which 1 = the clean performance is kept at every severity and lower = less robust.

MultiBench also min-max normalises both figures across the models it compares; with one
model that is undefined, so the values above are reported unnormalised.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mmfuse._progress import track
from mmfuse.data.preprocess import Encoded, Preprocessor
from mmfuse.errors import MmfuseError
from mmfuse.evaluation.corruptions import DROP, CorruptionFn, drop_modality, get_kind
from mmfuse.evaluation.metrics import HIGHER_IS_BETTER, PRIMARY_METRIC
from mmfuse.evaluation.scoring import score
from mmfuse.models.fitted import as_fitted

if TYPE_CHECKING:

    from mmfuse.data.readers import Table

CURVE_COLUMNS = ["modality", "corruption", "severity", "metric", "value"]
SUMMARY_COLUMNS = [
    "modality", "corruption", "metric", "clean", "worst", "auc",
    "relative_robustness", "effective_robustness", "retention",
]  # fmt: skip
DEFAULT_SEVERITIES = (0.0, 0.25, 0.5, 0.75, 1.0)
Curve = tuple[np.ndarray, np.ndarray]
"""(severities, values), sorted by severity."""


def robustness_curves(
    model: Any,
    data: str | Path | pd.DataFrame | Table,
    severities: Sequence[float] = DEFAULT_SEVERITIES,
    modalities: Sequence[str] | None = None,
    seed: int = 0,
    num_threads: int | None = None,
    clean: Encoded | None = None,
    verbose: bool = False,
) -> pd.DataFrame:
    """Every metric of ``model`` on labelled ``data`` with one modality corrupted at a time.

    The clean records are decoded once; for each corruption and severity only the corrupted
    modality is decoded again and substituted into them. Severity 0 is always included and
    is the clean metric (computed once).

    Args:
        model: A ``FittedModel``, or anything with a ``fitted_model`` (a fitted classifier or
            regressor).
        data: Labelled records (file, folder, DataFrame or Table).
        severities: Severities in [0, 1].
        modalities: Modalities to corrupt (None: all of the model's).
        seed: Seed of the corruptions (each record also has its own stream).
        num_threads: Threads for decoding media (None: the estimator's setting).
        clean: ``data`` already encoded with its target by the estimator's preprocessor, to
            save decoding it again (None: decode it here).
        verbose: Show progress (one step per modality and corruption).

    Returns:
        Long table with columns modality, corruption, severity, metric, value.
    """
    from mmfuse.data.readers import read_table
    from mmfuse.training.device import set_threads

    fitted = as_fitted(model)
    pre: Preprocessor = fitted.preprocessor
    grid = _check_severities(severities)
    names = _check_modalities(modalities, pre)
    table = read_table(data)
    threads = set_threads(fitted.num_threads if num_threads is None else num_threads)
    options: dict[str, Any] = {"on_bad_record": fitted.on_bad_record, "missing_files": fitted.missing_files}
    if clean is None:
        clean = pre.transform(table, num_threads=threads, verbose=False, **options)
    if len(clean) == 0:
        raise MmfuseError("no records to evaluate")
    clean_metrics = score(fitted, clean)
    rows: list[tuple[str, str, float, str, float]] = []
    steps = [(m, name) for m in names for name in [*get_kind(pre.modalities[m]), DROP]]
    for modality, name in track(steps, len(steps), "robustness (modality, corruption)", verbose):
        kind = pre.modalities[modality]
        single = pre.restrict([modality])
        rows += _rows(modality, name, 0.0, clean_metrics)
        for s in grid[grid > 0]:
            if name == DROP:
                enc = drop_modality(clean, modality, s, np.random.default_rng([seed, 0]))
            else:
                hook = _hook(modality, get_kind(kind)[name], s, seed, _context(pre, kind, name))
                redone = single.transform(
                    table, with_target=False, num_threads=threads, verbose=False,
                    corrupt=hook, **options,
                )  # fmt: skip
                enc = substitute(clean, modality, redone)
            rows += _rows(modality, name, float(s), score(fitted, enc))
    return pd.DataFrame(rows, columns=CURVE_COLUMNS)


def substitute(clean: Encoded, modality: str, other: Encoded) -> Encoded:
    """``clean`` with the inputs and mask of ``modality`` taken from ``other``.

    ``other`` may hold more records than ``clean`` (records rejected for another modality);
    its records must otherwise be the same, in the same order.
    """
    keep = np.isin(other.rows, clean.rows)
    if not np.array_equal(other.rows[keep], clean.rows):
        raise MmfuseError(f"cannot substitute {modality}: the records of the two encodings differ")
    return Encoded(
        {**clean.inputs, modality: other.inputs[modality][keep]},
        {**clean.mask, modality: other.mask[modality][keep]},
        clean.rows,
        clean.targets,
        list(clean.rejected),
    )


def _hook(
    modality: str, fn: CorruptionFn, severity: float, seed: int, context: dict[str, Any]
) -> Any:
    """A ``Preprocessor.transform`` hook that corrupts ``modality`` only."""

    def corrupt(name: str, value: Any, rng: np.random.Generator) -> Any:
        if name != modality:
            return value
        stream = np.random.default_rng([seed, int(rng.integers(2**32))])
        return fn(value, severity, stream, **context)

    return corrupt


def _context(pre: Preprocessor, kind: str, name: str) -> dict[str, Any]:
    """Keyword arguments a corruption needs from the fitted preprocessor."""
    if kind == "audio" and name == "dropout":
        return {"sample_rate": pre.config.sample_rate}
    if kind == "tabular":
        tab = pre.tabular
        context: dict[str, Any] = {"num_numeric": tab.num_numeric}
        if name == "missing":  # what the preprocessor puts in an empty numeric cell
            fill = (np.asarray(tab.medians_) - np.asarray(tab.means_)) / np.asarray(tab.stds_)
            context["fill"] = fill.astype(np.float32)
        return context
    return {}


def _rows(
    modality: str, corruption: str, severity: float, metrics: dict[str, float]
) -> list[tuple[str, str, float, str, float]]:
    return [(modality, corruption, severity, k, float(v)) for k, v in metrics.items()]


def _check_severities(severities: Sequence[float]) -> np.ndarray:
    grid = np.asarray(list(severities), dtype=np.float64)
    bad = grid[~((grid >= 0) & (grid <= 1))]
    if bad.size:
        raise MmfuseError(f"severities must be in [0, 1]; got {bad.tolist()}")
    return np.unique(np.append(grid, 0.0))


def _check_modalities(modalities: Sequence[str] | None, pre: Preprocessor) -> list[str]:
    if modalities is None:
        return list(pre.modalities)
    unknown = [m for m in modalities if m not in pre.modalities]
    if unknown:
        raise MmfuseError(f"unknown modalities {unknown}; known: {', '.join(pre.modalities)}")
    return list(dict.fromkeys(modalities))


# ------------------------------------------------------------------- summary
def robustness_summary(
    curves: pd.DataFrame,
    task: str,
    metric: str | None = None,
    reference: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Relative and effective robustness per modality and corruption (module docstring).

    Args:
        curves: Output of :func:`robustness_curves`.
        task: "classification" or "regression" (selects the default metric).
        metric: Metric to summarise (None: accuracy or rmse).
        reference: Curves of a reference model on the same grid (MultiBench uses late
            fusion) for effective robustness; None: a flat reference (no degradation).

    Returns:
        One row per (modality, corruption) with columns modality, corruption, metric, clean,
        worst (the metric at the highest severity), auc, relative_robustness,
        effective_robustness and retention.
    """
    if task not in PRIMARY_METRIC:
        raise MmfuseError(f"unknown task {task!r}; choose one of: {', '.join(PRIMARY_METRIC)}")
    metric = metric or PRIMARY_METRIC[task]
    if metric not in HIGHER_IS_BETTER:
        choices = ", ".join(HIGHER_IS_BETTER)
        raise MmfuseError(f"unknown metric {metric!r}; choose one of: {choices}")
    sign = 1.0 if HIGHER_IS_BETTER[metric] else -1.0
    ours = _metric_curves(curves, metric)
    theirs = None if reference is None else _metric_curves(reference, metric)
    rows = []
    for key, curve in ours.items():
        s, m = curve
        drop = m - m[0]
        if theirs is not None:
            if key not in theirs or not np.array_equal(theirs[key][0], s):
                raise MmfuseError(f"reference has no curve {key} on the same severities")
            drop = drop - (theirs[key][1] - theirs[key][1][0])
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = m / m[0] if sign > 0 else m[0] / m
        rows.append(
            (*key, metric, m[0], m[-1], _area(s, m), sign * _area(s, m), sign * _area(s, drop),
             _area(s, ratio))
        )  # fmt: skip
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def _metric_curves(curves: pd.DataFrame, metric: str) -> dict[tuple[str, str], Curve]:
    """(modality, corruption) -> (severities, values) of one metric, sorted by severity."""
    part = curves[curves["metric"] == metric]
    if part.empty:
        raise MmfuseError(f"the curves have no metric {metric!r}; they have: "
                          f"{', '.join(sorted(curves['metric'].unique()))}")  # fmt: skip
    out = {}
    for key, group in part.groupby(["modality", "corruption"], sort=False):
        group = group.sort_values("severity")
        out[(str(key[0]), str(key[1]))] = (
            group["severity"].to_numpy(np.float64), group["value"].to_numpy(np.float64)
        )  # fmt: skip
    return out


def _area(s: np.ndarray, y: np.ndarray) -> float:
    """Trapezoid area of y over s, divided by the width of s (the value itself for one point)."""
    if len(s) < 2:
        return float(y[0])
    return float(np.sum((y[1:] + y[:-1]) / 2 * np.diff(s)) / (s[-1] - s[0]))


# ---------------------------------------------------------------------- plot
def plot_robustness(curves: pd.DataFrame, path: str | Path, metric: str) -> Path:
    """One subplot per modality: the metric over severity, one line per corruption.

    ``drop`` (the modality missing from a fraction of the records) is the dashed black line.

    Returns:
        ``path``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    part = curves[curves["metric"] == metric]
    if part.empty:
        raise MmfuseError(f"the curves have no metric {metric!r}")
    modalities = list(dict.fromkeys(part["modality"]))
    cols = min(3, len(modalities))
    rows = -(-len(modalities) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.3 * rows), squeeze=False)
    low, high = part["value"].min(), part["value"].max()
    pad = 0.05 * (high - low or 1.0)
    for ax, modality in zip(axes.flat, modalities):
        lines = part[part["modality"] == modality].groupby("corruption", sort=False)
        for corruption, group in lines:
            group = group.sort_values("severity")
            style = {"color": "black", "linestyle": "--"} if corruption == DROP else {}
            ax.plot(group["severity"], group["value"], marker="o", label=str(corruption), **style)
        ax.set_title(modality)
        ax.set_xlabel("severity (0 = clean)")
        ax.set_ylabel(metric)
        ax.set_ylim(low - pad, high + pad)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in axes.flat[len(modalities) :]:
        ax.set_visible(False)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
