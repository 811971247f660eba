"""Built-in recommendation dataset in which each signal's worth is known.

Users have hidden topic tastes; items have one hidden topic that their title text, their
image and (weakly) their genre and price carry; who interacts with what follows taste and
item popularity; friends mostly share a taste. Some items and users are *cold*: they have no
row in ``train.csv``, so only content (items) or friends and attributes (users) can place
them. The exact generative story is :data:`STORY`, also written to each dataset's
``README.md``; :func:`recommendation_latents` recomputes the hidden variables for tests and
for measuring what each signal can reach.
"""

from __future__ import annotations

import colorsys
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from mmfuse.datasets.recommendation_readme import STORY, readme_text  # noqa: F401 - STORY is re-exported
from mmfuse.errors import MmfuseError

TOPIC_WORDS = {
    "sport": ("football", "tennis", "running", "goal", "stadium", "match", "team", "racket"),
    "cooking": ("recipe", "kitchen", "baking", "spice", "pasta", "oven", "flavour", "chef"),
    "music": ("guitar", "piano", "melody", "album", "concert", "rhythm", "singer", "vinyl"),
    "travel": ("journey", "passport", "island", "suitcase", "mountain", "hotel", "voyage", "atlas"),
    "science": ("physics", "atom", "telescope", "chemistry", "galaxy", "molecule", "lab", "orbit"),
    "garden": ("flower", "seeds", "tulip", "compost", "shovel", "orchard", "herbs", "greenhouse"),
    "film": ("movie", "director", "cinema", "actor", "screenplay", "camera", "premiere", "scene"),
    "fashion": ("dress", "jacket", "silk", "runway", "denim", "boutique", "sneakers", "scarf"),
}
"""Topic name -> its words; topic t is the t-th entry."""
TOPICS = tuple(TOPIC_WORDS)
FILLER_WORDS = (
    "the", "new", "classic", "edition", "collection", "set", "with", "and", "for", "deluxe",
    "series", "guide", "pack", "original", "vol", "best", "of", "complete", "mini", "special",
)  # fmt: skip
GENRES = ("action", "comedy", "drama", "indie", "family", "premium", "budget", "vintage")
AGE_GROUPS = ("18-24", "25-34", "35-44", "45-54", "55+")
PATTERNS = ("horizontal stripes", "vertical stripes", "checks", "diagonal stripes")

TRAIN_START, SPLIT_TIME, TEST_END = 1_600_000_000, 1_625_920_000, 1_631_536_000
IMAGE_SIZE = 32

# Seed streams: default_rng([seed, stream]) or default_rng([seed, stream, i]).
_USERS, _ITEMS, _COLD, _INTERACTIONS, _RATINGS, _FRIENDS, _ATTRIBUTES, _TEXT, _IMAGE = range(9)


class RecommendationLatents(NamedTuple):
    """The hidden variables of a generated recommendation dataset (steps 1-3 of STORY).

    Attributes:
        user_topic: (U,) int dominant topic d(u).
        user_taste: (U, T) float topic mixture theta(u); rows sum to 1.
        item_topic: (I,) int topic c(i).
        item_popularity: (I,) float popularity w(i) = r(i)^-0.8.
        item_quality: (I,) float quality q(i).
        cold_users: (U,) bool, users without train rows.
        cold_items: (I,) bool, items without train rows.
    """

    user_topic: np.ndarray
    user_taste: np.ndarray
    item_topic: np.ndarray
    item_popularity: np.ndarray
    item_quality: np.ndarray
    cold_users: np.ndarray
    cold_items: np.ndarray


def user_id(u: int, n_users: int) -> str:
    """``u0001`` for user index 0 (at least four digits, more when ``n_users`` needs them)."""
    return f"u{u + 1:0{max(4, len(str(n_users)))}d}"


def item_id(i: int, n_items: int) -> str:
    """``i0001`` for item index 0 (at least four digits, more when ``n_items`` needs them)."""
    return f"i{i + 1:0{max(4, len(str(n_items)))}d}"


