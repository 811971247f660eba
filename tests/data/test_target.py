"""Tests for mmfuse.data.target: task inference, label encoding, standardisation."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mmfuse.data.target import TargetEncoder, infer_task
from mmfuse.errors import MmfuseError


@pytest.mark.parametrize(
    ("values", "task"),
    [
        (["cat", "dog", "cat"], "classification"),
        ([0, 1, 1, 0, None], "classification"),
        ([1.0, 2.0, 3.0], "classification"),  # whole numbers, few distinct
        ([0.5, 1.0, 2.0], "regression"),  # a fraction
        (list(range(21)), "regression"),  # more than 20 distinct numbers
        (list(range(20)), "classification"),
        (["1", "2", "x"], "classification"),
        ([], "classification"),
    ],
)
def test_infer_task(values: list[object], task: str) -> None:
    assert infer_task(pd.Series(values, dtype=object)) == task


def test_classes_sorted_as_strings_and_round_trip() -> None:
    enc = TargetEncoder("classification").fit(pd.Series(["b", "a", "c", "a", None]), "y")
    assert enc.classes == ["a", "b", "c"]
    assert enc.num_outputs == 3
    assert [enc.encode_one(v) for v in ["a", "b", "c"]] == [0.0, 1.0, 2.0]
    np.testing.assert_array_equal(enc.decode(np.array([2, 0, 1])), ["c", "a", "b"])


def test_integral_floats_are_the_same_class_as_ints() -> None:
    enc = TargetEncoder("classification").fit(pd.Series([1.0, 0.0, np.nan, 1.0]), "y")
    assert enc.classes == ["0", "1"]
    assert enc.encode_one(1) == enc.encode_one(1.0) == enc.encode_one("1") == 1.0


def test_one_class_is_an_error() -> None:
    with pytest.raises(
        MmfuseError, match=r"target column 'y' has 1 class \(only\); .*at least two"
    ):
        TargetEncoder("classification").fit(pd.Series(["only", "only"]), "y")
    with pytest.raises(MmfuseError, match=r"has 0 class \(none\)"):
        TargetEncoder("classification").fit(pd.Series([None, None]), "y")


def test_unknown_and_missing_labels() -> None:
    enc = TargetEncoder("classification").fit(pd.Series(["no", "yes"]), "y")
    with pytest.raises(ValueError, match="unknown class 'maybe'; the model knows: no, yes"):
        enc.encode_one("maybe")
    for missing in (None, float("nan"), ""):
        with pytest.raises(ValueError, match="the target is missing"):
            enc.encode_one(missing)


def test_regression_standardises_and_decodes() -> None:
    enc = TargetEncoder("regression").fit(pd.Series([1.0, 3.0, None, "5"]), "y")
    assert enc.mean == pytest.approx(3.0)
    assert enc.std == pytest.approx(np.std([1.0, 3.0, 5.0]))
    assert enc.num_outputs == 1
    z = np.array([enc.encode_one(v) for v in (1.0, 3, "5")])
    np.testing.assert_allclose(z, [-1.2247449, 0.0, 1.2247449], rtol=1e-6)
    np.testing.assert_allclose(enc.decode(z), [1.0, 3.0, 5.0])


def test_constant_regression_target_keeps_std_one() -> None:
    enc = TargetEncoder("regression").fit(pd.Series([2.0, 2.0]), "y")
    assert enc.std == 1.0 and enc.encode_one(3.0) == 1.0


def test_bad_regression_values() -> None:
    enc = TargetEncoder("regression").fit(pd.Series([1.0, 2.0]), "y")
    with pytest.raises(ValueError, match="target 'abc' is not a number"):
        enc.encode_one("abc")
    with pytest.raises(ValueError, match="target inf is not finite"):
        enc.encode_one(float("inf"))
    with pytest.raises(MmfuseError, match="target column 'y' has no numeric values"):
        TargetEncoder("regression").fit(pd.Series(["a", "b"]), "y")


def test_unknown_task() -> None:
    with pytest.raises(
        MmfuseError, match="unknown task 'ranking'; choose one of: classification, regression"
    ):
        TargetEncoder("ranking")


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_to_dict_is_json_and_round_trips(task: str) -> None:
    enc = TargetEncoder(task).fit(pd.Series([1, 2, 2, 4]), "y")
    again = TargetEncoder.from_dict(json.loads(json.dumps(enc.to_dict())))
    assert again.to_dict() == enc.to_dict()
    assert again.encode_one(4) == enc.encode_one(4)
