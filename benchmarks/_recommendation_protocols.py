"""The recommendation benchmark's evaluation: one protocol for every method, mmfuse included.

It is ``MultimodalRecommender.evaluate``'s: for every user of the test rows, every catalogue
item that is not in the user's train rows is ranked, the user's test items are relevant, and
``mmfuse.evaluation.ranking`` computes the metrics. Four views of that ranking:

* ``all_items``: all items ranked, every test item relevant (``evaluate`` with no candidates).
* ``warm_items``: only items with a train row ranked, only those relevant (``evaluate`` with
  the warm items as candidates).
* ``cold_items``: only cold items (in the catalogue, never in train) ranked, only those
  relevant (``evaluate`` with the cold items as candidates). With few cold items recall@K is
  high even at random: compare with the ``random`` method.
* ``cold_among_all``: all items ranked (the ``all_items`` ranking), only cold test items
  relevant: can a cold item beat the warm ones to the top K?

Each is reported for ``all_users``, ``warm_users`` (with train rows) and ``cold_users``
(without). Methods that cannot score an item without train rows (``knows_unseen_items`` False)
have each cold item's score replaced, per user, by the score of a uniformly drawn warm item the
user has not had, which puts the cold items at uniformly random places of the user's ranking.
Ties are broken at random (every score gets up to 1e-9 of uniform noise, in float64).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp

from mmfuse.evaluation.ranking import Relevance, evaluate_ranking

PROTOCOLS = ("all_items", "warm_items", "cold_items", "cold_among_all")
GROUPS = ("all_users", "warm_users", "cold_users")
Scores = Callable[[np.ndarray], np.ndarray]
"""User indices -> (len(users), I) scores, higher first."""


class Protocols:
    """The rankings and metrics of every protocol and user group on one split.

    Args:
        history: (U, I) CSR of the train rows (what is left out of each user's ranking).
        test_users: (M,) user index of each test row.
        test_items: (M,) item index of each test row.
        warm_items: (I,) bool, the items with a train row.
        k: The cut-off K.
        chunk: Users scored at a time.
    """

    def __init__(
        self,
        history: sp.csr_matrix,
        test_users: np.ndarray,
        test_items: np.ndarray,
        warm_items: np.ndarray,
        k: int,
        chunk: int = 256,
    ) -> None:
        self.history, self.k, self.chunk = history, k, chunk
        self.num_items = history.shape[1]
        self.users = np.unique(test_users)  # (n,) the evaluated users, one ranking row each
        self.warm, self.cold = np.flatnonzero(warm_items), np.flatnonzero(~warm_items)
        rows = np.searchsorted(self.users, test_users)
        relevant_to = {
            "all_items": np.ones(self.num_items, dtype=bool),
            "warm_items": warm_items,
            "cold_items": ~warm_items,
            "cold_among_all": ~warm_items,
        }
        self.relevant = {
            p: (rows[mask[test_items]], test_items[mask[test_items]])
            for p, mask in relevant_to.items()
        }
        has_history = np.diff(history.indptr)[self.users] > 0
        self.groups = {
            "all_users": np.ones(len(self.users), dtype=bool),
            "warm_users": has_history,
            "cold_users": ~has_history,
        }

    def rank(self, scores: Scores, knows_unseen_items: bool, seed: int) -> dict[str, np.ndarray]:
        """Protocol -> (n, k) item indices best first, -1 padded, for every evaluated user."""
        rng = np.random.default_rng(seed)
        out: dict[str, list[np.ndarray]] = {"all_items": [], "warm_items": [], "cold_items": []}
        for start in range(0, len(self.users), self.chunk):
            users = self.users[start : start + self.chunk]
            s = np.array(scores(users), dtype=np.float64)  # (n, I)
            rows = self.history[users]
            s[np.repeat(np.arange(len(users)), np.diff(rows.indptr)), rows.indices] = -np.inf
            if not knows_unseen_items:
                self._place_cold_at_random(s, rng)
            s += rng.random(s.shape) * 1e-9
            out["all_items"].append(top_k(s, np.arange(self.num_items), self.k))
            out["warm_items"].append(top_k(s[:, self.warm], self.warm, self.k))
            out["cold_items"].append(top_k(s[:, self.cold], self.cold, self.k))
        ranked = {
            p: np.concatenate(v) if v else np.zeros((0, self.k), np.int64) for p, v in out.items()
        }
        ranked["cold_among_all"] = ranked["all_items"]
        return ranked

    def _place_cold_at_random(self, s: np.ndarray, rng: np.random.Generator) -> None:
        """Each cold item takes the score of a random warm item the user has not had."""
        if not len(self.cold) or not len(self.warm):
            return
        rows = np.arange(len(s))[:, None]
        donor = s[rows, self.warm[rng.integers(0, len(self.warm), (len(s), len(self.cold)))]]
        for _ in range(50):  # redraw donors that the user had (few: histories are short)
            bad = np.isneginf(donor)
            if not bad.any():
                break
            redraw = self.warm[rng.integers(0, len(self.warm), int(bad.sum()))]
            donor[bad] = s[np.nonzero(bad)[0], redraw]
        s[:, self.cold] = np.where(np.isneginf(donor), 0.0, donor)

    def metrics(self, ranked: dict[str, np.ndarray]) -> dict[str, dict[str, dict[str, Any]]]:
        """Protocol -> group -> {"ndcg@K", "recall@K", "users"} (users with a relevant item;
        without any, only ``users``: 0)."""
        out: dict[str, dict[str, dict[str, Any]]] = {}
        for protocol in PROTOCOLS:
            rows, items = self.relevant[protocol]
            out[protocol] = {}
            for group, members in self.groups.items():
                keep = members[rows]
                if not keep.any():
                    out[protocol][group] = {"users": 0}
                    continue
                new_row = np.cumsum(members) - 1  # row in the group's ranking
                relevant = Relevance.from_pairs(
                    new_row[rows[keep]], items[keep], int(members.sum())
                )
                result = evaluate_ranking(
                    ranked[protocol][members], relevant, self.num_items, (self.k,)
                )
                summary = result.summary()
                out[protocol][group] = {
                    f"ndcg@{self.k}": round(summary[f"ndcg@{self.k}"], 4),
                    f"recall@{self.k}": round(summary[f"recall@{self.k}"], 4),
                    "users": result.num_users,
                }
        return out

    def evaluate(self, scores: Scores, knows_unseen_items: bool, seed: int) -> dict[str, Any]:
        return self.metrics(self.rank(scores, knows_unseen_items, seed))


def top_k(scores: np.ndarray, columns: np.ndarray, k: int) -> np.ndarray:
    """(n, k) ``columns`` of the k highest finite scores of each row, best first, -1 padded."""
    n, width = scores.shape
    out = np.full((n, k), -1, dtype=np.int64)
    if width == 0:
        return out
    take = min(k, width)
    top = (
        np.argpartition(-scores, take - 1, 1)[:, :take]
        if take < width
        else np.tile(np.arange(width), (n, 1))
    )
    value = np.take_along_axis(scores, top, 1)
    order = np.argsort(-value, 1, kind="stable")
    top, value = np.take_along_axis(top, order, 1), np.take_along_axis(value, order, 1)
    out[:, :take] = np.where(np.isfinite(value), columns[top], -1)
    return out


def holdout(users: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held) boolean masks over the rows: ``floor(fraction * n)`` rows of each user with
    n >= 2 rows are held out, never all of them (the rule ``MultimodalRecommender`` validates
    with)."""
    rng = np.random.default_rng(seed)
    held = np.zeros(len(users), dtype=bool)
    order = np.argsort(users, kind="stable")
    for group in np.split(order, np.flatnonzero(np.diff(users[order])) + 1):
        take = min(int(np.floor(fraction * len(group))), len(group) - 1)
        if take >= 1:
            held[rng.choice(group, take, replace=False)] = True
    return ~held, held
