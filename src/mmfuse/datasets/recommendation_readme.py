"""The README.md of a dataset written by ``make_recommendation_dataset``: its files, its cold
items and users, and the generative story (``STORY``), exactly."""

from __future__ import annotations

import numpy as np

STORY = """\
Notation: U users, I items, T topics, n = interactions_per_user; u is a user, i an item, t a
topic. Every draw comes from `numpy.random.default_rng([seed, stream])` (per-item text and
images from `default_rng([seed, stream, i])`), so a seed fixes every byte.

1. Users. Each user gets a dominant topic d(u), uniform over the T topics, and a second
   topic s(u), uniform over the other T - 1. The taste theta(u) ~ Dirichlet(alpha) with
   alpha_t = 0.2 + 4 [t = d(u)] + 1.5 [t = s(u)]: on average 63% of the taste is on d(u)
   and 25% on s(u) when T = 6. `age_group` (users.csv) is AGE_GROUPS[d(u) mod 5] with
   probability 0.6 and uniform over the 5 groups otherwise.
2. Items. The topics c(i) are balanced (i mod T, shuffled). Popularity w(i) = r(i)^-0.8,
   where r is a random permutation of 1..I (Zipf-like: a few items are drawn far more often).
   A hidden quality q(i) ~ N(0, 0.5) shifts ratings.
3. Cold sets. round(cold_item_fraction * I) items, chosen uniformly, are cold: they are
   released at the split time and never appear in train.csv. round(cold_user_fraction * U)
   users, chosen uniformly, are cold: they join at the split time, have no row in
   train.csv, but have friends, an age group and test rows.
4. Preference. p(i | u) = 0.9 theta(u)[c(i)] w(i) / W(c(i)) + 0.1 w(i) / W, where W(t) sums
   w over the items of topic t and W over all items: pick a topic from the taste, then an
   item of it by popularity, except 10% of the time an item by popularity alone.
5. Interactions. Each user draws m(u) uniform in [max(2, n // 2), n + n // 2]; m_test(u) =
   max(1, round(0.2 m(u))). A warm user draws m(u) - m_test(u) train items from the warm
   items, one after another without replacement, each with probability proportional to
   p(i | u) among the items left (Gumbel top-k). Then every warm item that nobody drew gets
   one train row from a warm user chosen with probability proportional to theta(u)[c(i)].
   Finally every user (cold users too) draws m_test(u) test items the same way from all
   items, cold ones included, minus the user's train items. No (user, item) pair repeats.
6. Ratings (1-5). With match(u, i) = theta(u)[c(i)] / max_t theta(u)[t] (1 for the dominant
   topic), rating = clip(round(1.5 + 3 match + q(i) + N(0, 0.5)), 1, 5): a dominant-topic item
   usually gets 4 or 5, an item off the user's two topics 1-3.
7. Timestamps (Unix seconds). Train rows are uniform in [1600000000, 1625920000) (300 days),
   test rows uniform in [1625920000, 1631536000) (the next 65 days), so every test row is
   later than every train row.
8. Friends (undirected, each edge written once with the smaller id in `user`). Each user makes
   1-3 picks (uniform); a pick is, with probability 0.8, a uniformly chosen other user with the
   same dominant topic, else a uniformly chosen other user. Duplicate picks and the reverse
   of an edge collapse into one edge. Every user has at least one friend.
9. Item text (`title`): 5-9 words, two topic words of c(i) (each replaced with probability
   0.2 by a word of a uniformly chosen other topic) at random positions among filler words,
   first letter capitalised.
10. Item image (`images/<item>.png`, 32x32 RGB): the image shows topic c(i), or with
    probability 0.15 a uniformly chosen other topic. Topic t is drawn as a two-tone pattern
    (t mod 4: horizontal stripes, vertical stripes, checks, diagonal stripes; period 4-8 px,
    random phase) in hue t / T (jittered by up to +-0.03 of the circle), bright (value 0.9)
    on dark (value 0.35), saturation 0.8, plus Gaussian pixel noise of sigma 20/255.
11. Weak item columns. `genre` is GENRES[c(i)] with probability 0.4 and uniform over the
    first T genres otherwise; `price` = round(exp(N(2.5 + 0.15 c(i), 0.6)), 2).

What each signal is worth: a title names its item's topic with both topic words with
probability 0.64 and with at least one with probability 0.96; an image shows the right
topic with probability 0.85; a genre is right with probability 0.4 + 0.6 / T; the price
shifts with the topic by far less than its spread; a user's age group is the dominant
topic's with probability 0.68; a friendship joins two users of the same dominant topic with
probability about 0.8 + 0.2 / T, against about 1 / T by chance.
"""


def readme_text(
    arguments: str, train: np.ndarray, test: np.ndarray, cold: np.ndarray, cold_users: list[str],
    cold_items: list[str],
) -> str:
    """The README of a dataset: ``train`` and ``test`` are its (users, items) interaction
    matrices, ``cold`` marks the cold items, ``cold_users`` and ``cold_items`` are their ids."""
    n_users, n_items = train.shape
    cold_rows = int(test[:, cold].sum())
    cold_seen = int(test[:, cold].any(0).sum())
    return f"""# mmfuse recommendation dataset

Generated by `mmfuse.datasets.make_recommendation_dataset({arguments})`.
Ids are strings: users `u0001`, ..., items `i0001`, ....

- `train.csv` (user, item, rating, timestamp): {int(train.sum())} interactions, each an
  implicit positive, with a 1-5 rating.
- `test.csv` (same columns): {int(test.sum())} interactions, all later than every train row.
- `items.csv` (item, title, image, price, genre): the {n_items} items of the catalogue;
  `image` is a path relative to this folder.
- `users.csv` (user, age_group): all {n_users} users.
- `friends.csv` (user, friend): undirected friendships, each edge once, the smaller id in
  `user`.

Cold items ({len(cold_items)}, in items.csv, never in train.csv; {cold_seen} of them have
{cold_rows} test rows): {", ".join(cold_items) or "none"}.

Cold users ({len(cold_users)}, in users.csv and friends.csv with test rows, never in
train.csv): {", ".join(cold_users) or "none"}.

With `--relevant-min 4` mostly the items of a user's dominant topic count as relevant.

## Generative story

{STORY}"""
