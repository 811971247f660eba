"""Sentiment-score metrics of the CMU-MOSI/MOSEI convention (scores in [-3, 3]), defined as
MMSA defines them (Yu et al., MMSA's ``MetricsTop``, the field's reference implementation).

* ``acc2``: sign accuracy with 0 counted as positive (true >= 0 against predicted >= 0), and
  ``f1`` its weighted F1 (MMSA's ``Has0_acc_2`` / ``Has0_F1_score``);
* ``acc2_non0`` / ``f1_non0``: the same over the records whose true score is not 0, positive
  meaning > 0 (``Non0_acc_2`` / ``Non0_F1_score``);
* ``acc5`` / ``acc7``: both scores clipped to [-2, 2] / [-3, 3], then rounded to the nearest
  integer; the share of equal classes (``Mult_acc_5`` / ``Mult_acc_7``);
* ``mae`` and ``corr`` (Pearson) of the raw scores.
"""

from __future__ import annotations

import numpy as np

SENTIMENT_RANGE = 3.0


def is_sentiment_score(y_true: np.ndarray) -> bool:
    """Whether targets look like sentiment scores: every value in [-3, 3] (up to float32
    rounding of decoded targets), both signs present."""
    y = np.asarray(y_true, dtype=np.float64)
    return len(y) > 0 and bool(np.all(np.abs(y) <= SENTIMENT_RANGE + 1e-5)) and bool(y.min() < 0 < y.max())


def sentiment_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """MMSA's regression metrics (see the module docstring); NaN where undefined (no non-zero
    true score, or a constant series for ``corr``)."""
    from sklearn.metrics import accuracy_score, f1_score

    y = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    out = {
        "acc2": float(accuracy_score(y >= 0, p >= 0)),
        "f1": float(f1_score(y >= 0, p >= 0, average="weighted", zero_division=0)),
        "acc5": _rounded_agreement(y, p, 2.0),
        "acc7": _rounded_agreement(y, p, 3.0),
        "mae": float(np.mean(np.abs(y - p))),
        "corr": float(np.corrcoef(y, p)[0, 1]) if len(y) > 1 and y.std() > 0 and p.std() > 0 else float("nan"),
    }
    non0 = y != 0
    if non0.any():
        out["acc2_non0"] = float(accuracy_score(y[non0] > 0, p[non0] > 0))
        out["f1_non0"] = float(f1_score(y[non0] > 0, p[non0] > 0, average="weighted", zero_division=0))
    else:
        out["acc2_non0"] = out["f1_non0"] = float("nan")
    return out


def _rounded_agreement(y: np.ndarray, p: np.ndarray, bound: float) -> float:
    return float(np.mean(np.round(np.clip(y, -bound, bound)) == np.round(np.clip(p, -bound, bound))))
