"""The recommendation benchmark's data: a sparse generator of the built-in dataset's story at
sizes the built-in generator cannot hold, and any dataset folder read back as index arrays.

``mmfuse.datasets.make_recommendation_dataset`` draws interactions through dense (users x
items) arrays, which at 100k users x 50k items would take 40 GB per array.
:func:`write_sparse_dataset` tells the same story (:data:`mmfuse.datasets.recommendation.STORY`,
steps 1-9 and 11; its hidden variables are ``recommendation_latents`` with the same arguments)
in memory linear in the interactions, and writes the same files except the images:
``items.csv`` has no image column (item content is the title, price and genre). What differs:

* Step 5's successive draws without replacement are made by drawing with replacement and
  skipping repeats (the same distribution as Gumbel top-k, other random numbers).
* Titles, friendships, ratings and timestamps come from other random streams, so the files are
  not the built-in generator's bytes even at its sizes; every byte is still fixed by the seed.

:func:`load_split` reads a dataset folder (either generator's) into the index arrays the
baselines and the evaluation protocols use; :class:`TopicOracle` scores it from the hidden
variables, the reference that tells what the data allows.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from mmfuse.datasets.recommendation import (
    AGE_GROUPS, FILLER_WORDS, GENRES, TOPIC_WORDS, TOPICS, RecommendationLatents, item_id,
    rated_in_time, recommendation_latents, user_id,
)  # fmt: skip

_STREAMS = 1000  # streams default_rng([seed, _STREAMS + k]), apart from the module's
_TRAIN, _TOP_UP, _TEST, _RATINGS, _FRIENDS, _TEXT, _ITEMS, _USERS = range(8)
_MAX_ROUNDS = 60
Streams = Callable[[int], np.random.Generator]
"""Stream number -> its generator."""


class Split(NamedTuple):
    """A dataset folder as indices: users in ``users.csv`` order, items in ``items.csv`` order.

    Attributes:
        user_ids: (U,) str user ids.
        item_ids: (I,) str item ids (the catalogue).
        train_users: (N,) int64 user index of each train row; ``train_items`` likewise.
        train_items: (N,) int64.
        test_users: (M,) int64 user index of each test row; ``test_items`` likewise.
        test_items: (M,) int64.
    """

    user_ids: np.ndarray
    item_ids: np.ndarray
    train_users: np.ndarray
    train_items: np.ndarray
    test_users: np.ndarray
    test_items: np.ndarray

    @property
    def num_users(self) -> int:
        return len(self.user_ids)

    @property
    def num_items(self) -> int:
        return len(self.item_ids)

    def warm_items(self) -> np.ndarray:
        """(I,) bool: the item has a train row (a cold item is in the catalogue only)."""
        return np.bincount(self.train_items, minlength=self.num_items) > 0

    def warm_users(self) -> np.ndarray:
        """(U,) bool: the user has a train row."""
        return np.bincount(self.train_users, minlength=self.num_users) > 0


def load_split(folder: Path) -> Split:
    """``train.csv``/``test.csv`` (user, item) mapped onto ``users.csv``/``items.csv``' ids."""

    def read(name: str) -> pd.DataFrame:
        return pd.read_csv(folder / name, dtype=str, keep_default_na=False)

    train, test = read("train.csv"), read("test.csv")
    users = pd.Index(read("users.csv")["user"])
    extra = pd.Index(pd.concat([train["user"], test["user"]]).unique()).difference(users)
    users = users.append(extra)
    items = pd.Index(read("items.csv")["item"])

    def index(ids: pd.Index, column: pd.Series) -> np.ndarray:
        return ids.get_indexer(column).astype(np.int64)

    if (index(items, train["item"]) < 0).any() or (index(items, test["item"]) < 0).any():
        raise ValueError(f"{folder}: an interaction names an item that items.csv lacks")
    return Split(
        users.to_numpy(str),
        items.to_numpy(str),
        index(users, train["user"]),
        index(items, train["item"]),
        index(users, test["user"]),
        index(items, test["item"]),
    )


