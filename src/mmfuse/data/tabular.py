"""Tabular features: standardised numeric columns and integer-coded categorical columns."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from mmfuse.errors import DecodeError, MmfuseError

MISSING_CODE, UNKNOWN_CODE = 0, 1
MAX_DEVIATIONS = 1e6
"""A numeric value further than this many standard deviations from the training mean (after
standardisation) is bad input: a unit or entry error, and a value that would overflow the
network's float32 arithmetic into NaN predictions."""
# Text that means "no value" in a numeric cell (compared lower-cased and stripped).
_MISSING_NUMBER_TEXT = frozenset({"", "nan", "na", "n/a", "null", "none", "<na>"})


def numeric_values(series: pd.Series) -> np.ndarray:
    """Coerce a column to float64 (N,); unparsable, missing and ±inf cells become NaN."""
    values = pd.to_numeric(series, errors="coerce")
    array = values.to_numpy(dtype=np.float64, na_value=np.nan)  # may be a read-only view
    return np.where(np.isinf(array), np.nan, array)


def category_key(value: object) -> str | None:
    """The string a categorical cell is compared by; None when the cell is missing.

    NaN, None, pd.NA, pd.NaT and blank strings are missing. Integral floats lose their
    ``.0`` so that a column read as float because of gaps matches the same column read as int.
    """
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return None
        if float(value).is_integer():
            return str(int(value))
    text = str(value).strip()
    return text or None


def _absurd(values: np.ndarray, present: np.ndarray, median: float) -> np.ndarray:
    """(N,) True where a value lies more than MAX_DEVIATIONS robust scales from the median
    (the scale: IQR / 1.349, else 1.4826 * MAD, else max(|median|, 1)), so that one 1e308 among
    prices neither overflows the mean nor flattens every other value to zero."""
    if present.size == 0:
        return np.zeros(values.shape, dtype=bool)
    q25, q75 = np.percentile(present, [25, 75])
    scale = (q75 - q25) / 1.349 or 1.4826 * float(np.median(np.abs(present - median)))
    scale = scale if scale > 0 and math.isfinite(scale) else max(abs(median), 1.0)
    with np.errstate(over="ignore", invalid="ignore"):
        return np.abs(values - median) > MAX_DEVIATIONS * scale


