"""Vectors for every item and for some users, and each user's top-K items through the FAISS
index code, leaving out what the user already has (or keeping only given candidates)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import Tensor

from mmfuse.recommend.graph import Neighbours, padded_mean
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
    for chunk in np.array_split(np.arange(data.num_items), max(1, -(-data.num_items // batch_size))):
        inputs, mask = data.content_of(chunk)
        if mask is not None:
            mask = {m: v & bool(present.get(m, True)) for m, v in mask.items()}
        known = data.known_of(chunk) & bool(present.get(BEHAVIOUR, True))
        parts.append(model.items(inputs, mask, torch.from_numpy(chunk), known))
    return torch.cat(parts)


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
        sampled = _friends_with_history(data.friends, users, with_history.numpy())
        friends, has_friends = padded_mean(means, sampled)
        has_friends &= bool(present.get(SOCIAL, True))
    attributes = None
    attrs = data.attributes_of(users)
    if attrs is not None:
        attributes = model.user_attributes(*attrs)
        if attributes is not None and not present.get(ATTRIBUTES, True):
            attributes = torch.zeros_like(attributes)
    return model.users(history, has_history, friends, has_friends, attributes)


def _friends_with_history(friends: Neighbours, users: np.ndarray, with_history: np.ndarray) -> np.ndarray:
    """(len(users), max degree) friends of each user who have a history, -1 padded."""
    width = max(1, int(friends.degree(users).max(initial=0)))
    out = np.full((len(users), width), -1, dtype=np.int64)
    for k, u in enumerate(users):
        found = friends.of(int(u))
        found = found[with_history[found]]
        out[k, : len(found)] = found
    return out


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
        extra = 0
        if exclude is not None and user_index is not None:
            extra = int(exclude.degree(user_index[start:stop]).max(initial=0))
        found = index.search(users[start:stop].numpy().astype(np.float32), min(k + extra, len(pool)))
        for row in range(stop - start):
            got = pool[found.positions[row][found.positions[row] >= 0]]
            vals = found.scores[row][found.positions[row] >= 0]
            if extra:
                keep = ~np.isin(got, exclude.of(int(user_index[start + row])))
                got, vals = got[keep], vals[keep]
            ranked[start + row, : min(k, len(got))] = got[:k]
            scores[start + row, : min(k, len(got))] = vals[:k]
    return ranked, scores
