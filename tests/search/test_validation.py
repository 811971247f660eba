"""The damaged validation copies that candidates are scored on, and the selection score."""

from __future__ import annotations

import numpy as np
import pytest

from mmfuse.data.preprocess import Encoded
from mmfuse.errors import MmfuseError
from mmfuse.search.validation import MISSING_SHARE, Views, check_metric, metric_fn


def _records(n: int = 200) -> Encoded:
    ids = np.arange(n, dtype=np.float32)
    inputs = {"a": np.stack([ids, ids], 1), "b": ids.reshape(-1, 1) + 1000}
    mask = {"a": np.ones(n, dtype=bool), "b": np.ones(n, dtype=bool)}
    mask["b"][:10] = False  # b missing in the data for the first 10 records
    return Encoded(inputs, mask, np.arange(n), (ids % 2).astype(np.float32), [])


def test_the_missing_copy_hides_about_30_percent_of_each_modality_but_never_all() -> None:
    enc = _records()
    views = Views.build(enc, seed=0)
    assert views.missing is not None
    kept = np.stack([views.missing.mask["a"], views.missing.mask["b"]], 1)
    assert kept.any(1).all()  # every record keeps a modality
    assert not (views.missing.mask["b"] & ~enc.mask["b"]).any()  # nothing missing comes back
    hidden_a = 1 - views.missing.mask["a"].mean()
    assert hidden_a == pytest.approx(MISSING_SHARE, abs=0.1)
    np.testing.assert_array_equal(views.missing.inputs["a"][~views.missing.mask["a"]], 0)
    np.testing.assert_array_equal(views.missing.inputs["b"][views.missing.mask["b"]],
                                  enc.inputs["b"][views.missing.mask["b"]])


def test_a_shuffled_copy_gives_every_record_another_records_modality() -> None:
    enc = _records()
    views = Views.build(enc, seed=0)
    b = views.shuffled["b"]
    assert not (b.inputs["b"][:, 0] == enc.inputs["b"][:, 0]).any()
    assert sorted(b.inputs["b"][:, 0]) == sorted(enc.inputs["b"][:, 0])  # a permutation
    source = (b.inputs["b"][:, 0] - 1000).astype(int)
    np.testing.assert_array_equal(b.mask["b"], enc.mask["b"][source])  # the mask travels with it
    np.testing.assert_array_equal(b.inputs["a"], enc.inputs["a"])  # the other modality is intact
    np.testing.assert_array_equal(b.targets, enc.targets)


def test_a_hidden_copy_hides_one_modality_wherever_another_is_present() -> None:
    enc = _records()
    views = Views.build(enc, seed=0)
    b = views.hidden["b"]
    assert not b.mask["b"].any()  # "a" is in every record
    np.testing.assert_array_equal(b.inputs["b"], 0)
    a = views.hidden["a"]
    np.testing.assert_array_equal(a.mask["a"], ~enc.mask["b"])  # kept where it is alone: the first 10
    np.testing.assert_array_equal(a.inputs["a"][10:], 0)
    np.testing.assert_array_equal(a.inputs["a"][:10], enc.inputs["a"][:10])
    np.testing.assert_array_equal(a.inputs["b"], enc.inputs["b"])


def test_the_selection_score_weighs_clean_missing_shuffled_and_hidden() -> None:
    views = Views.build(_records(), seed=0)
    outputs = [np.array([1.0]), np.array([0.5]), np.array([0.0]), np.array([0.2]),  # clean, missing, shuffled a, b
               np.array([0.6]), np.array([0.8])]  # hidden a, b
    scores = views.combine(outputs, lambda y, o: float(o[0]))
    # 0.4 * 1 + 0.2 * 0.5 + 0.2 * mean(0, 0.2) + 0.2 * mean(0.6, 0.8) = 0.4 + 0.1 + 0.02 + 0.14
    assert scores == pytest.approx({"clean": 1.0, "missing": 0.5, "shuffled": 0.1, "hidden": 0.7, "selection": 0.66})


def test_one_modality_is_scored_clean_only() -> None:
    enc = _records()
    one = Encoded({"a": enc.inputs["a"]}, {"a": enc.mask["a"]}, enc.rows, enc.targets, [])
    views = Views.build(one, seed=0)
    assert views.all() == [one]
    assert views.combine([np.array([0.7])], lambda y, o: float(o[0])) == {"clean": 0.7, "selection": 0.7}


def test_metrics_are_oriented_and_checked() -> None:
    y = np.array([0.0, 1.0])
    rmse = metric_fn("regression", "rmse", lambda v: v)
    assert rmse(y, np.array([0.0, 3.0])) == pytest.approx(-np.sqrt(2.0))  # sqrt((0 + 4) / 2), lower is better
    accuracy = metric_fn("classification", "accuracy", lambda v: v)
    assert accuracy(y, np.array([[0.9, 0.1], [0.8, 0.2]])) == pytest.approx(0.5)
    assert check_metric("classification", None) == "accuracy"
    assert check_metric("regression", "mae") == "mae"
    with pytest.raises(MmfuseError, match="'rmse' is not a classification metric; choose one of: accuracy"):
        check_metric("classification", "rmse")
