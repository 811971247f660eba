"""Shot selection under a length budget: the 0/1 knapsack of the summarisation protocol.

TVSum and SumMe summaries are built the same way (Gygli et al., 2014, "Creating Summaries
from User Videos"; Zhang et al., 2016, "Video Summarization with Long Short-Term Memory"):
split the video into shots, give every shot a score, then pick the subset of shots with the
largest total score whose total length stays within a budget (commonly 15 % of the video).
"""

from __future__ import annotations

import numpy as np

from mmfuse.errors import MmfuseError

MAX_CELLS = 50_000_000  # (shots + 1) x (capacity + 1) entries of the DP table, ~50 MB of bools
_TOLERANCE = 1e-9  # in units: 0.7 s / 0.1 s = 6.999999999999999 still counts as 7 units


def _check(lengths: np.ndarray, scores: np.ndarray, budget: float, resolution: float) -> None:
    """Raise MmfuseError on inputs the knapsack cannot take."""
    if lengths.ndim != 1 or lengths.shape != scores.shape:
        raise MmfuseError(
            f"lengths and scores need one value per shot; got shapes {lengths.shape} "
            f"and {scores.shape}"
        )
    if not np.isfinite(scores).all():
        bad = np.flatnonzero(~np.isfinite(scores)).tolist()
        raise MmfuseError(f"scores must be finite; NaN or inf at shots {bad}")
    if not np.isfinite(lengths).all() or (lengths < 0).any():
        bad = np.flatnonzero(~np.isfinite(lengths) | (lengths < 0)).tolist()
        raise MmfuseError(f"lengths must be finite and non-negative; bad shots: {bad}")
    if not np.isfinite(budget) or budget < 0:
        raise MmfuseError(f"budget must be a finite, non-negative number of seconds; got {budget}")
    if not np.isfinite(resolution) or resolution <= 0:
        raise MmfuseError(f"resolution must be a positive number of seconds; got {resolution}")
    if lengths.size + 1 > MAX_CELLS:
        raise MmfuseError(f"too many shots for the knapsack: {lengths.size} (max {MAX_CELLS - 1})")


def _discretise(lengths: np.ndarray, budget: float, resolution: float) -> tuple[np.ndarray, int]:
    """Lengths (rounded up) and capacity (rounded down) in units, coarsened to fit MAX_CELLS.

    The capacity never exceeds the total length of all shots: a larger one changes nothing.

    Returns:
        (n,) int64 units per shot and the capacity in units.
    """
    while True:
        units = np.ceil(lengths / resolution - _TOLERANCE).astype(np.int64)
        capacity = min(int(np.floor(budget / resolution + _TOLERANCE)), int(units.sum()))
        if (lengths.size + 1) * (capacity + 1) <= MAX_CELLS:
            return units, capacity
        resolution *= 2.0


def _fill(units: np.ndarray, scores: np.ndarray, capacity: int) -> np.ndarray:
    """The DP over shots: (n, capacity + 1) bool, True where shot i is taken at capacity c.

    ``best[c]`` is the largest total score of the shots seen so far within c units. Shot i
    is taken at c only when ``best[c - w_i] + s_i`` is strictly larger than ``best[c]``.
    """
    best = np.zeros(capacity + 1)
    taken = np.zeros((units.size, capacity + 1), dtype=bool)
    for i, (w, s) in enumerate(zip(units.tolist(), scores.tolist(), strict=True)):
        if w > capacity:
            continue
        with_shot = best[: capacity + 1 - w] + s  # (capacity + 1 - w,) totals taking shot i
        taken[i, w:] = with_shot > best[w:]
        best[w:] = np.maximum(best[w:], with_shot)  # with_shot is a copy: each shot used once
    return taken


def _backtrack(taken: np.ndarray, units: np.ndarray, capacity: int) -> np.ndarray:
    """The (n,) bool selection behind ``best[capacity]``, walking the shots from last to first."""
    selected = np.zeros(units.size, dtype=bool)
    c = capacity
    for i in range(units.size - 1, -1, -1):
        if taken[i, c]:
            selected[i] = True
            c -= int(units[i])
    return selected


def select_shots(
    lengths: np.ndarray, scores: np.ndarray, budget: float, resolution: float = 0.1
) -> np.ndarray:
    """The subset of shots with the largest total score whose total length fits the budget.

    Exact 0/1 knapsack by dynamic programming over the capacity in units of ``resolution``
    seconds, one vectorised row update per shot. Shot lengths are rounded *up* to whole
    units and the budget *down*, so the selected lengths never add up to more than
    ``budget`` (up to float rounding: a value within 1e-9 units of a whole number counts as
    that number, so 0.7 s is 7 units of 0.1 s, not 6.999...). When the table would exceed
    ``MAX_CELLS`` entries ((n + 1) x (capacity + 1)), the resolution is doubled until it
    fits: the answer stays within budget but may be coarser than asked.

    Ties: a shot is taken only when it strictly raises the best total, so shots scoring 0 or
    less are never selected and, among selections of equal total, the one built from earlier
    shots is kept (the standard DP, backtracked from the full capacity).

    Args:
        lengths: (n,) shot durations in seconds.
        scores: (n,) value of each shot (e.g. mean importance x length; the caller decides).
        budget: Largest total duration in seconds (e.g. 0.15 x the video length).
        resolution: Seconds per DP unit.

    Returns:
        (n,) bool, True for the selected shots.

    Raises:
        MmfuseError: On shapes that differ, non-finite scores, negative or non-finite
            lengths, a negative budget, or a resolution that is not positive.
    """
    lengths = np.asarray(lengths, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    _check(lengths, scores, budget, resolution)
    if lengths.size == 0:
        return np.zeros(0, dtype=bool)
    units, capacity = _discretise(lengths, float(budget), float(resolution))
    return _backtrack(_fill(units, scores, capacity), units, capacity)
