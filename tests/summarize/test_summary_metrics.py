"""Tests for mmfuse.summarize.metrics: F-score, rank correlation and per-frame expansion."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.stats import kendalltau, spearmanr

from mmfuse.errors import MmfuseError
from mmfuse.summarize.metrics import (
    frame_scores,
    frame_selection,
    rank_correlation,
    summary_fscore,
)

PRED = np.array([1, 1, 1, 1, 0, 0, 0, 0], dtype=bool)  # |pred| = 4
USERS = np.array(
    [
        [1, 1, 0, 0, 0, 0, 0, 0],  # overlap 2: P = 2/4, R = 2/2, F = 2 * 0.5 * 1 / 1.5 = 2/3
        [0, 0, 0, 1, 1, 1, 1, 0],  # overlap 1: P = 1/4, R = 1/4, F = 1/4
        [0, 0, 0, 0, 0, 0, 1, 1],  # overlap 0: F = 0
    ],
    dtype=bool,
)


# ------------------------------------------------------------------ F-score
def test_fscore_hand_computed_mean_and_max() -> None:
    # mean: (2/3 + 1/4 + 0) / 3 = (8/12 + 3/12) / 3 = 11/36; max: 2/3
    assert summary_fscore(PRED, USERS) == pytest.approx(11 / 36)
    assert summary_fscore(PRED, USERS, combine="mean") == pytest.approx(11 / 36)
    assert summary_fscore(PRED, USERS, combine="max") == pytest.approx(2 / 3)


def test_fscore_perfect_disjoint_and_empty() -> None:
    assert summary_fscore(USERS[1], USERS[1:2]) == 1.0
    assert summary_fscore(~USERS[1], USERS[1:2]) == 0.0
    assert summary_fscore(np.zeros(8, dtype=bool), USERS) == 0.0  # empty prediction, no 0/0
    # 0/1 integers are read as booleans: the same 11/36
    assert summary_fscore(PRED.astype(int), USERS.astype(float)) == pytest.approx(11 / 36)


def test_fscore_errors() -> None:
    with pytest.raises(MmfuseError, match=r"predicted \(T,\) and references \(U, T\)"):
        summary_fscore(PRED[:7], USERS)
    with pytest.raises(MmfuseError, match=r"predicted \(T,\) and references \(U, T\)"):
        summary_fscore(PRED, USERS[0])
    with pytest.raises(MmfuseError, match="at least one user"):
        summary_fscore(PRED, USERS[:0])
    with pytest.raises(MmfuseError, match="unknown combine 'median'; choose one of: mean, max"):
        summary_fscore(PRED, USERS, combine="median")
    with pytest.raises(MmfuseError, match="predicted must hold booleans or 0/1 values"):
        summary_fscore(np.full(8, 0.5), USERS)


# ------------------------------------------------------------------ rank correlation
def test_rank_correlation_hand_computed() -> None:
    pred = np.array([0.1, 0.4, 0.3, 0.9])  # ranks 1 3 2 4
    users = np.array([[1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 4.0, 3.0]])
    # user 0: 1 of 6 pairs discordant, tau = (5 - 1) / 6 = 2/3
    #         rank differences d = 0 1 -1 0, rho = 1 - 6 * 2 / (4 * 15) = 0.8
    # user 1: 2 of 6 pairs discordant, tau = (4 - 2) / 6 = 1/3
    #         rank differences d = 0 1 -2 1, rho = 1 - 6 * 6 / (4 * 15) = 0.4
    # means over users: tau (2/3 + 1/3) / 2 = 0.5, rho (0.8 + 0.4) / 2 = 0.6
    got = rank_correlation(pred, users)
    assert got == pytest.approx({"kendall_tau": 0.5, "spearman_rho": 0.6})


def test_rank_correlation_equals_scipy_with_ties() -> None:
    rng = np.random.default_rng(0)
    pred = rng.integers(0, 4, 30).astype(float)  # many ties: tau-b
    users = rng.integers(0, 5, (3, 30)).astype(float)
    got = rank_correlation(pred, users)
    assert got["kendall_tau"] == pytest.approx(np.mean([kendalltau(pred, u)[0] for u in users]))
    assert got["spearman_rho"] == pytest.approx(np.mean([spearmanr(pred, u)[0] for u in users]))


def test_rank_correlation_identical_and_reversed() -> None:
    pred = np.array([0.2, 0.9, 0.1, 0.5, 0.7])
    assert rank_correlation(pred, [3 * pred + 1]) == pytest.approx(
        {"kendall_tau": 1.0, "spearman_rho": 1.0}
    )
    assert rank_correlation(pred, [-pred]) == pytest.approx(
        {"kendall_tau": -1.0, "spearman_rho": -1.0}
    )


def test_rank_correlation_constant_series_are_nan_and_skipped() -> None:
    pred = np.array([0.2, 0.9, 0.1, 0.5])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # neither scipy's nor numpy's warning escapes
        # the constant user is NaN and left out: the mean is the identical user's 1.0
        got = rank_correlation(pred, [np.full(4, 3.0), pred])
        assert got == {"kendall_tau": 1.0, "spearman_rho": 1.0}
        got = rank_correlation(np.ones(4), [pred, -pred])  # constant prediction: all NaN
        assert np.isnan(got["kendall_tau"]) and np.isnan(got["spearman_rho"])


def test_rank_correlation_errors() -> None:
    with pytest.raises(MmfuseError, match=r"got shapes \(4,\) and \(1, 3\)"):
        rank_correlation(np.ones(4), np.ones((1, 3)))
    with pytest.raises(MmfuseError, match="must be finite"):
        rank_correlation(np.array([1.0, np.nan]), np.ones((1, 2)))


# ------------------------------------------------------------------ frame expansion
BOUNDS = np.array([[3, 6], [0, 2]])  # frames 3-5 and 0-1; frames 2 and 6 belong to no shot


def test_frame_scores_and_selection_exact() -> None:
    scores = frame_scores(BOUNDS, np.array([2.0, 0.5]), 7)
    np.testing.assert_array_equal(scores, [0.5, 0.5, 0.0, 2.0, 2.0, 2.0, 0.0])
    assert scores.dtype == np.float64
    chosen = frame_selection(BOUNDS, np.array([True, False]), 7)
    np.testing.assert_array_equal(chosen, [False, False, False, True, True, True, False])
    assert chosen.dtype == bool
    # an empty shot and no shots at all
    np.testing.assert_array_equal(frame_scores(np.array([[1, 1]]), np.ones(1), 2), [0.0, 0.0])
    assert frame_selection(np.zeros((0, 2), dtype=int), np.zeros(0), 3).tolist() == [0, 0, 0]


@pytest.mark.parametrize(
    ("bounds", "values", "message"),
    [
        (np.array([[0, 3], [2, 5]]), np.ones(2), "shots must not overlap"),
        (np.array([[0, 3], [3, 9]]), np.ones(2), r"shots \[1\] are not within"),
        (np.array([[2, 1]]), np.ones(1), r"shots \[0\] are not within 0 <= start <= end <= 7"),
        (np.array([0.0, 3.0]), np.ones(1), r"shot_bounds must be \(S, 2\) integers"),
        (np.array([[0, 3]]), np.ones(2), r"need one value per shot: 1 shots"),
    ],
)
def test_frame_expansion_errors(bounds: np.ndarray, values: np.ndarray, message: str) -> None:
    with pytest.raises(MmfuseError, match=message):
        frame_scores(bounds, values, 7)
