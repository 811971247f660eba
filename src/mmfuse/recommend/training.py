"""Training the towers: sampled softmax over the batch's items (in-batch negatives), corrected
for how often each item is drawn as a negative (Yi et al., "Sampling-Bias-Corrected Neural
Modeling for Large Corpus Item Recommendations", RecSys 2019), early-stopped on recall@20 of
held-out interactions.

Each step takes a batch of training interactions (u, i). The user's history is a random subset
of their other training items (never ``i`` itself: the model must predict it, not find it),
embedded with gradients; on a large catalogue, only ``live_items`` of a step's distinct items
run through the content tower (the rest reuse their content from a table computed once per
epoch). Friends enter through their history means, refreshed once per epoch.
Item ids are hidden at random (``id_dropout``) so that content learns to place items by itself,
which is all a cold item has.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mmfuse._progress import log
from mmfuse.errors import MmfuseError
from mmfuse.models.statistics import fit_input_statistics
from mmfuse.recommend.graph import Neighbours, group_mean, padded_mean
from mmfuse.recommend.model import RecommenderModel
from mmfuse.recommend.prepared import Prepared
from mmfuse.recommend.ranking import item_contents, item_vectors, top_k, user_vectors

VALID_K = 20


@dataclass(frozen=True)
class RecTrainConfig:
    """How the recommender is trained (stored in config.json).

    An epoch is one pass over the training interactions, or ``epoch_rows`` of them when there
    are more (0: always a full pass): validation, early stopping and the refresh of the
    epoch's frozen tables then come as often on a large table as on a small one.
    """

    epochs: int = 30
    batch_size: int = 512
    lr: float = 2e-3
    weight_decay: float = 1e-4
    patience: int = 5
    seed: int = 0
    history_size: int = 50
    friends_size: int = 20
    id_dropout: float = 0.3
    live_items: int = 2048
    epoch_rows: int = 250_000

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def train_recommender(
    model: RecommenderModel, data: Prepared, users: np.ndarray, items: np.ndarray,
    valid: tuple[np.ndarray, np.ndarray] | None, cfg: RecTrainConfig, verbose: bool,
) -> tuple[list[dict[str, float]], int]:
    """Trains ``model`` on the interactions (``users``, ``items``); returns the per-epoch
    history and the epoch kept (the best validation recall@20, or the last without ``valid``)."""
    if len(users) < 2:
        raise MmfuseError("a recommender needs at least 2 training interactions")
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    for tower, records in ((model.content, data.content), (model.attributes, data.attributes)):
        if tower is not None and records is not None:
            fit_input_statistics(tower, records.inputs, records.mask)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=True)
    log_q = torch.from_numpy(np.log(np.maximum(data.popularity, 1) / max(len(users), 1))).float()
    history: list[dict[str, float]] = []
    rows = _Shuffled(len(users), rng)
    epoch_rows = len(users) if cfg.epoch_rows <= 0 else min(cfg.epoch_rows, len(users))
    best, best_state, kept, waited = -1.0, copy.deepcopy(model.state_dict()), 0, 0
    for epoch in range(1, cfg.epochs + 1):
        started = time.perf_counter()
        loss = _epoch(model, data, users, items, rows.take(epoch_rows), cfg, rng, optimizer, log_q)
        record = {"epoch": epoch, "train_loss": loss, "seconds": round(time.perf_counter() - started, 2)}
        if valid is not None:
            valid_started = time.perf_counter()
            record[f"valid_recall@{VALID_K}"] = validation_recall(model, data, *valid)
            record["valid_seconds"] = round(time.perf_counter() - valid_started, 2)
        history.append(record)
        if verbose:
            shown = f"  valid recall@{VALID_K} {record[f'valid_recall@{VALID_K}']:.4f}" if valid is not None else ""
            log(f"epoch {epoch:>3}  loss {loss:.4f}{shown}  ({record['seconds']:.1f}s)")
        score = record.get(f"valid_recall@{VALID_K}", float(epoch))
        if score > best:
            best, best_state, kept, waited = score, copy.deepcopy(model.state_dict()), epoch, 0
        else:
            waited += 1
            if cfg.patience and waited >= cfg.patience:
                if verbose:
                    log(f"early stop: no better validation recall for {cfg.patience} epochs")
                break
    model.load_state_dict(best_state)
    model.eval()
    return history, kept


class _Shuffled:
    """Row indices in random order, a new permutation each time one is used up."""

    def __init__(self, n: int, rng: np.random.Generator) -> None:
        self.n, self.rng = n, rng
        self.order, self.at = rng.permutation(n), 0

    def take(self, count: int) -> np.ndarray:
        parts = []
        while count > 0:
            if self.at == self.n:
                self.order, self.at = self.rng.permutation(self.n), 0
            part = self.order[self.at : self.at + count]
            self.at += len(part)
            count -= len(part)
            parts.append(part)
        return np.concatenate(parts)


def _epoch(model: RecommenderModel, data: Prepared, users: np.ndarray, items: np.ndarray, order: np.ndarray,
           cfg: RecTrainConfig, rng: np.random.Generator, optimizer: torch.optim.Optimizer,
           log_q: torch.Tensor) -> float:
    table = item_contents(model, data) if data.num_items > cfg.live_items else None
    friend_means = with_history = None
    if data.friends is not None and model.social is not None:
        means, present = data.history.mean(item_vectors(model, data) if table is None else _frozen(model, data, table))
        friend_means, with_history = means, present.numpy()
    model.train()
    total, steps = 0.0, 0
    for start in range(0, len(order), cfg.batch_size):
        batch = order[start : start + cfg.batch_size]
        if len(batch) < 2:
            continue
        u, i = users[batch], items[batch]
        past = data.history.sample(u, cfg.history_size, rng, exclude=i)
        flat = past[past >= 0]
        needed, where = np.unique(np.concatenate([i, flat]), return_inverse=True)
        vectors = _item_vectors(model, data, needed, i, table, cfg, rng)
        h, has_h = group_mean(vectors.index_select(0, torch.from_numpy(where[len(i):])),
                              np.nonzero(past >= 0)[0], len(u))
        s = has_s = None
        if friend_means is not None and data.friends is not None and with_history is not None:
            friends = data.friends.sample(u, cfg.friends_size, rng)
            listed = friends >= 0
            friends[listed] = np.where(with_history[friends[listed]], friends[listed], -1)
            s, has_s = padded_mean(friend_means, friends)
        attrs = data.attributes_of(u)
        a = model.user_attributes(*attrs) if attrs is not None else None
        user_vecs = model.users(h, has_h, s, has_s, a)
        item_vecs = vectors.index_select(0, torch.from_numpy(where[: len(i)]))
        logits = model.scale() * user_vecs @ item_vecs.T - log_q[torch.from_numpy(i)].unsqueeze(0)
        same = torch.from_numpy(i[:, None] == i[None, :]) & ~torch.eye(len(i), dtype=torch.bool)
        logits = logits.masked_fill(same, float("-inf"))
        loss = F.cross_entropy(logits, torch.arange(len(i)))
        if not torch.isfinite(loss):
            raise MmfuseError(f"the training loss became {loss.item()} (try a lower --lr)")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += float(loss.detach())
        steps += 1
    return total / max(steps, 1)


def _item_vectors(model: RecommenderModel, data: Prepared, needed: np.ndarray, positives: np.ndarray,
                  table: torch.Tensor | None, cfg: RecTrainConfig, rng: np.random.Generator) -> torch.Tensor:
    """(len(needed), dim) vectors of the step's distinct items (positives and sampled history),
    ids hidden at random. Content runs through the tower with gradients for at most
    ``cfg.live_items`` of them (every positive, then a random subset of the history); the rest
    take their content from ``table``, computed once per epoch without gradients. On a large
    catalogue the tower on every history item (up to ``history_size`` per user per step) cost
    most of an epoch."""
    hide = torch.from_numpy(rng.random(len(needed)) < cfg.id_dropout)
    ids, known = torch.from_numpy(needed), data.known_of(needed) & ~hide
    if table is None or len(needed) <= cfg.live_items:
        return model.items(*data.content_of(needed), ids, known)
    is_positive = np.isin(needed, positives)
    others = np.flatnonzero(~is_positive)
    extra = rng.choice(others, size=min(len(others), max(cfg.live_items - int(is_positive.sum()), 0)), replace=False)
    live = np.sort(np.concatenate([np.flatnonzero(is_positive), extra]))
    fresh = model.item_content(*data.content_of(needed[live]))
    content = table[ids] if fresh is None else table[ids].index_copy(0, torch.from_numpy(live), fresh)
    return model.items_from(content, ids, known)


@torch.no_grad()
def _frozen(model: RecommenderModel, data: Prepared, table: torch.Tensor) -> torch.Tensor:
    every = np.arange(data.num_items)
    return model.items_from(table, torch.from_numpy(every), data.known_of(every))


def validation_recall(model: RecommenderModel, data: Prepared, users: np.ndarray, items: np.ndarray) -> float:
    """Mean recall@20 over the users of the held-out interactions (training items excluded)."""
    from mmfuse.evaluation.ranking import Relevance, ranking_metrics

    vectors = item_vectors(model, data)
    who = np.unique(users)
    ranked, _ = top_k(user_vectors(model, data, who, vectors), vectors, VALID_K, data.history, who)
    relevant = Neighbours.from_pairs(np.searchsorted(who, users), items, len(who))
    metrics = ranking_metrics(ranked, Relevance(relevant.indptr, relevant.indices), data.num_items, (VALID_K,))
    return float(metrics[f"recall@{VALID_K}"])
