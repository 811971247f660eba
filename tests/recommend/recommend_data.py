"""Helpers of the recommendation tests: hand-made taste tables, id predicates, a CLI runner.

The taste tables (:func:`write_taste_tables`) are built so that a topic decides every taste:
content decides where a cold item belongs, and friends decide where a cold user belongs.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

TOPICS = ("sport", "cooking", "music", "travel")
ITEMS_PER_TOPIC = 12
COLD_ITEMS_PER_TOPIC = 3  # items 00-02 of every topic never appear in train.csv
USERS_PER_TOPIC = 15
COLD_USERS_PER_TOPIC = 3  # users u00-u02 of every topic have no train row, only friends
TRAIN_PER_USER = 6
FRIENDS_PER_COLD_USER = 3
FIT_SEED = 0


@dataclass(frozen=True)
class CliResult:
    """What one ``main(argv)`` call returned and printed."""

    code: int
    out: str
    err: str


def run_cli(argv: Sequence[str]) -> CliResult:
    """``main(argv)`` with stdout and stderr captured (for fixtures, which cannot use capsys)."""
    from mmfuse.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return CliResult(code, out.getvalue(), err.getvalue())


def topic_of(key: str) -> str:
    """The topic of a taste-table user or item id (``sp-u04`` and ``sp07`` are sport)."""
    return key[:2]


def is_cold_item(key: str) -> bool:
    return int(key[2:4]) < COLD_ITEMS_PER_TOPIC


def is_cold_user(key: str) -> bool:
    return int(key.split("-u")[1]) < COLD_USERS_PER_TOPIC


def write_taste_tables(root: Path, seed: int = 0) -> Path:
    """Tables in which a hidden topic decides every taste, with cold items and cold users.

    Four topics, twelve items each (``sp00`` ... ``sp11``; ``items.csv`` holds the id and a
    ``topic`` column naming the topic), fifteen users each (``sp-u00`` ... ``sp-u14``; all in
    ``users.csv``, which has no other column).

    - A warm user (``u03`` onwards) has six train rows and one test row, all distinct items of
      their topic's nine warm items (``03`` onwards).
    - Items ``00``-``02`` of each topic are cold: in ``items.csv``, never in ``train.csv``;
      only their ``topic`` column can place them.
    - Users ``u00``-``u02`` of each topic are cold: no train row; three test rows (warm items
      of their topic) and three friends, warm users of their topic. Each warm user is a friend
      of the next warm user of the topic (a ring), so the social term is trained.

    ``test_cold_users.csv`` holds the cold users' test rows only.
    """
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    items, train, test, users, friends = [], [], [], [], []
    for name in TOPICS:
        ids = [f"{name[:2]}{j:02d}" for j in range(ITEMS_PER_TOPIC)]
        warm_items = ids[COLD_ITEMS_PER_TOPIC:]
        items += [(i, name) for i in ids]
        members = [f"{name[:2]}-u{k:02d}" for k in range(USERS_PER_TOPIC)]
        warm_users = members[COLD_USERS_PER_TOPIC:]
        users += members
        for user in members[:COLD_USERS_PER_TOPIC]:
            test += [(user, i) for i in rng.choice(warm_items, 3, replace=False)]
            chosen = rng.choice(warm_users, FRIENDS_PER_COLD_USER, replace=False)
            friends += [(user, f) for f in chosen]
        for k, user in enumerate(warm_users):
            picks = rng.choice(warm_items, TRAIN_PER_USER + 1, replace=False)
            train += [(user, i) for i in picks[:TRAIN_PER_USER]]
            test.append((user, picks[TRAIN_PER_USER]))
            friends.append((user, warm_users[(k + 1) % len(warm_users)]))
    pd.DataFrame(items, columns=["item", "topic"]).to_csv(root / "items.csv", index=False)
    pd.DataFrame(train, columns=["user", "item"]).to_csv(root / "train.csv", index=False)
    test_frame = pd.DataFrame(test, columns=["user", "item"])
    test_frame.to_csv(root / "test.csv", index=False)
    cold = test_frame[test_frame["user"].map(is_cold_user)]
    cold.to_csv(root / "test_cold_users.csv", index=False)
    pd.DataFrame({"user": users}).to_csv(root / "users.csv", index=False)
    pd.DataFrame(friends, columns=["user", "friend"]).to_csv(root / "friends.csv", index=False)
    return root


def fit_taste(root: Path, social: bool, seed: int = FIT_SEED) -> Any:
    """A recommender on the taste tables (with or without ``friends.csv``), seeded."""
    from mmfuse.estimators.recommender import MultimodalRecommender

    torch.manual_seed(seed)  # see tests/recommend/conftest.py
    rec = MultimodalRecommender(
        user="user", item="item", items=str(root / "items.csv"), users=str(root / "users.csv"),
        social=str(root / "friends.csv") if social else None, epochs=6, batch_size=64,
        seed=seed, num_threads=1, verbose=False,
    )  # fmt: skip
    return rec.fit(str(root / "train.csv"))
