"""MMSA's sentiment-score metrics against cases worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mmfuse.evaluation.metrics import task_metrics
from mmfuse.evaluation.sentiment import is_sentiment_score, sentiment_metrics

Y = np.array([2.6, -1.2, 0.0, 0.4, -2.4, 1.0])
P = np.array([1.4, -0.6, -0.3, 0.6, 3.5, -0.2])


def test_hand_computed_case() -> None:
    m = sentiment_metrics(Y, P)
    # acc2 (0 counts as positive): truth >= 0 -> T F T T F T; pred >= 0 -> T F F T T F: 3 of 6
    assert m["acc2"] == pytest.approx(3 / 6)
    # non-zero truths (5): truth > 0 -> T F T F T; pred > 0 -> T F T T F: 3 of 5
    assert m["acc2_non0"] == pytest.approx(3 / 5)
    # acc7: round(clip(., -3, 3)): truth 3 -1 0 0 -2 1 ; pred 1 -1 0 1 3 0 -> 2 equal
    assert m["acc7"] == pytest.approx(2 / 6)
    # acc5: clip to [-2, 2] first: truth 2 -1 0 0 -2 1 ; pred 1 -1 0 1 2 0 -> 2 equal
    assert m["acc5"] == pytest.approx(2 / 6)
    assert m["mae"] == pytest.approx(np.mean([1.2, 0.6, 0.3, 0.2, 5.9, 1.2]))
    assert m["corr"] == pytest.approx(np.corrcoef(Y, P)[0, 1])


def test_weighted_f1_by_hand() -> None:
    # truth >= 0: T F T T F T (4 positive, 2 negative); pred: T F F T T F
    # positive class: tp 2 (rows 0, 3), fp 1 (row 4), fn 2 (rows 2, 5) -> f1 = 4 / 7
    # negative class: tp 1 (row 1), fp 2 (rows 2, 5), fn 1 (row 4) -> f1 = 2 / 5
    assert sentiment_metrics(Y, P)["f1"] == pytest.approx((4 * 4 / 7 + 2 * 2 / 5) / 6)


def test_a_perfect_prediction_scores_one() -> None:
    m = sentiment_metrics(Y, Y)
    assert [m[k] for k in ("acc2", "acc2_non0", "f1", "f1_non0", "acc5", "acc7", "corr")] == pytest.approx([1.0] * 7)
    assert m["mae"] == 0.0


def test_undefined_values_are_nan() -> None:
    m = sentiment_metrics(np.zeros(3), np.array([0.1, -0.2, 0.3]))
    assert math.isnan(m["acc2_non0"]) and math.isnan(m["corr"])


@pytest.mark.parametrize(
    ("values", "expected"),
    [([-3.0, 0.0, 3.0], True), ([-1.5, 2.0], True), ([3.0000001, -1.0], True),
     ([0.5, 2.0], False), ([-3.5, 1.0], False), ([], False)],
)
def test_what_counts_as_a_sentiment_score(values: list[float], expected: bool) -> None:
    assert is_sentiment_score(np.array(values)) is expected


def test_regression_metrics_add_them_only_for_sentiment_scores() -> None:
    assert {"acc2", "acc7", "corr"} <= set(task_metrics("regression", Y, P))
    assert "acc2" not in task_metrics("regression", Y + 10, P + 10)
    assert task_metrics("regression", Y, P)["mae"] == pytest.approx(sentiment_metrics(Y, P)["mae"])
