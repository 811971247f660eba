"""Tests for mmfuse.data.tabular: imputation, standardisation, category codes, checks."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mmfuse.data.tabular import TabularProcessor, category_key
from mmfuse.errors import DecodeError, MmfuseError


@pytest.fixture
def df() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": [1.0, 3.0, None, "oops"],  # median of {1, 3} = 2 -> [1, 3, 2, 2]
            "city": ["b", "a", "b", None],  # b:2, a:1 -> b=2, a=3
            "flag": [1, np.nan, 1.0, 2],  # ints with a gap read as float
        }
    )


def test_fit_learns_median_mean_std_and_vocab(df: pd.DataFrame) -> None:
    proc = TabularProcessor(["age"], ["city", "flag"]).fit(df)
    assert proc.medians_ == [2.0]
    assert proc.means_ == [2.0]
    np.testing.assert_allclose(proc.stds_, [np.sqrt(0.5)])  # population std of [1, 3, 2, 2]
    assert proc.vocabularies_ == [["b", "a"], ["1", "2"]]
    assert proc.cardinalities == (4, 4)
    assert proc.num_numeric == 1


def test_transform_exact_values(df: pd.DataFrame) -> None:
    proc = TabularProcessor(["age"], ["city", "flag"])
    out = proc.fit_transform(df)
    assert out.shape == (4, 3) and out.dtype == np.float32
    s = np.sqrt(0.5)
    np.testing.assert_allclose(out[:, 0], [-1 / s, 1 / s, 0, 0], rtol=1e-6)
    np.testing.assert_array_equal(out[:, 1], [2, 3, 2, 0])  # None -> 0 (missing)
    np.testing.assert_array_equal(out[:, 2], [2, 0, 2, 3])  # 1.0 and 1 are the same value


def test_unknown_categories_and_inf_at_transform(df: pd.DataFrame) -> None:
    proc = TabularProcessor(["age"], ["city"]).fit(df)
    new = pd.DataFrame({"age": [np.inf, 4.0], "city": ["zzz", "  a "]})
    out = proc.transform(new)
    np.testing.assert_allclose(out[:, 0], [0.0, 2 / np.sqrt(0.5)], rtol=1e-6)  # inf imputed
    np.testing.assert_array_equal(out[:, 1], [1, 3])  # unknown -> 1; whitespace stripped


def test_max_categories_keeps_most_frequent_ties_by_value() -> None:
    frame = pd.DataFrame({"c": ["x", "y", "y", "z", "w", ""]})
    proc = TabularProcessor([], ["c"], max_categories=2).fit(frame)
    assert proc.vocabularies_ == [["y", "w"]]
    np.testing.assert_array_equal(proc.transform(frame)[:, 0], [1, 2, 2, 1, 3, 0])


def test_constant_and_all_missing_numeric_columns() -> None:
    frame = pd.DataFrame({"const": [5, 5, 5], "empty": [None, None, None]})
    proc = TabularProcessor(["const", "empty"], []).fit(frame)
    assert proc.medians_ == [5.0, 0.0] and proc.stds_ == [1.0, 1.0]
    np.testing.assert_array_equal(proc.transform(frame), np.zeros((3, 2)))


def test_category_key() -> None:
    assert category_key(None) is None and category_key(float("nan")) is None
    assert category_key(pd.NA) is None and category_key("   ") is None
    assert category_key(3.0) == "3" and category_key(np.int64(3)) == "3"
    assert category_key(2.5) == "2.5" and category_key(" x ") == "x"


def test_check_value() -> None:
    proc = TabularProcessor(["n"], ["c"])
    for ok in [1, 2.5, "3", " -4e2 ", None, np.nan, "", "NA", "nan", True, np.float32(1)]:
        proc.check_value("n", ok)
    proc.check_value("c", "anything at all")
    with pytest.raises(DecodeError, match="'abc' is not a number"):
        proc.check_value("n", "abc")
    with pytest.raises(DecodeError, match="'inf' is not a finite number"):
        proc.check_value("n", "inf")
    with pytest.raises(DecodeError, match="not a finite number"):
        proc.check_value("n", float("-inf"))
    with pytest.raises(DecodeError, match=r"\(list\) is not a number"):
        proc.check_value("n", [1, 2])
    with pytest.raises(ValueError, match="unknown column 'zz'"):
        proc.check_value("zz", 1)


def test_dict_round_trip_through_json(df: pd.DataFrame) -> None:
    proc = TabularProcessor(["age"], ["city", "flag"], max_categories=7).fit(df)
    restored = TabularProcessor.from_dict(json.loads(json.dumps(proc.to_dict())))
    assert restored.cardinalities == proc.cardinalities and restored.max_categories == 7
    np.testing.assert_array_equal(restored.transform(df), proc.transform(df))


def test_errors() -> None:
    with pytest.raises(ValueError, match=r"both numeric and categorical: \['a'\]"):
        TabularProcessor(["a"], ["a"])
    proc = TabularProcessor(["a"], [])
    with pytest.raises(RuntimeError, match="not fitted"):
        proc.transform(pd.DataFrame({"a": [1]}))
    with pytest.raises(MmfuseError, match=r"no column\(s\) \['a'\]; available: b"):
        proc.fit(pd.DataFrame({"b": [1]}))
    state = TabularProcessor(["a"], []).fit(pd.DataFrame({"a": [1.0]})).to_dict()
    state["means"] = []
    with pytest.raises(ValueError, match="lengths do not match"):
        TabularProcessor.from_dict(state)
