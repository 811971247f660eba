"""Tests for the generated recommendation dataset: files, cold sets, and each signal's worth."""

from __future__ import annotations

import colorsys
import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from mmfuse.datasets import make_recommendation_dataset
from mmfuse.datasets.recommendation import (
    AGE_GROUPS,
    GENRES,
    SPLIT_TIME,
    TOPIC_WORDS,
    TOPICS,
    RecommendationLatents,
    recommendation_latents,
)
from mmfuse.errors import MmfuseError

INTERACTION_COLUMNS = ["user", "item", "rating", "timestamp"]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_recommendation_dataset(tmp_path_factory.mktemp("rec"))  # the defaults


@pytest.fixture(scope="module")
def tables(root: Path) -> dict[str, pd.DataFrame]:
    names = ("train", "test", "items", "users", "friends")
    return {name: pd.read_csv(root / f"{name}.csv") for name in names}


@pytest.fixture(scope="module")
def latents() -> RecommendationLatents:
    return recommendation_latents()


def _index(ids: pd.Series) -> np.ndarray:
    """``u0001`` / ``i0001`` -> 0."""
    return ids.str[1:].astype(int).to_numpy() - 1


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_files_columns_and_string_ids(root: Path, tables: dict[str, pd.DataFrame]) -> None:
    assert list(tables["train"].columns) == INTERACTION_COLUMNS
    assert list(tables["test"].columns) == INTERACTION_COLUMNS
    assert list(tables["items"].columns) == ["item", "title", "image", "price", "genre"]
    assert list(tables["users"].columns) == ["user", "age_group"]
    assert list(tables["friends"].columns) == ["user", "friend"]
    assert tables["users"]["user"].tolist() == [f"u{k:04d}" for k in range(1, 301)]
    assert tables["items"]["item"].tolist() == [f"i{k:04d}" for k in range(1, 201)]
    for name, column in [("train", "user"), ("train", "item"), ("friends", "friend")]:
        values = tables[name][column]  # never parsed as numbers
        assert pd.api.types.is_string_dtype(values) and values.str.len().eq(5).all(), column
    assert set(tables["users"]["age_group"]) <= set(AGE_GROUPS)
    assert set(tables["items"]["genre"]) <= set(GENRES[:6])
    assert (tables["items"]["price"] > 0).all()
    readme = (root / "README.md").read_text()
    assert "undirected" in readme and "## Generative story" in readme


def test_deterministic_and_seed_dependent(tmp_path: Path) -> None:
    small = {"n_users": 40, "n_items": 30, "n_topics": 3, "interactions_per_user": 6}
    first = _digest(make_recommendation_dataset(tmp_path / "a", seed=5, **small))
    second = _digest(make_recommendation_dataset(tmp_path / "b", seed=5, **small))
    other = _digest(make_recommendation_dataset(tmp_path / "c", seed=6, **small))
    assert first == second
    assert len(first) == 6 + 30  # five CSV files, the README and one image per item
    assert first["train.csv"] != other["train.csv"]


def test_interactions_are_distinct_rated_and_split_in_time(tables: dict[str, pd.DataFrame]) -> None:
    train, test = tables["train"], tables["test"]
    both = pd.concat([train, test])
    assert not both.duplicated(["user", "item"]).any()  # within and across the splits
    for table in (train, test):
        assert table["rating"].dtype == np.int64
        assert set(table["rating"]) == {1, 2, 3, 4, 5}
    assert train["timestamp"].max() < SPLIT_TIME <= test["timestamp"].min()
    assert set(test["user"]) == set(tables["users"]["user"])  # every user has test rows


def test_cold_items(
    root: Path, tables: dict[str, pd.DataFrame], latents: RecommendationLatents
) -> None:
    cold = {f"i{i + 1:04d}" for i in np.flatnonzero(latents.cold_items)}
    catalogue, in_train = set(tables["items"]["item"]), set(tables["train"]["item"])
    assert len(cold) == 30  # round(0.15 * 200)
    assert cold <= catalogue and not cold & in_train
    assert in_train == catalogue - cold  # every warm item has a train row
    cold_in_test = set(tables["test"]["item"]) & cold
    assert len(cold_in_test) >= 15
    assert set(tables["test"]["item"]) - in_train == cold_in_test
    assert ", ".join(sorted(cold)) in (root / "README.md").read_text()


def test_cold_users(
    root: Path, tables: dict[str, pd.DataFrame], latents: RecommendationLatents
) -> None:
    cold = {f"u{u + 1:04d}" for u in np.flatnonzero(latents.cold_users)}
    friends = tables["friends"]
    assert len(cold) == 30  # round(0.1 * 300)
    assert set(tables["train"]["user"]) == set(tables["users"]["user"]) - cold
    assert cold <= set(tables["test"]["user"])
    assert cold <= set(friends["user"]) | set(friends["friend"])
    assert ", ".join(sorted(cold)) in (root / "README.md").read_text()


