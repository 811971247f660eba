"""Top-K ranking metrics for recommendation: recall, NDCG, hit rate, MAP and coverage at K.

Input is, per user, a ranked list of item indices (best first) and the set of that user's
relevant items (e.g. the items of the user's test interactions). All metrics use binary
relevance and follow the LightGCN / RecBole / Microsoft Recommenders conventions. For one user
with relevant set ``R`` and top-K list ``L`` (positions ``p = 1..K``, ``rel_p = 1`` when the
item at position ``p`` is in ``R``):

- ``recall@K = |L ∩ R| / |R|`` (the denominator is ``|R|``, not ``min(|R|, K)``, so a user
  with more than K relevant items cannot reach 1).
- ``ndcg@K = DCG / IDCG`` with ``DCG = sum_p rel_p / log2(p + 1)`` and
  ``IDCG = sum_{p=1..min(|R|, K)} 1 / log2(p + 1)`` (all relevant items ranked first).
- ``hit@K = 1`` if ``|L ∩ R| > 0`` else 0.
- ``map@K = (1 / min(|R|, K)) * sum_p rel_p * precision@p`` with
  ``precision@p = (sum_{q <= p} rel_q) / p`` (RecBole's normalisation; it is 1 exactly when
  the first ``min(|R|, K)`` positions are all relevant).

Each of these is averaged over the evaluated users, each user counting once.

- ``coverage@K = |union over evaluated users of L| / num_items``: the share of the
  catalogue that appears in at least one evaluated user's top K.

Choices:

- Users with no relevant item have no recall, NDCG or MAP; they are excluded from every
  metric (coverage included) and counted (:attr:`RankingMetrics.num_skipped`). If no user
  has a relevant item, ``MmfuseError`` is raised.
- Duplicate relevant items of one user count once.
- ``-1`` in a ranked list is padding (fewer candidates than the list width): it is never a
  hit and never covered. When K exceeds the list width, the top K is the whole list, treated
  as padded with ``-1``; the ideal DCG and the MAP normaliser still use ``min(|R|, K)``.
- A ranked list must not hold the same item twice (that would count one hit twice).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from mmfuse.errors import MmfuseError

DEFAULT_KS = (10, 20)
PER_USER_METRICS = ("recall", "ndcg", "hit", "map")
"""Metrics that have one value per user (coverage is a property of all lists together)."""


class Relevance(NamedTuple):
    """Relevant item indices of every user in CSR layout.

    Attributes:
        indptr: (U + 1,) int64; user ``u``'s items are ``indices[indptr[u]:indptr[u + 1]]``.
        indices: (nnz,) int64 item indices (duplicates allowed, they count once).
    """

    indptr: np.ndarray
    indices: np.ndarray

    @classmethod
    def from_lists(cls, items: Sequence[Iterable[int]]) -> Relevance:
        """One iterable of item indices per user."""
        arrays = [row if isinstance(row, np.ndarray) else np.asarray(list(row)) for row in items]
        lengths = np.fromiter((a.size for a in arrays), dtype=np.int64, count=len(arrays))
        indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        indices = np.concatenate(arrays).astype(np.int64) if arrays else np.zeros(0, np.int64)
        return cls(indptr, indices)

    @classmethod
    def from_pairs(cls, users: np.ndarray, items: np.ndarray, num_users: int) -> Relevance:
        """From parallel arrays of (user index, item index), e.g. the rows of a test table."""
        users, items = np.asarray(users, dtype=np.int64), np.asarray(items, dtype=np.int64)
        if users.shape != items.shape or users.ndim != 1:
            raise MmfuseError(
                f"users {users.shape} and items {items.shape} must be 1-D of equal length"
            )
        if users.size and (users.min() < 0 or users.max() >= num_users):
            raise MmfuseError(
                f"user indices must lie in [0, {num_users}); got {users.min()}..{users.max()}"
            )
        order = np.argsort(users, kind="stable")
        indptr = np.concatenate([[0], np.cumsum(np.bincount(users, minlength=num_users))])
        return cls(indptr.astype(np.int64), items[order])

    @property
    def num_users(self) -> int:
        return len(self.indptr) - 1


@dataclass(frozen=True)
class RankingMetrics:
    """Ranking metrics of every user, and coverage.

    Attributes:
        per_user: ``{"recall@10": (U,) float64, ...}`` for every metric in
            :data:`PER_USER_METRICS` and every K; NaN for users without relevant items.
        coverage: ``{"coverage@10": float, ...}``, one per K.
        evaluated: (U,) bool, True for users with at least one relevant item.
    """

    per_user: dict[str, np.ndarray]
    coverage: dict[str, float]
    evaluated: np.ndarray

    @property
    def num_users(self) -> int:
        """Users evaluated (with at least one relevant item)."""
        return int(self.evaluated.sum())

    @property
    def num_skipped(self) -> int:
        """Users excluded because they have no relevant item."""
        return int((~self.evaluated).sum())

    def summary(self) -> dict[str, float]:
        """Mean of each per-user metric over the evaluated users, plus coverage.

        Keys are ordered by K, then recall, ndcg, hit, map, coverage.
        """
        out: dict[str, float] = {}
        for key in self.coverage:
            k = key.split("@")[1]
            for name in PER_USER_METRICS:
                out[f"{name}@{k}"] = float(self.per_user[f"{name}@{k}"][self.evaluated].mean())
            out[key] = self.coverage[key]
        return out


def ranking_metrics(
    ranked: np.ndarray,
    relevant: Relevance | Sequence[Iterable[int]],
    num_items: int,
    ks: Iterable[int] = DEFAULT_KS,
) -> dict[str, float]:
    """Mean ``recall@K``, ``ndcg@K``, ``hit@K``, ``map@K`` and ``coverage@K`` for every K.

    See the module docstring for the definitions; :func:`evaluate_ranking` also gives the
    per-user values and the number of users skipped for lack of relevant items.

    Args:
        ranked: (U, W) int item indices per user, best first; ``-1`` is padding.
        relevant: Relevant item indices per user: a :class:`Relevance` or one iterable per user.
        num_items: Catalogue size; every index must lie in ``[0, num_items)``.
        ks: The cut-offs K.

    Returns:
        ``{"recall@10": ..., "ndcg@10": ..., "hit@10": ..., "map@10": ..., "coverage@10": ...,
        "recall@20": ...}``, in that order.
    """
    return evaluate_ranking(ranked, relevant, num_items, ks).summary()


def evaluate_ranking(
    ranked: np.ndarray,
    relevant: Relevance | Sequence[Iterable[int]],
    num_items: int,
    ks: Iterable[int] = DEFAULT_KS,
) -> RankingMetrics:
    """Per-user ranking metrics and coverage; arguments as :func:`ranking_metrics`.

    Vectorised over users: the cost is a sort of the (user, item) pairs plus a loop over K.

    Raises:
        MmfuseError: On a bad shape, K or index, a repeated item in a ranked list, or when no
            user has a relevant item.
    """
    ks = check_ks(ks)
    ranked = _check_ranked(ranked, num_items)
    rel = relevant if isinstance(relevant, Relevance) else Relevance.from_lists(relevant)
    rel_keys = _relevant_keys(rel, len(ranked), num_items)
    num_relevant = np.bincount(rel_keys // num_items, minlength=len(ranked))  # (U,)
    evaluated = num_relevant > 0
    if not evaluated.any():
        raise MmfuseError(f"none of the {len(ranked)} users has a relevant item; nothing to rank")
    hits = _hit_matrix(ranked, rel_keys, num_items)  # (U, W) bool
    per_user: dict[str, np.ndarray] = {}
    coverage: dict[str, float] = {}
    for k in ks:
        for name, values in _metrics_at(hits[:, :k], num_relevant, k).items():
            values[~evaluated] = np.nan
            per_user[f"{name}@{k}"] = values
        coverage[f"coverage@{k}"] = _coverage(ranked[evaluated, :k], num_items)
    return RankingMetrics(per_user, coverage, evaluated)


def _metrics_at(hits: np.ndarray, num_relevant: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Per-user recall, ndcg, hit and map at ``k`` from the first (up to k) hit columns."""
    width = hits.shape[1]
    discount = 1.0 / np.log2(np.arange(2, k + 2))  # (k,) 1/log2(p + 1), p = 1..k
    ideal = np.cumsum(discount)  # (k,) IDCG of 1..k relevant items
    num_hits = hits.sum(1)
    denominator = np.maximum(num_relevant, 1)  # users without relevant items are masked later
    cut = np.clip(np.minimum(num_relevant, k), 1, None)  # min(|R|, K), at least 1
    precision = np.cumsum(hits, 1) / np.arange(1, width + 1)  # (U, width) precision@p
    return {
        "recall": num_hits / denominator,
        "ndcg": (hits * discount[:width]).sum(1) / ideal[cut - 1],
        "hit": (num_hits > 0).astype(np.float64),
        "map": (hits * precision).sum(1) / cut,
    }


