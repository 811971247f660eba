"""Target column handling: task inference, label encoding, regression standardisation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from mmfuse.errors import MmfuseError

TASKS = ("classification", "regression")


def infer_task(series: pd.Series) -> str:
    """Regression for numbers with many distinct values or fractions, else classification."""
    values = series.dropna()
    numbers = pd.to_numeric(values, errors="coerce")
    if len(values) and numbers.notna().all():
        fractional = bool((numbers != numbers.round()).any())
        if fractional or numbers.nunique() > 20:
            return "regression"
    return "classification"


class TargetEncoder:
    """Maps target values to training targets and back.

    Classification: labels -> class indices (classes sorted as strings). Regression:
    values -> standardised floats (mean/std of the training targets).
    """

    def __init__(self, task: str) -> None:
        if task not in TASKS:
            raise MmfuseError(f"unknown task {task!r}; choose one of: {', '.join(TASKS)}")
        self.task = task
        self.classes: list[str] = []
        self.mean = 0.0
        self.std = 1.0

    def fit(self, series: pd.Series, column: str) -> TargetEncoder:
        """Learns the classes or the mean/std from the training targets."""
        values = series.dropna()
        if self.task == "classification":
            self.classes = sorted({_label(v) for v in values})
            if len(self.classes) < 2:
                found = ", ".join(self.classes) or "none"
                raise MmfuseError(
                    f"target column {column!r} has {len(self.classes)} class ({found}); "
                    "classification needs at least two classes"
                )
        else:
            numbers = pd.to_numeric(values, errors="coerce").dropna().to_numpy(dtype=np.float64)
            if len(numbers) == 0:
                raise MmfuseError(f"target column {column!r} has no numeric values")
            self.mean = float(numbers.mean())
            self.std = float(numbers.std()) or 1.0
        return self

    @property
    def num_outputs(self) -> int:
        return len(self.classes) if self.task == "classification" else 1

    def encode_one(self, value: Any) -> float:
        """Encodes one target value; raises ValueError with the reason if it is unusable."""
        if value is None or (isinstance(value, float) and np.isnan(value)) or value == "":
            raise ValueError("the target is missing")
        if self.task == "classification":
            label = _label(value)
            if label not in self.classes:
                raise ValueError(
                    f"unknown class {label!r}; the model knows: {', '.join(self.classes)}"
                )
            return float(self.classes.index(label))
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"target {value!r} is not a number") from None
        if not np.isfinite(number):
            raise ValueError(f"target {value!r} is not finite")
        return (number - self.mean) / self.std

    def decode(self, predictions: np.ndarray) -> np.ndarray:
        """Class indices -> labels, or standardised values -> original scale."""
        if self.task == "classification":
            return np.asarray(self.classes, dtype=object)[predictions.astype(int)]
        return predictions * self.std + self.mean

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "classes": self.classes, "mean": self.mean, "std": self.std}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TargetEncoder:
        enc = cls(d["task"])
        enc.classes = list(d["classes"])
        enc.mean = float(d["mean"])
        enc.std = float(d["std"])
        return enc


def _label(value: Any) -> str:
    """Canonical string form of a class label (1.0 and 1 are the same class)."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)
