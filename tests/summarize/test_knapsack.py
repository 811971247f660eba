"""Tests for mmfuse.summarize.knapsack: exact 0/1 knapsack over shots under a length budget."""

from __future__ import annotations

from itertools import product

import numpy as np
import pytest

from mmfuse.errors import MmfuseError
from mmfuse.summarize import knapsack
from mmfuse.summarize.knapsack import select_shots


def brute_force_best(units: np.ndarray, scores: np.ndarray, capacity: int) -> float:
    """Largest total score over all 2^n subsets whose total units fit the capacity."""
    best = 0.0  # the empty selection
    for mask in product((False, True), repeat=len(units)):
        chosen = np.array(mask, dtype=bool)
        if units[chosen].sum() <= capacity:
            best = max(best, float(scores[chosen].sum()))
    return best


@pytest.mark.parametrize("seed", range(200))
def test_matches_brute_force_on_random_cases(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 11))
    lengths = rng.uniform(0.05, 5.0, n)
    scores = rng.normal(1.0, 1.0, n)  # some negative
    budget = float(rng.uniform(0.0, lengths.sum()))
    selected = select_shots(lengths, scores, budget, resolution=0.1)
    units = np.ceil(lengths * 10).astype(int)  # lengths rounded up to 0.1 s
    capacity = int(np.floor(budget * 10))  # budget rounded down
    assert selected.dtype == bool and selected.shape == (n,)
    assert lengths[selected].sum() <= budget
    assert units[selected].sum() <= capacity
    assert (scores[selected] > 0).all()
    assert scores[selected].sum() == pytest.approx(brute_force_best(units, scores, capacity))


def test_hand_made_optimum() -> None:
    # budget 5: {0,1} len 3 score 16, {0,2} len 4 score 18, {1,2} len 5 score 22 (best)
    got = select_shots(np.array([1.0, 2.0, 3.0]), np.array([6.0, 10.0, 12.0]), 5.0)
    np.testing.assert_array_equal(got, [False, True, True])


def test_beats_greedy_by_score_per_second() -> None:
    # budget 4: greedy takes shot 0 first (5/3 > 3/2 per second), then nothing fits: 5.
    # The optimum is shots 1 and 2: length 4, score 6.
    got = select_shots(np.array([3.0, 2.0, 2.0]), np.array([5.0, 3.0, 3.0]), 4.0)
    np.testing.assert_array_equal(got, [False, True, True])


def test_ties_keep_the_earlier_shot_and_skip_non_positive_scores() -> None:
    # only one of two equal shots fits: the later one does not strictly improve, so shot 0
    np.testing.assert_array_equal(select_shots(np.ones(2), np.ones(2), 1.0), [True, False])
    # plenty of budget, but scores 0 and -1 add nothing
    got = select_shots(np.ones(3), np.array([2.0, 0.0, -1.0]), 10.0)
    np.testing.assert_array_equal(got, [True, False, False])


def test_edge_cases() -> None:
    empty = select_shots(np.zeros(0), np.zeros(0), 3.0)
    assert empty.shape == (0,) and empty.dtype == bool
    # every shot is longer than the budget
    np.testing.assert_array_equal(select_shots(np.array([2.0, 3.0]), np.ones(2), 1.5), [0, 0])
    # a zero-length shot fits a zero budget
    got = select_shots(np.array([0.0, 1.0]), np.ones(2), 0.0)
    np.testing.assert_array_equal(got, [True, False])
    # a huge budget takes every positive shot (the capacity is capped at the total length)
    got = select_shots(np.ones(3), np.array([1.0, -1.0, 2.0]), 1e9)
    np.testing.assert_array_equal(got, [True, False, True])


def test_lengths_round_up_and_the_budget_rounds_down() -> None:
    # 1.04 s -> ceil(10.4) = 11 units, 1.0 s -> 10 units; 21 > 20 units of budget: one shot
    assert select_shots(np.array([1.04, 1.0]), np.ones(2), 2.0).sum() == 1
    # 1.04 + 0.96 = 2.0 s fits exactly, but at 0.1 s it is 11 + 10 = 21 units > 20
    lengths = np.array([1.04, 0.96])
    assert select_shots(lengths, np.ones(2), 2.0, resolution=0.1).sum() == 1
    # at 0.01 s: 104 + 96 = 200 units = the budget: both
    assert select_shots(lengths, np.ones(2), 2.0, resolution=0.01).sum() == 2
    # budget 2.09 s -> floor(20.9) = 20 units, not 21
    assert select_shots(np.array([1.04, 1.0]), np.ones(2), 2.09).sum() == 1
    assert select_shots(np.array([1.04, 1.0]), np.ones(2), 2.1).sum() == 2


def test_float_division_does_not_gain_or_lose_a_unit() -> None:
    # 0.7 / 0.1 == 6.999999999999999 in floats; a plain floor would make the budget 6 units
    assert 0.7 / 0.1 < 7
    np.testing.assert_array_equal(select_shots(np.array([0.7]), np.ones(1), 0.7), [True])
    # 3 * 0.1 == 0.30000000000000004, / 0.1 == 3.0000000000000004: a plain ceil gives 4 units
    # and 4 + 7 > 10; within the tolerance it is 3 units and both shots fill the 1 s budget
    got = select_shots(np.array([3 * 0.1, 0.7]), np.ones(2), 1.0)
    np.testing.assert_array_equal(got, [True, True])


def test_large_tables_coarsen_the_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    lengths, scores = np.ones(3), np.ones(3)
    assert select_shots(lengths, scores, 2.0).sum() == 2  # 10 + 10 <= 20 units
    # (3 + 1) x (20 + 1) = 84 cells > 40; at 0.2 s 4 x 11 = 44 > 40; at 0.4 s each shot is
    # ceil(2.5) = 3 units and the budget floor(5) = 5 units: 4 x 6 = 24 cells, one shot fits
    monkeypatch.setattr(knapsack, "MAX_CELLS", 40)
    assert select_shots(lengths, scores, 2.0).sum() == 1


def test_capacity_beyond_the_total_length_costs_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    # 3 shots of 1.05 s = ceil(10.5) = 11 units each, 33 in all; a 3.5 s budget is 35 units
    # but only 33 matter: (3 + 1) x (33 + 1) = 136 cells fit, no coarsening, all three fit.
    # Counting 35 units, 4 x 36 = 144 > 136 would coarsen to 0.2 s: 6 units per shot,
    # budget 17 units, only two shots.
    monkeypatch.setattr(knapsack, "MAX_CELLS", 136)
    np.testing.assert_array_equal(select_shots(np.full(3, 1.05), np.ones(3), 3.5), [1, 1, 1])


@pytest.mark.parametrize(
    ("lengths", "scores", "budget", "message"),
    [
        ([1.0, 2.0], [1.0], 3.0, r"one value per shot; got shapes \(2,\) and \(1,\)"),
        ([1.0, 2.0], [1.0, np.nan], 3.0, r"scores must be finite; NaN or inf at shots \[1\]"),
        ([1.0, -2.0], [1.0, 1.0], 3.0, r"non-negative; bad shots: \[1\]"),
        ([1.0], [1.0], -1.0, "budget must be a finite, non-negative number of seconds; got -1.0"),
    ],
)
def test_errors(lengths: list[float], scores: list[float], budget: float, message: str) -> None:
    with pytest.raises(MmfuseError, match=message):
        select_shots(np.array(lengths), np.array(scores), budget)


def test_resolution_must_be_positive() -> None:
    with pytest.raises(MmfuseError, match="resolution must be a positive number"):
        select_shots(np.ones(1), np.ones(1), 1.0, resolution=0.0)
