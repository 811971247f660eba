"""Evaluation of video summaries as the summarisation papers define it.

- F-score of a keyshot summary against user summaries (Gygli et al., 2014, SumMe; Song et
  al., 2015, TVSum; protocol of Zhang et al., 2016): per user, the harmonic mean of the
  temporal precision and recall of the overlap, then the mean over users (TVSum) or the
  maximum (SumMe).
- Rank correlation of predicted frame importance with each user's importance scores
  (Otani et al., 2019, "Rethinking the Evaluation of Video Summaries"): Kendall's tau and
  Spearman's rho, averaged over users. It does not depend on shot boundaries or the knapsack,
  which can make even random scores look good under the F-score.

Per-shot values become per-frame arrays with ``frame_scores`` / ``frame_selection``.
"""

from __future__ import annotations

import numpy as np

from mmfuse.errors import MmfuseError

COMBINES = ("mean", "max")


def _as_mask(values: np.ndarray, name: str) -> np.ndarray:
    """``values`` as a bool array; 0/1 numbers are accepted, anything else raises."""
    values = np.asarray(values)
    if values.dtype != bool and not np.isin(values, (0, 1)).all():
        raise MmfuseError(f"{name} must hold booleans or 0/1 values")
    return values.astype(bool)


def _check_pair(predicted: np.ndarray, references: np.ndarray) -> None:
    """Raise unless predicted is (T,) and references is (U, T) with U >= 1."""
    if predicted.ndim != 1 or references.ndim != 2 or references.shape[1:] != predicted.shape:
        raise MmfuseError(
            f"expected predicted (T,) and references (U, T); got shapes {predicted.shape} "
            f"and {references.shape}"
        )
    if references.shape[0] == 0:
        raise MmfuseError("references need at least one user (row)")


def summary_fscore(predicted: np.ndarray, references: np.ndarray, combine: str = "mean") -> float:
    """F-score of a summary against user summaries, combined over users.

    Per user: overlap = |pred & ref|, P = overlap / |pred|, R = overlap / |ref| and
    F = 2PR / (P + R), which simplifies to 2 overlap / (|pred| + |ref|); F = 0 when the
    overlap is empty (so also when either summary is empty).

    Args:
        predicted: (T,) bool, the frames (or time steps) in the predicted summary.
        references: (U, T) bool, one row per user summary.
        combine: "mean" over users (TVSum protocol) or "max" (SumMe protocol).

    Returns:
        The F-score in [0, 1] (papers print it x 100).

    Raises:
        MmfuseError: On shapes that do not match, non-boolean values or an unknown combine.
    """
    if combine not in COMBINES:
        raise MmfuseError(f"unknown combine {combine!r}; choose one of: {', '.join(COMBINES)}")
    pred, refs = _as_mask(predicted, "predicted"), _as_mask(references, "references")
    _check_pair(pred, refs)
    overlap = (refs & pred).sum(axis=1)  # (U,)
    sizes = pred.sum() + refs.sum(axis=1)  # (U,) |pred| + |ref|
    f = np.divide(2.0 * overlap, sizes, out=np.zeros(len(refs)), where=overlap > 0)
    return float(f.mean() if combine == "mean" else f.max())


def _is_constant(x: np.ndarray) -> bool:
    """True for a series with fewer than two distinct values (no ranking to compare)."""
    return x.size < 2 or bool((x == x[0]).all())


def _mean_of_finite(values: list[float]) -> float:
    """Mean over the values that are not NaN; NaN when none is."""
    kept = [v for v in values if not np.isnan(v)]
    return float(np.mean(kept)) if kept else float("nan")


def rank_correlation(predicted: np.ndarray, references: np.ndarray) -> dict[str, float]:
    """Kendall's tau (tau-b) and Spearman's rho of predicted importance vs each user's.

    A user whose scores are constant, or a constant prediction, has no ranking to compare:
    that user's coefficients are NaN (as scipy gives, without its warning) and the means
    skip them; when every user is NaN the result is NaN.

    Args:
        predicted: (T,) predicted importance per frame.
        references: (U, T) importance per frame given by each user.

    Returns:
        {"kendall_tau": mean tau over users, "spearman_rho": mean rho over users}.

    Raises:
        MmfuseError: On shapes that do not match or non-finite values.
    """
    from scipy.stats import kendalltau, spearmanr  # slow to import; only this function needs it

    pred = np.asarray(predicted, dtype=np.float64)
    refs = np.asarray(references, dtype=np.float64)
    _check_pair(pred, refs)
    if not (np.isfinite(pred).all() and np.isfinite(refs).all()):
        raise MmfuseError("importance scores must be finite; found NaN or inf")
    taus, rhos = [], []
    for ref in refs:
        if _is_constant(pred) or _is_constant(ref):
            taus.append(float("nan"))
            rhos.append(float("nan"))
        else:
            taus.append(float(kendalltau(pred, ref).statistic))
            rhos.append(float(spearmanr(pred, ref).statistic))
    return {"kendall_tau": _mean_of_finite(taus), "spearman_rho": _mean_of_finite(rhos)}


def _expand(shot_bounds: np.ndarray, values: np.ndarray, num_frames: int) -> np.ndarray:
    """(T,) array with each shot's value on its frames [start, end) and 0 elsewhere."""
    bounds = np.asarray(shot_bounds)
    if bounds.ndim != 2 or bounds.shape[1] != 2 or not np.issubdtype(bounds.dtype, np.integer):
        raise MmfuseError(f"shot_bounds must be (S, 2) integers; got {bounds.dtype} {bounds.shape}")
    if values.shape != (len(bounds),):
        raise MmfuseError(f"need one value per shot: {len(bounds)} shots, values {values.shape}")
    starts, ends = bounds[:, 0], bounds[:, 1]
    bad = np.flatnonzero((starts < 0) | (ends < starts) | (ends > num_frames)).tolist()
    if num_frames < 0 or bad:
        raise MmfuseError(f"shots {bad} are not within 0 <= start <= end <= {num_frames}")
    sizes = ends - starts
    first = np.repeat(np.cumsum(sizes) - sizes, sizes)  # (sum sizes,) offset of each shot
    frames = np.repeat(starts, sizes) + np.arange(sizes.sum()) - first
    if (np.bincount(frames, minlength=num_frames) > 1).any():
        raise MmfuseError("shots must not overlap")
    out = np.zeros(num_frames, dtype=values.dtype)
    out[frames] = np.repeat(values, sizes)
    return out


def frame_scores(shot_bounds: np.ndarray, shot_scores: np.ndarray, num_frames: int) -> np.ndarray:
    """(num_frames,) float64: each frame gets its shot's score, frames in no shot get 0.

    Args:
        shot_bounds: (S, 2) int [start, end) frame indices of non-overlapping shots.
        shot_scores: (S,) one score per shot.
        num_frames: Length T of the video in frames.
    """
    return _expand(shot_bounds, np.asarray(shot_scores, dtype=np.float64), num_frames)


def frame_selection(shot_bounds: np.ndarray, selected: np.ndarray, num_frames: int) -> np.ndarray:
    """(num_frames,) bool: True on the frames of the selected shots (e.g. from select_shots).

    Args:
        shot_bounds: (S, 2) int [start, end) frame indices of non-overlapping shots.
        selected: (S,) bool, one flag per shot.
        num_frames: Length T of the video in frames.
    """
    return _expand(shot_bounds, _as_mask(selected, "selected"), num_frames)