def recommendation_latents(
    n_users: int = 300,
    n_items: int = 200,
    n_topics: int = 6,
    cold_item_fraction: float = 0.15,
    cold_user_fraction: float = 0.1,
    seed: int = 0,
) -> RecommendationLatents:
    """Recompute the hidden variables of ``make_recommendation_dataset`` with the same arguments.

    They are not written to the dataset (they would leak the answer); this is for tests and
    for measuring what each signal can reach. Index ``k`` is user/item id ``k + 1``.
    """
    _check_arguments(n_users, n_items, n_topics, cold_item_fraction, cold_user_fraction, seed)
    rng = np.random.default_rng([seed, _USERS])
    user_topic = rng.integers(0, n_topics, n_users)
    second = (user_topic + rng.integers(1, n_topics, n_users)) % n_topics
    alpha = np.full((n_users, n_topics), 0.2)
    alpha[np.arange(n_users), user_topic] += 4.0
    alpha[np.arange(n_users), second] += 1.5
    gamma = rng.gamma(alpha)  # (U, T); normalised rows are Dirichlet(alpha)
    rng = np.random.default_rng([seed, _ITEMS])
    item_topic = rng.permutation(np.arange(n_items) % n_topics)
    popularity = (rng.permutation(n_items) + 1.0) ** -0.8
    quality = rng.normal(0.0, 0.5, n_items)
    rng = np.random.default_rng([seed, _COLD])
    return RecommendationLatents(
        user_topic=user_topic,
        user_taste=gamma / gamma.sum(1, keepdims=True),
        item_topic=item_topic,
        item_popularity=popularity,
        item_quality=quality,
        cold_users=_chosen(n_users, round(cold_user_fraction * n_users), rng),
        cold_items=_chosen(n_items, round(cold_item_fraction * n_items), rng),
    )


def make_recommendation_dataset(
    out_dir: str | Path,
    n_users: int = 300,
    n_items: int = 200,
    n_topics: int = 6,
    interactions_per_user: int = 12,
    cold_item_fraction: float = 0.15,
    cold_user_fraction: float = 0.1,
    seed: int = 0,
) -> Path:
    """Write a recommendation dataset under ``out_dir``; see :data:`STORY`.

    Files: ``train.csv`` and ``test.csv`` (user, item, rating, timestamp), ``items.csv``
    (item, title, image, price, genre), ``users.csv`` (user, age_group), ``friends.csv``
    (user, friend; undirected), ``images/<item>.png`` and ``README.md``. Ids are strings
    (``u0001``, ``i0001``). Byte-identical output for the same arguments.

    Args:
        out_dir: Folder to write into; created if needed.
        n_users: Number of users U, cold ones included.
        n_items: Number of items I (the catalogue), cold ones included.
        n_topics: Number of hidden topics T, 2 to 8.
        interactions_per_user: Mean interactions per warm user (train and test together).
        cold_item_fraction: Share of items that have no train row.
        cold_user_fraction: Share of users that have no train row.
        seed: Non-negative seed.

    Returns:
        ``out_dir`` as a Path.
    """
    _check_integer("interactions_per_user", interactions_per_user, 2)
    latents = recommendation_latents(
        n_users, n_items, n_topics, cold_item_fraction, cold_user_fraction, seed
    )
    root = Path(out_dir)
    (root / "images").mkdir(parents=True, exist_ok=True)
    train, test = _interactions(latents, interactions_per_user, seed)
    _interaction_table(train, latents, seed, 0).to_csv(root / "train.csv", index=False)
    _interaction_table(test, latents, seed, 1).to_csv(root / "test.csv", index=False)
    _items_table(root, latents, seed).to_csv(root / "items.csv", index=False)
    _users_table(latents, seed).to_csv(root / "users.csv", index=False)
    friends = _friend_pairs(latents.user_topic, np.random.default_rng([seed, _FRIENDS]))
    ids = np.asarray([user_id(u, n_users) for u in range(n_users)])
    edges = pd.DataFrame({"user": ids[friends[:, 0]], "friend": ids[friends[:, 1]]})
    edges.to_csv(root / "friends.csv", index=False)
    arguments = (
        f"n_users={n_users}, n_items={n_items}, n_topics={n_topics}, "
        f"interactions_per_user={interactions_per_user}, cold_item_fraction={cold_item_fraction}, "
        f"cold_user_fraction={cold_user_fraction}, seed={seed}"
    )
    n_users, n_items = train.shape
    cold_users = [user_id(int(u), n_users) for u in np.flatnonzero(latents.cold_users)]
    cold_items = [item_id(int(i), n_items) for i in np.flatnonzero(latents.cold_items)]
    text = readme_text(arguments, train, test, latents.cold_items, cold_users, cold_items)
    (root / "README.md").write_text(text, encoding="utf-8")
    return root


