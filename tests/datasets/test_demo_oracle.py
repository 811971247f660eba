"""The demo's label probability given what a model sees (datasets.demo_oracle)."""

from __future__ import annotations

import numpy as np
import pytest

from mmfuse.datasets import demo_votes
from mmfuse.datasets.demo_oracle import demo_oracle_accuracy, demo_posterior

MEDIA = ("image", "text", "audio", "video")


def _votes(**columns: list[int]) -> dict[str, np.ndarray]:
    base = {m: np.ones(4, dtype=int) for m in (*MEDIA, "tabular")}
    return {**base, **{k: np.array(v) for k, v in columns.items()}}


def test_one_vote_seen_gives_eleven_sixteenths_and_none_a_coin() -> None:
    votes = _votes(image=[1, -1, 1, -1])
    posterior = demo_posterior(votes, {"image": [1, 1, 0, 0]})
    assert posterior == pytest.approx([11 / 16, 5 / 16, 0.5, 0.5])


def test_seen_votes_and_income_decide() -> None:
    votes = _votes(audio=[1, -1, -1, -1], video=[-1, -1, 1, -1])
    everything = {m: [1, 1, 1, 1] for m in MEDIA}
    # media sums 2, 0, 2, 0: the first and third are decided by them; the others by income
    posterior = demo_posterior(votes, everything, np.array([np.nan, 50.0, -50.0, 0.0]))
    assert posterior == pytest.approx([1.0, 1.0, 1.0, 0.5])
    # three votes seen summing 1, one media vote and the tabular vote unseen: 3 of 4 cases win
    seen = {"image": [1] * 4, "text": [1] * 4, "audio": [1] * 4}
    three = demo_posterior(_votes(audio=[-1] * 4), seen)
    assert three == pytest.approx([0.75] * 4)


def test_posterior_is_calibrated_on_the_demo_votes() -> None:
    votes = demo_votes(20_000, seed=5)
    positive = sum(votes.values()) > 0
    income = np.random.default_rng(1).normal(0.9 * votes["tabular"], 1.0)
    seen = {"image": np.random.default_rng(2).random(20_000) < 0.7, "text": np.ones(20_000, bool)}
    posterior = demo_posterior(votes, seen, income)
    for low, high in ((0.0, 0.2), (0.2, 0.45), (0.55, 0.8), (0.8, 1.0)):
        rows = (posterior >= low) & (posterior < high)
        assert rows.sum() > 500
        assert positive[rows].mean() == pytest.approx(posterior[rows].mean(), abs=0.02)


def test_oracle_accuracy_counts_a_tie_as_half() -> None:
    accuracy = demo_oracle_accuracy(np.array([0.9, 0.2, 0.5, 0.6]), np.array([1, 0, 1, 0]))
    assert accuracy == pytest.approx(0.625)


def test_a_name_that_is_not_a_media_vote_is_refused() -> None:
    with pytest.raises(ValueError, match="'review'.*choose from image, text, audio, video"):
        demo_posterior(_votes(), {"review": [1, 1, 1, 1]})
