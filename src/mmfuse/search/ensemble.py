"""Greedy ensemble selection (Caruana, Niculescu-Mizil, Crew and Ksikes, ICML 2004).

Start from nothing; at every round add, with replacement, the model whose addition makes the
averaged predictions score best; after the last round keep the weights (how often each model
was added) of the round that scored best. Adding with replacement is what lets a strong model
weigh more than a weak one, and keeping the best round stops the ensemble from growing past the
point where it helps.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


def ensemble_selection(
    predictions: Sequence[np.ndarray], score: Callable[[np.ndarray], float], rounds: int = 20
) -> tuple[np.ndarray, float]:
    """Weights over the models and the score of their weighted mean.

    Args:
        predictions: One array per model, all of one shape (e.g. class probabilities (N, C), or
            a stack of them over several views of the validation records).
        score: Higher is better; called on a weighted mean of ``predictions``.
        rounds: Additions made; the weights are multiples of ``1 / best round``.

    Returns:
        (weights summing to 1, score of the weighted mean). Ties go to the earlier model, so a
        single best model gets weight 1 unless a mixture scores strictly better.
    """
    if not predictions:
        raise ValueError("ensemble selection needs at least one model")
    stack = np.stack([np.asarray(p, dtype=np.float64) for p in predictions])
    counts = np.zeros(len(stack), dtype=np.int64)
    total = np.zeros_like(stack[0])
    best_counts, best_score = counts.copy(), -np.inf
    for size in range(1, rounds + 1):
        trials = [score((total + p) / size) for p in stack]
        pick = int(np.argmax(trials))  # the first of equal scores
        counts[pick] += 1
        total += stack[pick]
        if trials[pick] > best_score + 1e-12:
            best_counts, best_score = counts.copy(), float(trials[pick])
    return best_counts / best_counts.sum(), best_score