def _coverage(top: np.ndarray, num_items: int) -> float:
    return int(np.unique(top[top >= 0]).size) / num_items


def _hit_matrix(ranked: np.ndarray, rel_keys: np.ndarray, num_items: int) -> np.ndarray:
    """(U, W) bool: the item at each position is relevant to the row's user."""
    users = np.arange(len(ranked), dtype=np.int64)[:, None]
    keys = users * num_items + ranked  # (U, W) one int64 per (user, item)
    where = np.searchsorted(rel_keys, keys).clip(max=max(rel_keys.size - 1, 0))
    found = rel_keys[where] == keys if rel_keys.size else np.zeros(keys.shape, dtype=bool)
    return found & (ranked >= 0)


def _relevant_keys(rel: Relevance, num_users: int, num_items: int) -> np.ndarray:
    """Sorted, distinct ``user * num_items + item`` of every relevant pair."""
    indptr = np.asarray(rel.indptr, dtype=np.int64)
    indices = np.asarray(rel.indices, dtype=np.int64)
    if indptr.ndim != 1 or len(indptr) != num_users + 1:
        raise MmfuseError(
            f"relevant covers {len(indptr) - 1} users but ranked has {num_users} rows; "
            "give one relevant set per ranked row"
        )
    if indptr[0] != 0 or indptr[-1] != indices.size or np.any(np.diff(indptr) < 0):
        raise MmfuseError("relevant.indptr must start at 0, not decrease and end at len(indices)")
    if indices.size and (indices.min() < 0 or indices.max() >= num_items):
        bad = indices[(indices < 0) | (indices >= num_items)][0]
        raise MmfuseError(f"relevant item index {bad} is outside the catalogue [0, {num_items})")
    users = np.repeat(np.arange(num_users, dtype=np.int64), np.diff(indptr))
    return np.unique(users * num_items + indices)