class TopicOracle:
    """A reference, not a competitor: p(i | u) of STORY step 4 from the hidden variables, each
    cold item's popularity replaced by the mean over the cold items (content tells an item's
    topic, never its popularity). The ranking of a method that knew every user's taste, every
    warm item's popularity and every cold item's topic exactly; called like a method's scores.

    Args:
        split: The dataset, as :func:`load_split` read it.
        latents: ``recommendation_latents`` with the arguments the dataset was written with.
    """

    knows_unseen_items = True

    def __init__(self, split: Split, latents: RecommendationLatents) -> None:
        num_users, num_items = len(latents.user_topic), len(latents.item_topic)
        users = {user_id(u, num_users): u for u in range(num_users)}
        items = {item_id(i, num_items): i for i in range(num_items)}
        order = np.asarray([items[i] for i in split.item_ids])  # split's item -> latent index
        self.taste = latents.user_taste[[users[u] for u in split.user_ids]]  # (U, T)
        self.topic = latents.item_topic[order]  # (I,)
        cold = ~split.warm_items()
        w = latents.item_popularity[order].copy()
        w[cold] = w[cold].mean() if cold.any() else 0.0
        per_topic = np.bincount(self.topic, weights=w, minlength=self.taste.shape[1])
        self.within, self.overall = w / per_topic[self.topic], w / w.sum()  # (I,) each

    def __call__(self, users: np.ndarray) -> np.ndarray:
        return 0.9 * self.taste[users][:, self.topic] * self.within + 0.1 * self.overall


def write_sparse_dataset(
    out_dir: Path, n_users: int, n_items: int, n_topics: int, interactions_per_user: int,
    cold_item_fraction: float = 0.15, cold_user_fraction: float = 0.1, seed: int = 0,
) -> Path:  # fmt: skip
    """Writes train.csv, test.csv, items.csv (no images), users.csv, friends.csv and README.md
    under ``out_dir`` (see the module docstring); arguments as ``make_recommendation_dataset``."""
    latents = recommendation_latents(
        n_users, n_items, n_topics, cold_item_fraction, cold_user_fraction, seed
    )

    def rng(stream: int) -> np.random.Generator:
        return np.random.default_rng([seed, _STREAMS + stream])

    train, test = _interactions(latents, interactions_per_user, rng)
    out_dir.mkdir(parents=True, exist_ok=True)
    user_ids = np.asarray([user_id(u, n_users) for u in range(n_users)])
    item_ids = np.asarray([item_id(i, n_items) for i in range(n_items)])
    for name, (users, items), split in (("train.csv", train, 0), ("test.csv", test, 1)):
        table = _interaction_table(users, items, latents, rng(_RATINGS + 10 * split), split)
        table.insert(0, "user", user_ids[table.pop("u")])
        table.insert(1, "item", item_ids[table.pop("i")])
        table.to_csv(out_dir / name, index=False)
    _items_table(latents, item_ids, rng).to_csv(out_dir / "items.csv", index=False)
    ages = _age_groups(latents.user_topic, rng(_USERS))
    pd.DataFrame({"user": user_ids, "age_group": ages}).to_csv(out_dir / "users.csv", index=False)
    edges = _friend_pairs(latents.user_topic, rng(_FRIENDS))
    friends = pd.DataFrame({"user": user_ids[edges[:, 0]], "friend": user_ids[edges[:, 1]]})
    friends.to_csv(out_dir / "friends.csv", index=False)
    (out_dir / "README.md").write_text(
        f"Written by benchmarks/_recommendation_data.py write_sparse_dataset(n_users={n_users}, "
        f"n_items={n_items}, n_topics={n_topics}, interactions_per_user={interactions_per_user}, "
        f"cold_item_fraction={cold_item_fraction}, cold_user_fraction={cold_user_fraction}, "
        f"seed={seed}): {len(train[0])} train and {len(test[0])} test rows; the story of "
        "mmfuse.datasets.recommendation.STORY without images.\n",
        encoding="utf-8",
    )
    return out_dir


