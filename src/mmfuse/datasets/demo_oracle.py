"""What the demo data allows: the probability of its label given what a model sees.

The demo's label is the sign of five hidden +-1 votes (``mmfuse.datasets.demo``). A model that
read every vote it is shown perfectly, and ``income`` as the likelihood it is (N(0.9 s, 1)),
could do no better than predict with :func:`demo_posterior`. Its accuracy on a set of records is
the ceiling of any model on them; with modalities hidden, its drop is how much of the drop the
data itself forces, so a benchmark can tell a model that loses what the data loses from one that
loses more.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy.stats import binom

from mmfuse.datasets.demo import INCOME_SHIFT, VOTE_NAMES


def demo_posterior(votes: Mapping[str, np.ndarray], seen: Mapping[str, np.ndarray],
                   income: np.ndarray | None = None) -> np.ndarray:
    """P(label = "positive") of each record, given the votes a model sees.

    Args:
        votes: Vote name -> (n,) +1/-1 (``demo_votes``); names not in ``seen`` are not read.
        seen: Media vote name ("image", "text", "audio", "video") -> (n,) bool, True where the
            model sees that modality (and reads its vote); a name left out is never seen.
        income: (n,) the ``income`` a model sees, NaN where it sees none; None: never seen.

    Returns:
        (n,) probabilities: the unseen votes are fair coins, the tabular vote is weighed by the
        likelihood of ``income``.
    """
    media = [m for m in VOTE_NAMES if m != "tabular"]
    unknown = sorted(set(seen) - set(media))
    if unknown:
        raise ValueError(f"seen: {unknown} are not media votes; choose from {', '.join(media)}")
    n = len(next(iter(votes.values())))
    known = np.zeros(n)
    unseen = np.full(n, len(media))
    for name, where in seen.items():
        where = np.asarray(where, dtype=bool)
        known += np.where(where, votes[name], 0)
        unseen -= where
    x = np.full(n, np.nan) if income is None else np.asarray(income, dtype=float)
    likelihood = 1.0 / (1.0 + np.exp(-2.0 * INCOME_SHIFT * np.nan_to_num(x)))
    p_tab = np.where(np.isfinite(x), likelihood, 0.5)
    return p_tab * _positive(known + 1, unseen) + (1 - p_tab) * _positive(known - 1, unseen)


def demo_oracle_accuracy(posterior: np.ndarray, positive: np.ndarray) -> float:
    """Accuracy of predicting "positive" where ``posterior`` > 0.5 (a tie counts half right)."""
    right = (posterior > 0.5) == np.asarray(positive, dtype=bool)
    right = np.where(np.isclose(posterior, 0.5), 0.5, right)
    return float(np.mean(right))


def _positive(known: np.ndarray, unseen: np.ndarray) -> np.ndarray:
    """P(known + the sum of ``unseen`` fair +-1 votes > 0): more than (unseen - known) / 2 of
    them must be +1."""
    return binom.sf(np.floor((unseen - known) / 2), unseen, 0.5)
