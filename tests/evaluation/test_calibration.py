"""Calibration error by hand, and temperature scaling that fixes an over-confident model."""

from __future__ import annotations

import numpy as np
import pytest

from mmfuse.evaluation.calibration import expected_calibration_error, fit_temperature


def test_ece_by_hand() -> None:
    proba = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.4, 0.6]])
    y = np.array([0, 1, 1, 1])
    # 2 bins: confidences 0.9, 0.8 (bin 1: accuracy 1/2, mean confidence 0.85) and 0.7, 0.6
    # (bin 1 too: [0.5, 1.0)) -> one bin of 4: accuracy 3/4, confidence 0.75 -> ECE 0
    assert expected_calibration_error(y, proba, bins=2) == pytest.approx(0.0)
    # 10 bins: 0.9 (acc 1, |1-0.9|), 0.8 (acc 0, 0.8), 0.7 (acc 1, 0.3), 0.6 (acc 1, 0.4); each 1/4
    assert expected_calibration_error(y, proba, bins=10) == pytest.approx((0.1 + 0.8 + 0.3 + 0.4) / 4)


def test_a_certain_and_right_model_has_no_error() -> None:
    proba = np.eye(3)[[0, 1, 2, 1]]
    assert expected_calibration_error(np.array([0, 1, 2, 1]), proba) == 0.0


def test_temperature_scaling_undoes_over_confidence() -> None:
    """Labels drawn from softmax(z); the model claims softmax(4 z): T comes out near 4 and the
    calibration error falls on new records drawn the same way."""
    rng = np.random.default_rng(0)

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        z = rng.normal(0, 1.5, (n, 3))
        p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
        y = np.array([rng.choice(3, p=row) for row in p])
        return 4 * z, y

    logits, y = draw(4000)
    t = fit_temperature(logits, y)
    assert t == pytest.approx(4.0, rel=0.1)
    test_logits, test_y = draw(4000)

    def softmax(x: np.ndarray) -> np.ndarray:
        e = np.exp(x - x.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    before = expected_calibration_error(test_y, softmax(test_logits))
    after = expected_calibration_error(test_y, softmax(test_logits / t))
    assert before > 0.1 and after < before / 3
    assert (softmax(test_logits / t).argmax(1) == softmax(test_logits).argmax(1)).all()  # no prediction changes


def test_no_records_leave_the_temperature_at_one() -> None:
    assert fit_temperature(np.zeros((0, 2)), np.zeros(0)) == 1.0
