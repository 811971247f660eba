"""Vectors for every item and for some users, and each user's top-K items through the FAISS
index code, leaving out what the user already has (or keeping only given candidates)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import Tensor

from mmfuse.recommend.graph import Neighbours
from mmfuse.recommend.model import ATTRIBUTES, BEHAVIOUR, SOCIAL, RecommenderModel
from mmfuse.recommend.prepared import Prepared

Presence = Mapping[str, bool]
"""Which players are present (explanations); absent keys are present."""


@torch.no_grad()
def item_vectors(model: RecommenderModel, data: Prepared, present: Presence | None = None,
                 batch_size: int = 1024) -> Tensor:
    """(num_items, dim) unit vectors of the whole catalogue."""
    model.eval()
    present = present or {}
    parts = []
    for chunk in _chunks(data.num_items, batch_size):
        inputs, mask = data.content_of(chunk)
        if mask is not None:
            mask = {m: v & bool(present.get(m, True)) for m, v in mask.items()}
        known = data.known_of(chunk) & bool(present.get(BEHAVIOUR, True))
        parts.append(model.items(inputs, mask, torch.from_numpy(chunk), known))
    return torch.cat(parts)


@torch.no_grad()
def item_contents(model: RecommenderModel, data: Prepared, batch_size: int = 1024) -> Tensor | None:
    """(num_items, dim) content parts of every item's vector, in eval mode (None: ids only)."""
    if model.content is None or data.content is None:
        return None
    model.eval()
    return torch.cat([model.item_content(*data.content_of(chunk)) for chunk in _chunks(data.num_items, batch_size)])


def _chunks(n: int, size: int) -> list[np.ndarray]:
    return np.array_split(np.arange(n), max(1, -(-n // size)))


@torch.no_grad()
def user_vectors(model: RecommenderModel, data: Prepared, users: np.ndarray, items: Tensor,
                 present: Presence | None = None) -> Tensor:
    """(len(users), dim) unit vectors, from the full training history, the friends' history
    means and the attributes."""
    model.eval()
    present = present or {}
    history, has_history = data.history.mean(items, users)
    has_history &= bool(present.get(BEHAVIOUR, True))
    friends = has_friends = None
    if data.friends is not None and model.social is not None:
        means, with_history = data.history.mean(items)
        friends, has_friends = data.friends.mean(means, users, allowed=with_history.numpy())
        has_friends &= bool(present.get(SOCIAL, True))
    attributes = None
    attrs = data.attributes_of(users)
    if attrs is not None:
        attributes = model.user_attributes(*attrs)
        if attributes is not None and not present.get(ATTRIBUTES, True):
            attributes = torch.zeros_like(attributes)
    return model.users(history, has_history, friends, has_friends, attributes)


def top_k(users: Tensor, items: Tensor, k: int, exclude: Neighbours | None = None,
          user_index: np.ndarray | None = None, candidates: np.ndarray | None = None,
          chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """((U, k) item indices best first, -1 padded; (U, k) scores) by inner product, searched
    with a FAISS index of the item vectors. ``exclude`` (with ``user_index``, the users' rows
    in it) removes each user's own items; ``candidates`` restricts the ranking to those items."""
    from mmfuse.retrieval.index import VectorIndex

    pool = np.arange(len(items)) if candidates is None else np.asarray(candidates, dtype=np.int64)
    index = VectorIndex.build(items[torch.from_numpy(pool)].numpy().astype(np.float32))
    ranked = np.full((len(users), k), -1, dtype=np.int64)
    scores = np.full((len(users), k), -np.inf, dtype=np.float32)
    for start in range(0, len(users), chunk):
        stop = min(start + chunk, len(users))
        owners = None if exclude is None or user_index is None else np.asarray(user_index[start:stop])
        extra = 0 if owners is None or exclude is None else most_seen(exclude, owners)
        found = index.search(users[start:stop].numpy().astype(np.float32), min(k + extra, len(pool)))
        got = np.where(found.positions >= 0, pool[np.maximum(found.positions, 0)], -1)
        ranked[start:stop], scores[start:stop] = first_unseen(
            got, found.scores, exclude, owners, len(items), k)
    return ranked, scores


def most_seen(seen: Neighbours, owners: np.ndarray) -> int:
    """The most items any of the users at ``owners`` (-1: none) has in ``seen``."""
    return int(seen.degree(owners[owners >= 0]).max(initial=0))


def first_unseen(got: np.ndarray, scores: np.ndarray, seen: Neighbours | None,
                 owners: np.ndarray | None, num_items: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """((R, k) items, (R, k) scores): the first ``k`` entries of each row of ``got`` (item
    indices, best first, -1 for no hit) that the row's user (``owners``: their rows in
    ``seen``; -1 for a user with none) has not seen; -1 / -inf padded."""
    valid = got >= 0
    if seen is not None and owners is not None:
        known = np.flatnonzero(owners >= 0)
        owner, _, item = seen.entries(owners[known])
        pairs = np.sort(known[owner] * num_items + item)  # (row, item) pairs to drop
        valid &= ~np.isin(np.arange(len(got))[:, None] * num_items + got, pairs)
    order = np.argsort(~valid, axis=1, kind="stable")[:, :k]  # kept entries first, in order
    kept = np.take_along_axis(valid, order, 1)
    ranked = np.full((len(got), k), -1, dtype=np.int64)
    best = np.full((len(got), k), -np.inf, dtype=np.float32)
    width = order.shape[1]
    ranked[:, :width] = np.where(kept, np.take_along_axis(got, order, 1), -1)
    best[:, :width] = np.where(kept, np.take_along_axis(scores, order, 1), -np.inf)
    return ranked, best