class TabularProcessor:
    """Turns table columns into one float32 feature matrix.

    Numeric columns: non-numbers, ±inf and absurd values (more than MAX_DEVIATIONS robust scales
    from the median, left to ``check_value`` to report) count as missing, are imputed with the
    training median (0 if a column was all missing), then standardised with the mean and population
    std of the imputed training column (std 1 if it is 0). Categorical columns: codes, 0 for
    missing, 1 for values not in the vocabulary, 2.. for the ``max_categories`` most frequent
    training values (ordered by frequency, then value).

    Args:
        numeric: Numeric column names.
        categorical: Categorical column names.
        max_categories: Most known values kept per categorical column.
    """

    def __init__(
        self, numeric: Sequence[str], categorical: Sequence[str], max_categories: int = 1000
    ) -> None:
        self.numeric = list(numeric)
        self.categorical = list(categorical)
        self.max_categories = max_categories
        overlap = sorted(set(self.numeric) & set(self.categorical))
        if overlap:
            raise ValueError(f"columns are both numeric and categorical: {overlap}")
        if max_categories < 1:
            raise ValueError(f"max_categories must be >= 1, got {max_categories}")
        self.medians_: list[float] | None = None
        self.means_: list[float] = []
        self.stds_: list[float] = []
        self.vocabularies_: list[list[str]] = []
        self._codes: list[dict[str, int]] = []

    @property
    def num_numeric(self) -> int:
        """Number of numeric feature columns (they come first in :meth:`transform`)."""
        return len(self.numeric)

    @property
    def cardinalities(self) -> tuple[int, ...]:
        """Codes per categorical column: vocabulary size + 2 (missing and unknown)."""
        self._check_fitted()
        return tuple(len(vocab) + 2 for vocab in self.vocabularies_)

    def _check_fitted(self) -> list[float]:
        """The fitted medians; raises RuntimeError before :meth:`fit`."""
        if self.medians_ is None:
            raise RuntimeError("TabularProcessor is not fitted; call fit(df) first")
        return self.medians_

    def _check_columns(self, df: pd.DataFrame) -> None:
        missing = [c for c in self.numeric + self.categorical if c not in df.columns]
        if missing:
            raise MmfuseError(
                f"table has no column(s) {missing}; available: {', '.join(map(str, df.columns))}"
            )

    def _set_vocabularies(self, vocabularies: list[list[str]]) -> None:
        self.vocabularies_ = vocabularies
        self._codes = [{v: i + 2 for i, v in enumerate(vocab)} for vocab in vocabularies]

    def fit(self, df: pd.DataFrame) -> TabularProcessor:
        """Learn medians, means, stds and category vocabularies from ``df``; returns self."""
        self._check_columns(df)
        medians, means, stds = [], [], []
        for column in self.numeric:
            values = numeric_values(df[column])  # (N,)
            present = values[~np.isnan(values)]
            median = float(np.median(present)) if present.size else 0.0
            values = np.where(_absurd(values, present, median), np.nan, values)  # reported later
            imputed = np.where(np.isnan(values), median, values)
            mean = float(imputed.mean()) if imputed.size else 0.0
            std = float(imputed.std()) if imputed.size else 0.0
            medians.append(median)
            means.append(mean)
            stds.append(std if std > 0 and math.isfinite(std) else 1.0)
        vocabularies = []
        for column in self.categorical:
            counts = Counter(k for k in map(category_key, df[column].tolist()) if k is not None)
            ranked = sorted(counts, key=lambda k: (-counts[k], k))
            vocabularies.append(ranked[: self.max_categories])
        self.medians_, self.means_, self.stds_ = medians, means, stds
        self._set_vocabularies(vocabularies)
        return self

    def transform(self, df: pd.DataFrame) -> np.ndarray:
        """Feature matrix: standardised numeric columns, then categorical codes as floats.

        Returns:
            float32 array of shape (N, num_numeric + len(categorical)).
        """
        medians = self._check_fitted()
        self._check_columns(df)
        out = np.empty((len(df), len(self.numeric) + len(self.categorical)), dtype=np.float32)
        for j, column in enumerate(self.numeric):
            values = numeric_values(df[column])
            imputed = np.where(np.isnan(values), medians[j], values)
            with np.errstate(over="ignore"):  # absurd values: check_value reports their rows
                out[:, j] = (imputed - self.means_[j]) / self.stds_[j]
        for j, column in enumerate(self.categorical):
            codes = self._codes[j]
            keys = map(category_key, df[column].tolist())
            out[:, self.num_numeric + j] = [
                MISSING_CODE if k is None else codes.get(k, UNKNOWN_CODE) for k in keys
            ]
        return out

    def fit_transform(self, df: pd.DataFrame) -> np.ndarray:
        """``fit(df).transform(df)``."""
        return self.fit(df).transform(df)

    def check_value(self, column: str, value: object) -> None:
        """Raise DecodeError if a numeric cell holds text that is not a number, ±inf, or (once
        fitted) a value more than MAX_DEVIATIONS standard deviations from the training mean.

        Missing cells (None, NaN, blank, "NA", ...) are fine: they are imputed. Categorical
        columns accept any value.

        Raises:
            DecodeError: The numeric cell cannot be used.
            ValueError: ``column`` is neither a numeric nor a categorical column.
        """
        if column in self.categorical:
            return
        if column not in self.numeric:
            raise ValueError(
                f"unknown column {column!r}; numeric: {self.numeric}, "
                f"categorical: {self.categorical}"
            )
        if value is None or value is pd.NA:
            return
        if isinstance(value, (bool, int, float, np.bool_, np.integer, np.floating)):
            number = float(value)
        elif isinstance(value, str):
            text = value.strip()
            if text.lower() in _MISSING_NUMBER_TEXT:
                return
            number = float(pd.to_numeric(text, errors="coerce"))
            if math.isnan(number):
                raise DecodeError(f"{value!r} is not a number")
        else:
            raise DecodeError(
                f"{value!r:.80} ({type(value).__name__}) is not a number"
            )
        if math.isnan(number):  # a missing value, imputed
            return
        if math.isinf(number):
            raise DecodeError(f"{value!r} is not a finite number")
        self._check_range(column, value, number)

    def _check_range(self, column: str, value: object, number: float) -> None:
        """After fitting: the value standardises to a finite number within MAX_DEVIATIONS."""
        if self.medians_ is None:
            return
        j = self.numeric.index(column)
        deviations = abs(number - self.means_[j]) / self.stds_[j]
        if not deviations <= MAX_DEVIATIONS:  # also catches NaN from overflow
            raise DecodeError(
                f"{value!r} is {deviations:.3g} standard deviations from the training mean "
                f"({self.means_[j]:.4g}, std {self.stds_[j]:.4g}); a unit or entry error? Fix "
                "the value or leave the cell empty (it is then imputed)"
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-able state (plain lists, floats and strings)."""
        medians = self._check_fitted()
        return {
            "numeric": list(self.numeric),
            "categorical": list(self.categorical),
            "max_categories": self.max_categories,
            "medians": list(medians),
            "means": list(self.means_),
            "stds": list(self.stds_),
            "vocabularies": [list(v) for v in self.vocabularies_],
        }

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> TabularProcessor:
        """Inverse of :meth:`to_dict`."""
        processor = cls(state["numeric"], state["categorical"], state["max_categories"])
        sizes = {len(state[k]) for k in ("medians", "means", "stds")}
        if sizes != {len(processor.numeric)} or len(state["vocabularies"]) != len(
            processor.categorical
        ):
            raise ValueError("tabular state has lists whose lengths do not match its columns")
        processor.medians_ = [float(v) for v in state["medians"]]
        processor.means_ = [float(v) for v in state["means"]]
        processor.stds_ = [float(v) for v in state["stds"]]
        processor._set_vocabularies([[str(v) for v in vocab] for vocab in state["vocabularies"]])
        return processor

    def __repr__(self) -> str:
        return (
            f"TabularProcessor(numeric={self.numeric}, categorical={self.categorical}, "
            f"max_categories={self.max_categories})"
        )
