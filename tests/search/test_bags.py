"""On a small table the kept model mixes the finalists' bags by greedy selection, scored by the
mean over the splits: two finalists right on different records of every split are mixed half and
half, a weaker one is left out, and one that wins alone keeps all the weight."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from mmfuse.data.preprocess import Encoded
from mmfuse.search.ensemble_model import _selected
from mmfuse.search.validation import Views

TARGETS = np.array([0, 1, 0, 1])


def _records(targets: np.ndarray) -> Encoded:
    return Encoded({}, {}, np.arange(len(targets)), targets)


def _accuracy(y: np.ndarray, p: np.ndarray) -> float:
    return float((p.argmax(1) == y).mean())


def _finalist(name: str, right: list[bool], right_2: list[bool] | None = None) -> SimpleNamespace:
    """A finalist trained on 2 splits whose clean outputs give the true class probability 0.9
    where ``right`` (on the second split ``right_2``, by default the same) and 0.4 elsewhere."""

    def split(right: list[bool]) -> SimpleNamespace:
        p_true = np.where(right, 0.9, 0.4)[:, None]
        proba = np.where(np.eye(2, dtype=bool)[TARGETS], p_true, 1 - p_true)
        return SimpleNamespace(outputs=[proba], valid=_records(TARGETS))

    first = split(right)
    first.candidate = SimpleNamespace(name=name, features="default")
    first.estimator = None
    first.resplits = [split(right if right_2 is None else right_2)]
    return first


def _search() -> SimpleNamespace:
    views = Views(_records(TARGETS), None, {}, {})  # one modality: the clean score alone
    return SimpleNamespace(prepared={"default": SimpleNamespace(views=views)},
                           score_fn=lambda est: _accuracy)


def test_two_finalists_right_on_different_records_are_mixed_half_and_half() -> None:
    a = _finalist("a", [True, True, True, False])
    b = _finalist("b", [False, True, True, True])
    weak = _finalist("weak", [True, False, False, True])
    weights, scores, _ = _selected(_search(), [a, b, weak])
    # alone 0.75 each; their mean gives the true class 0.65 everywhere: every record right
    np.testing.assert_allclose(weights, [0.5, 0.5, 0.0])
    assert scores == {"clean": 1.0, "selection": 1.0}


def test_a_finalist_that_nothing_improves_keeps_all_the_weight_and_its_mean_over_splits() -> None:
    best = _finalist("best", [True, True, True, True], [True, True, True, False])
    weights, scores, _ = _selected(_search(), [_finalist("a", [True, True, False, False]), best])
    np.testing.assert_allclose(weights, [0.0, 1.0])
    assert scores["selection"] == pytest.approx((1.0 + 0.75) / 2)
