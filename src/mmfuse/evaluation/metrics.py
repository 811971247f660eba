"""Metrics as pure functions of targets and predictions (scikit-learn underneath)."""

from __future__ import annotations

import warnings

import numpy as np

from mmfuse.evaluation.calibration import expected_calibration_error
from mmfuse.evaluation.sentiment import is_sentiment_score, sentiment_metrics

PRIMARY_METRIC = {"classification": "accuracy", "regression": "rmse"}
HIGHER_IS_BETTER = {
    "accuracy": True,
    "f1_macro": True,
    "precision_macro": True,
    "recall_macro": True,
    "roc_auc": True,
    "log_loss": False,
    "ece": False,
    "rmse": False,
    "mae": False,
    "r2": True,
    "pearson": True,
    "acc2": True,
    "acc2_non0": True,
    "acc5": True,
    "acc7": True,
    "f1": True,
    "f1_non0": True,
    "corr": True,
}


def classification_metrics(y_true: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """accuracy, f1/precision/recall (macro), roc_auc (one-vs-rest), log_loss and the expected
    calibration error (``ece``, 15 bins; ``evaluation.calibration``).

    Args:
        y_true: (N,) class indices.
        proba: (N, C) class probabilities.
    """
    from sklearn import metrics

    y_true = y_true.astype(int)
    labels = np.arange(proba.shape[1])
    y_pred = proba.argmax(1)
    out = {
        "accuracy": float(metrics.accuracy_score(y_true, y_pred)),
        "f1_macro": float(metrics.f1_score(y_true, y_pred, average="macro", labels=labels, zero_division=0)),
        "precision_macro": float(
            metrics.precision_score(y_true, y_pred, average="macro", labels=labels, zero_division=0)
        ),
        "recall_macro": float(
            metrics.recall_score(y_true, y_pred, average="macro", labels=labels, zero_division=0)
        ),
        "log_loss": float(metrics.log_loss(y_true, _clipped(proba), labels=labels)),
        "ece": expected_calibration_error(y_true, proba),
    }
    out["roc_auc"] = _roc_auc(y_true, proba)
    return out


def _clipped(proba: np.ndarray) -> np.ndarray:
    """Probabilities clipped away from 0 and renormalised (sklearn warns unless rows sum to 1)."""
    p = np.clip(proba.astype(np.float64), 1e-7, 1.0)
    return p / p.sum(1, keepdims=True)


def _roc_auc(y_true: np.ndarray, proba: np.ndarray) -> float:
    from sklearn import metrics

    present = np.unique(y_true)
    if len(present) < 2:
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if proba.shape[1] == 2:
            return float(metrics.roc_auc_score(y_true, proba[:, 1]))
        p = proba[:, present] / np.clip(proba[:, present].sum(1, keepdims=True), 1e-12, None)
        if len(present) == 2:
            return float(metrics.roc_auc_score(y_true == present[1], p[:, 1]))
        return float(metrics.roc_auc_score(y_true, p, multi_class="ovr", labels=present))


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """mae, rmse, r2 and Pearson correlation."""
    from sklearn import metrics

    y_true = y_true.astype(np.float64)
    y_pred = y_pred.astype(np.float64)
    pearson = float("nan")
    if len(y_true) > 1 and y_true.std() > 0 and y_pred.std() > 0:
        pearson = float(np.corrcoef(y_true, y_pred)[0, 1])
    return {
        "mae": float(metrics.mean_absolute_error(y_true, y_pred)),
        "rmse": float(np.sqrt(metrics.mean_squared_error(y_true, y_pred))),
        "r2": float(metrics.r2_score(y_true, y_pred)) if len(y_true) > 1 else float("nan"),
        "pearson": pearson,
    }


def task_metrics(task: str, y_true: np.ndarray, predictions: np.ndarray) -> dict[str, float]:
    """Dispatches to the metrics of ``task`` (probabilities for classification); regression
    targets that look like sentiment scores in [-3, 3] also get MMSA's metrics
    (``mmfuse.evaluation.sentiment``)."""
    if task == "classification":
        return classification_metrics(y_true, predictions)
    out = regression_metrics(y_true, predictions)
    if is_sentiment_score(y_true):  # the MOSI/MOSEI convention: MMSA's metrics as well
        for name, value in sentiment_metrics(y_true, predictions).items():
            out.setdefault(name, value)  # mae is the same number
    return out


def primary_metric(task: str, y_true: np.ndarray, predictions: np.ndarray) -> float:
    """Only the task's primary metric (accuracy or rmse): cheap enough for every epoch, even
    with hundreds of classes, where one-vs-rest ROC AUC is not."""
    if task == "classification":
        return float(np.mean(predictions.argmax(1) == y_true.astype(np.int64))) if len(y_true) else float("nan")
    diff = y_true.astype(np.float64) - predictions.astype(np.float64)
    return float(np.sqrt(np.mean(diff**2))) if len(diff) else float("nan")