def _check_ranked(ranked: np.ndarray, num_items: int) -> np.ndarray:
    if isinstance(num_items, bool) or not isinstance(num_items, (int, np.integer)) or num_items < 1:
        raise MmfuseError(f"num_items must be a positive integer; got {num_items!r}")
    array = np.asarray(ranked)
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.integer):
        raise MmfuseError(
            "ranked must be a 2-D integer array (users x positions); "
            f"got {array.ndim}-D {array.dtype}"
        )
    array = array.astype(np.int64, copy=False)
    if array.size and (array.min() < -1 or array.max() >= num_items):
        bad = array[(array < -1) | (array >= num_items)][0]
        raise MmfuseError(
            f"ranked holds item index {bad}; indices must lie in [0, {num_items}) "
            "or be -1 (padding)"
        )
    ordered = np.sort(array, 1)
    repeated = (ordered[:, 1:] == ordered[:, :-1]) & (ordered[:, 1:] >= 0)  # (U, W - 1)
    if repeated.any():
        user = int(np.flatnonzero(repeated.any(1))[0])
        item = int(ordered[user, 1:][repeated[user]][0])
        raise MmfuseError(f"ranked list of user {user} holds item {item} more than once")
    return array


def check_ks(ks: Iterable[int]) -> tuple[int, ...]:
    """The cut-offs K, sorted and each once; MmfuseError unless they are positive integers."""
    values = tuple(ks)
    if not values or any(
        isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1 for k in values
    ):
        raise MmfuseError(f"the cut-offs K must be positive whole numbers, e.g. 10,20; got {list(values)!r}")
    return tuple(sorted({int(k) for k in values}))
