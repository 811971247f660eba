"""Greedy ensemble selection on hand-made predictions whose best mixture is known."""

from __future__ import annotations

import numpy as np
import pytest

from mmfuse.search.ensemble import ensemble_selection

Y = np.array([1.0, 0.0])


def _score(p: np.ndarray) -> float:
    return -float(np.sum((p - Y) ** 2))


def test_two_complementary_models_are_mixed_half_and_half() -> None:
    a, b, c = np.array([1.0, 1.0]), np.array([1.0, -1.0]), np.array([0.0, 0.0])
    # round 1: each scores -1 alone; the first (a) is taken. round 2: a+b -> [1, 0], score 0 (best).
    # round 3: [1, 1/3] or [1, -1/3], both -1/9: worse. round 4: back to [1, 0], 0: not better, so
    # round 2's weights stay. c ([0, 0], -1) never helps.
    weights, score = ensemble_selection([a, b, c], _score, rounds=4)
    np.testing.assert_allclose(weights, [0.5, 0.5, 0.0])
    assert score == pytest.approx(0.0)


def test_a_model_that_nothing_improves_keeps_all_the_weight() -> None:
    best, worse = np.array([0.9, 0.1]), np.array([0.0, 1.0])
    # best alone: -(0.01 + 0.01) = -0.02; any mixture with worse moves away from Y
    weights, score = ensemble_selection([worse, best], _score, rounds=5)
    np.testing.assert_allclose(weights, [0.0, 1.0])
    assert score == pytest.approx(-0.02)


def test_weights_favour_the_stronger_model_by_repetition() -> None:
    # Y = [1, 0]: 2/3 of a plus 1/3 of b is exact: (2 * [1.5, 0] + [0, 0]) / 3 = [1, 0]
    a, b = np.array([1.5, 0.0]), np.array([0.0, 0.0])
    weights, score = ensemble_selection([a, b], _score, rounds=6)
    np.testing.assert_allclose(weights, [2 / 3, 1 / 3])
    assert score == pytest.approx(0.0)


def test_no_models_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one model"):
        ensemble_selection([], _score)