def test_friends_are_undirected_edges_with_homophily(
    tables: dict[str, pd.DataFrame], latents: RecommendationLatents
) -> None:
    friends = tables["friends"]
    assert (friends["user"] < friends["friend"]).all()  # once per edge, no self loop
    assert not friends.duplicated().any()
    assert len(set(friends["user"]) | set(friends["friend"])) == 300  # nobody is alone
    topic = latents.user_topic
    same = (topic[_index(friends["user"])] == topic[_index(friends["friend"])]).mean()
    chance = float(((np.bincount(topic) / len(topic)) ** 2).sum())  # about 1 / 6
    assert chance < 0.25
    assert same > 0.7  # about 0.8 + 0.2 / 6 by construction


def test_interactions_and_ratings_follow_taste(
    tables: dict[str, pd.DataFrame], latents: RecommendationLatents
) -> None:
    train = tables["train"]
    users, items = _index(train["user"]), _index(train["item"])
    on_dominant = latents.item_topic[items] == latents.user_topic[users]
    assert on_dominant.mean() > 0.45  # against 1 / 6 for a taste-blind draw
    ratings = train["rating"].to_numpy()
    assert ratings[on_dominant].mean() > ratings[~on_dominant].mean() + 1.0
    assert on_dominant[ratings >= 4].mean() > 0.7  # --relevant-min 4 keeps mostly the taste


def test_popularity_is_skewed(tables: dict[str, pd.DataFrame]) -> None:
    counts = tables["train"]["item"].value_counts().to_numpy()  # descending
    top_tenth = counts[: len(counts) // 10].sum() / counts.sum()
    assert top_tenth > 0.25  # the top 10% of warm items hold a third of the rows, not a tenth


def test_titles_carry_the_item_topic(
    tables: dict[str, pd.DataFrame], latents: RecommendationLatents
) -> None:
    titles = tables["items"]["title"].str.lower().str.split()
    named = [
        bool(set(words) & set(TOPIC_WORDS[TOPICS[t]]))
        for words, t in zip(titles, latents.item_topic)
    ]
    assert all(5 <= len(words) <= 9 for words in titles)
    assert np.mean(named) > 0.9  # 0.96 expected


def test_images_decode_and_their_hue_gives_the_topic(
    root: Path, tables: dict[str, pd.DataFrame], latents: RecommendationLatents
) -> None:
    hits = []
    for path, topic in zip(tables["items"]["image"], latents.item_topic):
        assert path.startswith("images/") and path.endswith(".png")
        with Image.open(root / path) as image:
            assert (image.size, image.mode) == ((32, 32), "RGB")
            pixels = np.asarray(image, dtype=np.float64) / 255  # (32, 32, 3)
        bright = pixels[pixels.sum(-1) > np.median(pixels.sum(-1))].mean(0)  # the pattern's "on"
        hue = colorsys.rgb_to_hsv(*bright)[0]
        nearest = int(np.rint(hue * 6)) % 6  # topic t has hue t / 6
        hits.append(nearest == topic)
    assert np.mean(hits) > 0.75  # 0.85 expected


def test_weak_columns_are_weakly_informative(
    tables: dict[str, pd.DataFrame], latents: RecommendationLatents
) -> None:
    genre_right = (tables["items"]["genre"] == np.asarray(GENRES)[latents.item_topic]).mean()
    assert 0.3 < genre_right < 0.75  # 0.4 + 0.6 / 6 = 0.5 expected, chance 1 / 6
    group = tables["users"]["age_group"].to_numpy()
    age_right = (group == np.asarray(AGE_GROUPS)[latents.user_topic % 5]).mean()
    assert 0.5 < age_right < 0.85  # 0.68 expected, chance 0.2


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"n_topics": 9}, "n_topics must be at most 8"),
        ({"n_topics": 1}, "n_topics must be an integer >= 2"),
        ({"seed": -1}, "seed must be an integer >= 0"),
        ({"n_users": 1}, "n_users must be an integer >= 2"),
        ({"interactions_per_user": 1}, "interactions_per_user must be an integer >= 2"),
        ({"cold_item_fraction": 1.0}, "cold_item_fraction must be in"),
        ({"cold_user_fraction": 0.99, "n_users": 10}, "leave at least one warm user"),
    ],
)
def test_bad_arguments_are_clear_errors(
    tmp_path: Path, arguments: dict[str, float], message: str
) -> None:
    with pytest.raises(MmfuseError, match=message):
        make_recommendation_dataset(tmp_path, **arguments)  # type: ignore[arg-type]