def _check_arguments(
    n_users: int, n_items: int, n_topics: int, cold_item_fraction: float,
    cold_user_fraction: float, seed: int,
) -> None:  # fmt: skip
    _check_integer("n_users", n_users, 2)
    _check_integer("n_items", n_items, 2)
    _check_integer("seed", seed, 0)
    _check_integer("n_topics", n_topics, 2)
    if n_topics > min(len(TOPICS), n_items):
        raise MmfuseError(
            f"n_topics must be at most {len(TOPICS)} and at most n_items; got {n_topics!r}"
        )
    for name, value, total, kind in (
        ("cold_item_fraction", cold_item_fraction, n_items, "item"),
        ("cold_user_fraction", cold_user_fraction, n_users, "user"),
    ):
        if not 0.0 <= value < 1.0 or round(value * total) >= total:
            raise MmfuseError(
                f"{name} must be in [0, 1) and leave at least one warm {kind}; got {value!r}"
            )


def _check_integer(name: str, value: int, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise MmfuseError(f"{name} must be an integer >= {low}; got {value!r}")


def _chosen(n: int, count: int, rng: np.random.Generator) -> np.ndarray:
    mask = np.zeros(n, dtype=bool)
    mask[rng.choice(n, size=count, replace=False)] = True
    return mask


def _preference(latents: RecommendationLatents) -> np.ndarray:
    """(U, I) p(i | u) of step 4."""
    w, topic = latents.item_popularity, latents.item_topic
    per_topic = np.bincount(topic, weights=w)  # (T,) W(t)
    by_taste = latents.user_taste[:, topic] * (w / per_topic[topic])  # (U, I)
    return 0.9 * by_taste + 0.1 * (w / w.sum())


def _interactions(
    latents: RecommendationLatents, interactions_per_user: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(U, I) bool train and test interaction matrices (step 5)."""
    rng = np.random.default_rng([seed, _INTERACTIONS])
    n = interactions_per_user
    num_users = len(latents.user_topic)
    total = rng.integers(max(2, n // 2), n + n // 2 + 1, num_users)
    num_test = np.maximum(1, np.rint(0.2 * total)).astype(np.int64)
    num_train = np.where(latents.cold_users, 0, total - num_test)
    log_p = np.log(_preference(latents))
    keys = log_p + rng.gumbel(size=log_p.shape)
    keys[:, latents.cold_items] = -np.inf
    train = _top(keys, num_train)
    _top_up(train, latents, rng)
    keys = log_p + rng.gumbel(size=log_p.shape)
    keys[train] = -np.inf
    return train, _top(keys, num_test)


def _top(keys: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """(U, I) bool marking the ``counts[u]`` largest finite keys of each row."""
    order = np.argsort(-keys, axis=1, kind="stable")
    take = np.arange(keys.shape[1])[None, :] < counts[:, None]  # (U, I)
    rows = np.broadcast_to(np.arange(len(keys))[:, None], order.shape)
    chosen = np.zeros(keys.shape, dtype=bool)
    chosen[rows[take], order[take]] = True
    return chosen & np.isfinite(keys)


def _top_up(train: np.ndarray, latents: RecommendationLatents, rng: np.random.Generator) -> None:
    """Give every warm item nobody drew one train row from a taste-weighted warm user."""
    warm_users = np.flatnonzero(~latents.cold_users)
    for i in np.flatnonzero(~latents.cold_items & ~train.any(0)):
        weights = latents.user_taste[warm_users, latents.item_topic[i]]
        train[rng.choice(warm_users, p=weights / weights.sum()), i] = True


def rated_in_time(
    users: np.ndarray, items: np.ndarray, latents: RecommendationLatents, rng: np.random.Generator,
    split: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rating, timestamp, row order by user then time) of interactions (steps 6 and 7):
    the rating follows how well the item's topic matches the user's taste, plus the item's
    quality and noise; train rows (``split`` 0) come before the split time, test rows after."""
    taste = latents.user_taste
    match = taste[users, latents.item_topic[items]] / taste[users].max(1)
    noise = rng.normal(0.0, 0.5, len(users))
    rating = np.clip(np.rint(1.5 + 3.0 * match + latents.item_quality[items] + noise), 1, 5)
    low, high = (TRAIN_START, SPLIT_TIME) if split == 0 else (SPLIT_TIME, TEST_END)
    timestamp = rng.integers(low, high, len(users))
    return rating, timestamp, np.lexsort((timestamp, users))


def _interaction_table(
    chosen: np.ndarray, latents: RecommendationLatents, seed: int, split: int
) -> pd.DataFrame:
    """Rows of one split with ratings (step 6) and timestamps (step 7), by user then time."""
    rng = np.random.default_rng([seed, _RATINGS, split])
    users, items = np.nonzero(chosen)
    rating, timestamp, order = rated_in_time(users, items, latents, rng, split)
    num_users, num_items = chosen.shape
    return pd.DataFrame({
        "user": [user_id(u, num_users) for u in users[order]],
        "item": [item_id(i, num_items) for i in items[order]],
        "rating": rating[order].astype(np.int64),
        "timestamp": timestamp[order],
    })  # fmt: skip


def _friend_pairs(user_topic: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(E, 2) sorted distinct undirected edges (a, b), a < b (step 8)."""
    num_users = len(user_topic)
    members = {int(t): np.flatnonzero(user_topic == t) for t in np.unique(user_topic)}
    edges: set[tuple[int, int]] = set()
    for u, picks in enumerate(rng.integers(1, 4, num_users)):
        same = members[int(user_topic[u])]
        for _ in range(picks):
            if rng.random() < 0.8 and len(same) > 1:
                j = int(rng.integers(len(same) - 1))
                v = int(same[j + (j >= np.searchsorted(same, u))])  # skip u itself
            else:
                v = int(rng.integers(num_users - 1))
                v += v >= u
            edges.add((min(u, v), max(u, v)))
    return np.asarray(sorted(edges), dtype=np.int64).reshape(-1, 2)


def _users_table(latents: RecommendationLatents, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng([seed, _ATTRIBUTES])
    n = len(latents.user_topic)
    anyone = rng.integers(0, len(AGE_GROUPS), n)
    group = np.where(rng.random(n) < 0.6, latents.user_topic % len(AGE_GROUPS), anyone)
    return pd.DataFrame({
        "user": [user_id(u, n) for u in range(n)],
        "age_group": np.asarray(AGE_GROUPS)[group],
    })  # fmt: skip


def _items_table(root: Path, latents: RecommendationLatents, seed: int) -> pd.DataFrame:
    """items.csv columns (steps 9-11); writes every item's image."""
    from PIL import Image

    n_items = len(latents.item_topic)
    n_topics = latents.user_taste.shape[1]
    rng = np.random.default_rng([seed, _ITEMS, 1])
    topic = latents.item_topic
    genre = np.where(rng.random(n_items) < 0.4, topic, rng.integers(0, n_topics, n_items))
    price = np.round(np.exp(rng.normal(2.5 + 0.15 * topic, 0.6)), 2)
    titles, images = [], []
    for i in range(n_items):
        name = item_id(i, n_items)
        titles.append(_title(int(topic[i]), n_topics, np.random.default_rng([seed, _TEXT, i])))
        pixels = topic_image(int(topic[i]), n_topics, np.random.default_rng([seed, _IMAGE, i]))
        images.append(f"images/{name}.png")
        Image.fromarray(pixels).save(root / images[-1], format="PNG")
    return pd.DataFrame({
        "item": [item_id(i, n_items) for i in range(n_items)],
        "title": titles,
        "image": images,
        "price": price,
        "genre": np.asarray(GENRES)[genre],
    })  # fmt: skip


def _title(topic: int, n_topics: int, rng: np.random.Generator) -> str:
    """5-9 words: two (noisy) topic words among filler words (step 9)."""
    words = [str(w) for w in rng.choice(FILLER_WORDS, int(rng.integers(3, 8)))]
    for _ in range(2):
        shown = _other_topic(topic, n_topics, rng) if rng.random() < 0.2 else topic
        word = str(rng.choice(TOPIC_WORDS[TOPICS[shown]]))
        words.insert(int(rng.integers(0, len(words) + 1)), word)
    return " ".join(words).capitalize()


def topic_image(topic: int, n_topics: int, rng: np.random.Generator) -> np.ndarray:
    """A noisy two-tone pattern in the colour of (usually) ``topic`` (step 10).

    Returns:
        ``(32, 32, 3)`` uint8 RGB array.
    """
    shown = _other_topic(topic, n_topics, rng) if rng.random() < 0.15 else topic
    hue = (shown / n_topics + rng.uniform(-0.03, 0.03)) % 1.0
    period = int(rng.integers(4, 9))
    phase = rng.uniform(0.0, period)
    y, x = np.mgrid[:IMAGE_SIZE, :IMAGE_SIZE]  # (32, 32) each
    position = (y, x, (y // (period / 2) + x // (period / 2)) * period / 2, x + y)[shown % 4]
    on = ((position + phase) % period) < period / 2  # (32, 32)
    bright = np.asarray(colorsys.hsv_to_rgb(hue, 0.8, 0.9))
    dark = np.asarray(colorsys.hsv_to_rgb(hue, 0.8, 0.35))
    image = np.where(on[..., None], bright, dark)  # (32, 32, 3)
    image = image + rng.normal(0.0, 20 / 255, image.shape)
    return np.round(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)


def _other_topic(topic: int, n_topics: int, rng: np.random.Generator) -> int:
    return int((topic + rng.integers(1, n_topics)) % n_topics)
