"""Exact metric values on tiny hand-made inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mmfuse.evaluation.metrics import (
    PRIMARY_METRIC,
    classification_metrics,
    regression_metrics,
    task_metrics,
)


def test_binary() -> None:
    y = np.array([0, 0, 1, 1])
    proba = np.array([[0.9, 0.1], [0.3, 0.7], [0.35, 0.65], [0.2, 0.8]])  # predicts 0, 1, 1, 1
    m = classification_metrics(y, proba)
    assert m["accuracy"] == pytest.approx(0.75)
    # class 0: P 1, R 1/2, F1 2/3; class 1: P 2/3, R 1, F1 4/5
    assert m["f1_macro"] == pytest.approx((2 / 3 + 4 / 5) / 2)
    assert m["precision_macro"] == pytest.approx((1 + 2 / 3) / 2)
    assert m["recall_macro"] == pytest.approx(0.75)
    # positives score 0.65, 0.8; negatives 0.1, 0.7: 3 of 4 pairs ranked right
    assert m["roc_auc"] == pytest.approx(0.75)
    assert m["log_loss"] == pytest.approx(-np.mean(np.log([0.9, 0.3, 0.65, 0.8])))
    # confidences 0.9, 0.7, 0.65, 0.8 fall in 4 different of the 15 bins; right, wrong, right, right
    assert m["ece"] == pytest.approx((0.1 + 0.7 + 0.35 + 0.2) / 4)
    assert set(m) == {
        "accuracy",
        "f1_macro",
        "precision_macro",
        "recall_macro",
        "roc_auc",
        "log_loss",
        "ece",
    }
    assert all(isinstance(v, float) for v in m.values())


def test_multiclass() -> None:
    y = np.array([0, 1, 2, 2])
    proba = np.array([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.1, 0.2, 0.7], [0.3, 0.4, 0.3]])
    m = classification_metrics(y.astype(np.float32), proba)  # float class indices are fine
    assert m["accuracy"] == pytest.approx(0.75)  # predicts 0, 1, 2, 1
    assert m["f1_macro"] == pytest.approx((1 + 2 / 3 + 2 / 3) / 3)
    # one-vs-rest: class 0 -> 1, class 1 -> 1, class 2 -> (1 + 1 + 1 + 0.5 tie) / 4
    assert m["roc_auc"] == pytest.approx((1 + 1 + 0.875) / 3)
    assert m["log_loss"] == pytest.approx(-np.mean(np.log([0.6, 0.5, 0.7, 0.3])))


def test_class_never_seen_in_targets() -> None:
    y = np.array([0, 0, 1, 1])
    proba = np.array([[0.5, 0.1, 0.4], [0.2, 0.2, 0.6], [0.1, 0.3, 0.6], [0.2, 0.6, 0.2]])
    m = classification_metrics(y, proba)  # predicts 0, 2, 2, 1
    assert m["accuracy"] == pytest.approx(0.5)
    assert m["f1_macro"] == pytest.approx((2 / 3 + 2 / 3 + 0) / 3)  # class 2 counts, with F1 0
    # AUC over the classes present, probabilities renormalised over them:
    # P(1 | 0 or 1) = 1/6, 1/2, 3/4, 3/4 -> positives outrank every negative
    assert m["roc_auc"] == pytest.approx(1.0)


def test_single_class_targets_have_no_auc_and_zero_probability_is_clipped() -> None:
    m = classification_metrics(np.array([1, 1]), np.array([[0.0, 1.0], [1.0, 0.0]]))
    assert math.isnan(m["roc_auc"])
    assert m["accuracy"] == 0.5
    assert m["log_loss"] == pytest.approx(-np.log(1e-7) / 2)


def test_regression() -> None:
    m = regression_metrics(np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 2.0, 3.0, 5.0]))
    assert m["mae"] == pytest.approx(0.25)
    assert m["rmse"] == pytest.approx(0.5)
    assert m["r2"] == pytest.approx(1 - 1 / 5)
    assert m["pearson"] == pytest.approx(6.5 / math.sqrt(5 * 8.75))
    assert set(m) == {"mae", "rmse", "r2", "pearson"}


def test_regression_degenerate_inputs() -> None:
    constant = regression_metrics(np.array([1.0, 2.0, 3.0]), np.array([2.0, 2.0, 2.0]))
    assert math.isnan(constant["pearson"])
    assert constant["r2"] == pytest.approx(0.0)
    assert constant["mae"] == pytest.approx(2 / 3)
    single = regression_metrics(np.array([1.0]), np.array([3.0]))
    assert math.isnan(single["r2"]) and math.isnan(single["pearson"])
    assert single["rmse"] == pytest.approx(2.0)


def test_task_metrics_dispatch() -> None:
    y = np.array([0, 1])
    proba = np.array([[0.8, 0.2], [0.4, 0.6]])
    assert task_metrics("classification", y, proba) == classification_metrics(y, proba)
    values = np.array([0.5, 1.5])
    assert task_metrics("regression", values, values)["rmse"] == 0.0
    assert PRIMARY_METRIC == {"classification": "accuracy", "regression": "rmse"}
