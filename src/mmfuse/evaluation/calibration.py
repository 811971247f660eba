"""Whether class probabilities mean what they say, and temperature scaling to make them (Guo
et al., "On Calibration of Modern Neural Networks", ICML 2017).

``expected_calibration_error``: the records are put in ``bins`` equal-width bins of their top
probability (confidence); ECE is the record-weighted mean, over the bins, of |accuracy -
mean confidence| in the bin. ``fit_temperature``: the one ``T > 0`` that minimises the
negative log-likelihood of ``softmax(logits / T)`` on held-out records; it changes no
prediction (the arg max is the same), only how sure each one claims to be.
"""

from __future__ import annotations

import numpy as np

T_RANGE = (0.05, 20.0)


def expected_calibration_error(y_true: np.ndarray, proba: np.ndarray, bins: int = 15) -> float:
    """ECE of (N, C) probabilities against (N,) class indices (NaN for no records)."""
    if len(y_true) == 0:
        return float("nan")
    confidence = proba.max(1)
    correct = proba.argmax(1) == np.asarray(y_true).astype(int)
    which = np.minimum((confidence * bins).astype(int), bins - 1)  # confidence 1.0 goes to the last bin
    total = 0.0
    for b in np.unique(which):
        inside = which == b
        total += inside.sum() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(total / len(y_true))


def fit_temperature(logits: np.ndarray, y_true: np.ndarray, steps: int = 100) -> float:
    """The temperature minimising the NLL of ``softmax(logits / T)`` (bounded to ``T_RANGE``)."""
    import torch
    import torch.nn.functional as F

    x = torch.as_tensor(np.asarray(logits), dtype=torch.float64)
    y = torch.as_tensor(np.asarray(y_true).astype(np.int64))
    if len(y) == 0:
        return 1.0
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.1, max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> "torch.Tensor":
        optimizer.zero_grad()
        loss = F.cross_entropy(x / log_t.exp(), y)
        loss.backward()
        return loss

    optimizer.step(closure)
    t = float(log_t.detach().exp())
    return float(np.clip(t, *T_RANGE)) if np.isfinite(t) else 1.0