# ------------------------------------------------------------------ step 5: interactions
class _Sampler:
    """Draws items for users from p(i | u) of step 4, restricted to ``allowed`` items: the
    mixture "a topic from the taste (0.9), then an item of it by popularity" + "an item by
    popularity alone (0.1)", each part renormalised over the allowed items."""

    def __init__(self, latents: RecommendationLatents, allowed: np.ndarray) -> None:
        w = np.where(allowed, latents.item_popularity, 0.0)
        topic = latents.item_topic
        n_topics = latents.user_taste.shape[1]
        self.order = np.argsort(topic, kind="stable")  # items grouped by topic
        self.cumulative = np.cumsum(w[self.order])  # (I,)
        bounds = np.searchsorted(topic[self.order], np.arange(n_topics + 1))  # (T + 1,)
        self.low = np.concatenate([[0.0], self.cumulative])[bounds[:-1]]  # (T,) mass before topic
        self.high = self.cumulative[bounds[1:] - 1]  # (T,) mass up to the topic's end
        total_all = latents.item_popularity.sum()
        per_topic_all = np.bincount(topic, weights=latents.item_popularity, minlength=n_topics)
        share = (self.high - self.low) / per_topic_all  # (T,) allowed share of each topic's mass
        parts = np.concatenate(
            [
                0.9 * latents.user_taste * share,
                np.full((len(latents.user_taste), 1), 0.1 * self.cumulative[-1] / total_all),
            ],
            1,
        )
        self.parts = np.cumsum(parts / parts.sum(1, keepdims=True), 1)  # (U, T + 1)

    def draw(self, users: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One item per entry of ``users`` (independent draws with replacement)."""
        parts = self.parts[users]  # (n, T + 1)
        part = (parts < rng.random(len(users))[:, None]).sum(1).clip(max=parts.shape[1] - 1)
        n_topics = parts.shape[1] - 1
        low = np.where(part < n_topics, self.low[part.clip(max=n_topics - 1)], 0.0)
        high = np.where(
            part < n_topics, self.high[part.clip(max=n_topics - 1)], self.cumulative[-1]
        )
        where = np.searchsorted(
            self.cumulative, low + rng.random(len(users)) * (high - low), "right"
        )
        return self.order[where.clip(max=len(self.order) - 1)]


def _successive(
    counts: np.ndarray,
    sampler: _Sampler,
    forbidden: np.ndarray,
    num_items: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """(users, items): ``counts[u]`` distinct items per user u, none of whose ``u * num_items +
    i`` is in ``forbidden`` (sorted), in draw order: draws with replacement, repeats skipped."""
    need = counts.astype(np.int64).copy()
    taken = forbidden
    users_out, items_out = [], []
    for _ in range(_MAX_ROUNDS):
        who = np.flatnonzero(need > 0)
        if not len(who):
            break
        users = np.repeat(who, 2 * need[who] + 4)
        items = sampler.draw(users, rng)
        keys = users * num_items + items
        fresh = ~_contains(taken, keys)
        users, items, keys = users[fresh], items[fresh], keys[fresh]
        first = np.sort(np.unique(keys, return_index=True)[1])  # first draw of each pair
        users, items, keys = users[first], items[first], keys[first]
        starts = np.searchsorted(users, users, "left")  # users are grouped, in order
        keep = np.arange(len(users)) - starts < need[users]
        users_out.append(users[keep])
        items_out.append(items[keep])
        need -= np.bincount(users[keep], minlength=len(need))
        taken = np.union1d(taken, keys[keep])
    if need.any():
        raise ValueError(f"{int((need > 0).sum())} users could not draw enough distinct items")
    return np.concatenate(users_out), np.concatenate(items_out)


def _contains(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    if not len(sorted_keys):
        return np.zeros(len(keys), dtype=bool)
    where = np.searchsorted(sorted_keys, keys).clip(max=len(sorted_keys) - 1)
    return sorted_keys[where] == keys


def _interactions(latents: RecommendationLatents, n: int, rng: Streams) -> tuple[tuple, tuple]:
    """((train users, items), (test users, items)) of step 5."""
    num_users, num_items = len(latents.user_topic), len(latents.item_topic)
    draw = rng(_TRAIN)
    total = draw.integers(max(2, n // 2), n + n // 2 + 1, num_users)
    num_test = np.maximum(1, np.rint(0.2 * total)).astype(np.int64)
    num_train = np.where(latents.cold_users, 0, total - num_test)
    none = np.zeros(0, dtype=np.int64)
    train = _successive(num_train, _Sampler(latents, ~latents.cold_items), none, num_items, draw)
    train = _top_up(*train, latents, rng(_TOP_UP))
    keys = np.sort(train[0] * num_items + train[1])
    allowed = np.ones(num_items, dtype=bool)
    test = _successive(num_test, _Sampler(latents, allowed), keys, num_items, rng(_TEST))
    return train, test


def _top_up(
    users: np.ndarray, items: np.ndarray, latents: RecommendationLatents, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Adds one train row from a taste-weighted warm user for every warm item nobody drew."""
    missing = np.flatnonzero(
        ~latents.cold_items & (np.bincount(items, minlength=len(latents.item_topic)) == 0)
    )
    warm = np.flatnonzero(~latents.cold_users)
    chosen = np.empty(len(missing), dtype=np.int64)
    for t in np.unique(latents.item_topic[missing]):
        of_topic = latents.item_topic[missing] == t
        weights = np.cumsum(latents.user_taste[warm, t])
        picks = np.searchsorted(weights, rng.random(int(of_topic.sum())) * weights[-1], "right")
        chosen[of_topic] = warm[picks.clip(max=len(warm) - 1)]
    return np.concatenate([users, chosen]), np.concatenate([items, missing])


# --------------------------------------------------------------- steps 6-11: the tables
def _interaction_table(
    users: np.ndarray,
    items: np.ndarray,
    latents: RecommendationLatents,
    rng: np.random.Generator,
    split: int,
) -> pd.DataFrame:
    """Columns u, i, rating (step 6), timestamp (step 7), ordered by user then time."""
    rating, timestamp, order = rated_in_time(users, items, latents, rng, split)
    return pd.DataFrame(
        {
            "u": users[order],
            "i": items[order],
            "rating": rating[order].astype(np.int64),
            "timestamp": timestamp[order],
        }
    )


def _friend_pairs(user_topic: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(E, 2) distinct undirected edges (a < b) of step 8."""
    num_users = len(user_topic)
    users = np.repeat(np.arange(num_users), rng.integers(1, 4, num_users))
    order = np.argsort(user_topic, kind="stable")  # users grouped by topic
    start = np.searchsorted(user_topic[order], user_topic)  # (U,) each user's group start
    size = np.bincount(user_topic, minlength=user_topic.max() + 1)[user_topic]  # (U,)
    rank = np.empty(num_users, dtype=np.int64)
    rank[order] = np.arange(num_users) - start[order]  # position of each user in its group
    u_start, u_size, u_rank = start[users], size[users], rank[users]
    j = (rng.random(len(users)) * np.maximum(u_size - 1, 1)).astype(np.int64)
    same = order[u_start + j + (j >= u_rank)].clip(max=num_users - 1)
    anyone = rng.integers(0, num_users - 1, len(users))
    anyone += anyone >= users
    friend = np.where((rng.random(len(users)) < 0.8) & (u_size > 1), same, anyone)
    edges = np.stack([np.minimum(users, friend), np.maximum(users, friend)], 1)
    return np.unique(edges, axis=0)


def _age_groups(user_topic: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n = len(user_topic)
    anyone = rng.integers(0, len(AGE_GROUPS), n)
    return np.asarray(AGE_GROUPS)[
        np.where(rng.random(n) < 0.6, user_topic % len(AGE_GROUPS), anyone)
    ]


def _items_table(
    latents: RecommendationLatents, item_ids: np.ndarray, rng: Streams
) -> pd.DataFrame:
    """item, title (step 9), price and genre (step 11)."""
    topic = latents.item_topic
    n_items, n_topics = len(topic), latents.user_taste.shape[1]
    draw = rng(_ITEMS)
    genre = np.where(draw.random(n_items) < 0.4, topic, draw.integers(0, n_topics, n_items))
    price = np.round(np.exp(draw.normal(2.5 + 0.15 * topic, 0.6)), 2)
    text = rng(_TEXT)
    titles = [_title(int(t), n_topics, text) for t in topic]
    return pd.DataFrame(
        {"item": item_ids, "title": titles, "price": price, "genre": np.asarray(GENRES)[genre]}
    )


def _title(topic: int, n_topics: int, rng: np.random.Generator) -> str:
    """3-7 filler words and two topic words of ``topic`` (each another topic's w.p. 0.2)."""
    words = [str(w) for w in rng.choice(FILLER_WORDS, int(rng.integers(3, 8)))]
    for _ in range(2):
        shown = int((topic + rng.integers(1, n_topics)) % n_topics) if rng.random() < 0.2 else topic
        words.insert(
            int(rng.integers(0, len(words) + 1)), str(rng.choice(TOPIC_WORDS[TOPICS[shown]]))
        )
    return " ".join(words).capitalize()
