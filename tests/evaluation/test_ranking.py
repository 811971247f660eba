"""Tests for the top-K recommendation metrics: hand-computed cases, edges, a reference."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mmfuse.errors import MmfuseError
from mmfuse.evaluation.ranking import (
    DEFAULT_KS,
    Relevance,
    evaluate_ranking,
    ranking_metrics,
)

LOG3 = math.log2(3)
# A catalogue of 6 items and 4 users:
#   user 0: relevant {1, 3},    ranked [3, 0, 1, 5]   -> hits at positions 1 and 3
#   user 1: relevant {4},       ranked [0, 2, 4, -1]  -> hit at position 3, one padding slot
#   user 2: relevant {},        ranked [2, 4, 5, 1]   -> no relevant item: skipped everywhere
#   user 3: relevant {5, 5, 2}, ranked [0, 1, -1, -1] -> duplicates count once; no hit
RANKED = np.array([[3, 0, 1, 5], [0, 2, 4, -1], [2, 4, 5, 1], [0, 1, -1, -1]])
RELEVANT = [[1, 3], [4], [], [5, 5, 2]]
NDCG3_USER0 = (1 + 1 / math.log2(4)) / (1 + 1 / LOG3)  # DCG 1 + 0.5 over IDCG of 2 items


def test_hand_computed_per_user_values() -> None:
    result = evaluate_ranking(RANKED, RELEVANT, num_items=6, ks=(1, 3))
    nan = float("nan")
    expected = {
        # K = 1: user 0 top-1 [3] hits 1 of 2; IDCG over min(2, 1) = 1 position; MAP over 1.
        "recall@1": [1 / 2, 0, nan, 0],
        "ndcg@1": [1, 0, nan, 0],
        "hit@1": [1, 0, nan, 0],
        "map@1": [1, 0, nan, 0],
        # K = 3: user 0 top-3 [3, 0, 1]: precision@1 = 1, precision@3 = 2/3, MAP over min(2, 3).
        # user 1 top-3 [0, 2, 4]: DCG = 1/log2(4) = 0.5, IDCG = 1; precision@3 = 1/3 over 1.
        "recall@3": [1, 1, nan, 0],
        "ndcg@3": [NDCG3_USER0, 0.5, nan, 0],
        "hit@3": [1, 1, nan, 0],
        "map@3": [(1 + 2 / 3) / 2, 1 / 3, nan, 0],
    }
    assert list(result.per_user) == list(expected)
    for key, values in expected.items():
        np.testing.assert_allclose(result.per_user[key], values, rtol=1e-12, err_msg=key)
    assert result.evaluated.tolist() == [True, True, False, True]
    assert (result.num_users, result.num_skipped) == (3, 1)


def test_hand_computed_means_and_coverage() -> None:
    metrics = ranking_metrics(RANKED, RELEVANT, num_items=6, ks=(3, 1))
    expected = {
        "recall@1": 1 / 6, "ndcg@1": 1 / 3, "hit@1": 1 / 3, "map@1": 1 / 3,
        # top-1 items of the evaluated users 0, 1, 3: {3, 0, 0} -> 2 of 6 items
        "coverage@1": 2 / 6,
        "recall@3": 2 / 3, "ndcg@3": (NDCG3_USER0 + 0.5) / 3, "hit@3": 2 / 3,
        "map@3": (5 / 6 + 1 / 3) / 3,
        # {3, 0, 1} | {0, 2, 4} | {0, 1} = {0, 1, 2, 3, 4}; the skipped user's 5 is not counted
        "coverage@3": 5 / 6,
    }  # fmt: skip
    assert list(metrics) == list(expected)
    for key, value in expected.items():
        assert metrics[key] == pytest.approx(value, rel=1e-12), key


def test_k_larger_than_list_width_keeps_ideal_over_k() -> None:
    # relevant {0..5}, ranked [0, 1, 2, 3] (width 4), K = 6: the four listed items all hit.
    # recall = 4/6; IDCG runs over min(6, 6) = 6 positions, not the 4 listed.
    # map = (1/6) * (1 + 1 + 1 + 1) = 2/3.
    result = evaluate_ranking(np.array([[0, 1, 2, 3]]), [range(6)], num_items=6, ks=(6,))
    dcg = sum(1 / math.log2(p + 1) for p in range(1, 5))
    idcg = sum(1 / math.log2(p + 1) for p in range(1, 7))
    assert result.per_user["recall@6"][0] == pytest.approx(4 / 6)
    assert result.per_user["ndcg@6"][0] == pytest.approx(dcg / idcg)
    assert result.per_user["map@6"][0] == pytest.approx(2 / 3)
    assert result.coverage["coverage@6"] == pytest.approx(4 / 6)


def test_recall_divides_by_all_relevant_items() -> None:
    # 6 relevant items, K = 2, both top-2 items relevant: recall 2/6, but ndcg and map are 1
    # (the ideal list and the MAP normaliser hold min(6, 2) = 2 positions).
    metrics = ranking_metrics(np.array([[4, 5, 0]]), [range(6)], num_items=6, ks=(2,))
    assert metrics == pytest.approx(
        {"recall@2": 2 / 6, "ndcg@2": 1.0, "hit@2": 1.0, "map@2": 1.0, "coverage@2": 2 / 6}
    )


def test_default_ks_and_relevance_forms_agree() -> None:
    rng = np.random.default_rng(0)
    ranked = np.stack([rng.permutation(40)[:25] for _ in range(5)])
    lists = [rng.choice(40, size=3, replace=False) for _ in range(5)]
    users = np.repeat(np.arange(5), 3)
    from_lists = ranking_metrics(ranked, lists, num_items=40)
    from_pairs = ranking_metrics(ranked, Relevance.from_pairs(users, np.concatenate(lists), 5), 40)
    assert DEFAULT_KS == (10, 20)
    assert list(from_lists)[:5] == ["recall@10", "ndcg@10", "hit@10", "map@10", "coverage@10"]
    assert len(from_lists) == 10
    assert from_lists == from_pairs


def test_from_pairs_groups_by_user() -> None:
    rel = Relevance.from_pairs(np.array([2, 0, 2]), np.array([7, 8, 9]), num_users=4)
    assert rel.indptr.tolist() == [0, 1, 1, 3, 3]
    assert rel.indices.tolist() == [8, 7, 9]
    assert rel.num_users == 4


def _reference(ranked: np.ndarray, relevant: list[set[int]], k: int) -> dict[str, list[float]]:
    """The definitions written out one user at a time."""
    out: dict[str, list[float]] = {"recall": [], "ndcg": [], "hit": [], "map": []}
    for row, rel in zip(ranked, relevant):
        if not rel:
            continue
        top = [int(i) for i in row[:k]]
        hits = [1 if i >= 0 and i in rel else 0 for i in top]
        dcg = sum(h / math.log2(p + 2) for p, h in enumerate(hits))
        idcg = sum(1 / math.log2(p + 2) for p in range(min(len(rel), k)))
        precision_sum = sum(sum(hits[: p + 1]) / (p + 1) for p, h in enumerate(hits) if h)
        out["recall"].append(sum(hits) / len(rel))
        out["ndcg"].append(dcg / idcg)
        out["hit"].append(float(any(hits)))
        out["map"].append(precision_sum / min(len(rel), k))
    return out


def test_matches_per_user_reference_on_random_data() -> None:
    rng = np.random.default_rng(7)
    num_users, num_items, width = 300, 60, 15
    ranked = np.stack([rng.permutation(num_items)[:width] for _ in range(num_users)])
    lengths = rng.integers(0, width + 1, num_users)
    ranked[np.arange(width)[None, :] >= lengths[:, None]] = -1  # ragged lists, padded
    relevant = [rng.integers(0, num_items, rng.integers(0, 9)) for _ in range(num_users)]
    ks = (1, 5, 10, 20)
    result = evaluate_ranking(ranked, relevant, num_items, ks)
    sets = [set(r.tolist()) for r in relevant]
    assert result.num_skipped == sum(not s for s in sets) > 0
    summary = result.summary()
    for k in ks:
        reference = _reference(ranked, sets, k)
        for name, values in reference.items():
            got = result.per_user[f"{name}@{k}"][result.evaluated]
            np.testing.assert_allclose(got, values, rtol=1e-12, err_msg=f"{name}@{k}")
            assert summary[f"{name}@{k}"] == pytest.approx(np.mean(values), rel=1e-12)
        covered = {int(i) for row, s in zip(ranked, sets) if s for i in row[:k] if i >= 0}
        assert summary[f"coverage@{k}"] == len(covered) / num_items


@pytest.mark.parametrize(
    ("ranked", "relevant", "num_items", "ks", "message"),
    [
        (np.array([[0, 1, 0]]), [[1]], 3, (2,), "user 0 holds item 0 more than once"),
        (np.array([[0, 3]]), [[1]], 3, (2,), "item index 3; indices must lie in [0, 3)"),
        (np.array([[0, -2]]), [[1]], 3, (2,), "item index -2"),
        (np.array([[0.0, 1.0]]), [[1]], 3, (2,), "2-D integer array"),
        (np.array([0, 1]), [[1]], 3, (2,), "2-D integer array"),
        (np.array([[0, 1]]), [[1], [2]], 3, (2,), "relevant covers 2 users but ranked has 1 rows"),
        (np.array([[0, 1]]), [[5]], 3, (2,), "relevant item index 5 is outside"),
        (np.array([[0, 1]]), [[]], 3, (2,), "none of the 1 users has a relevant item"),
        (np.array([[0, 1]]), [[1]], 3, (0,), "the cut-offs K must be positive whole numbers"),
        (np.array([[0, 1]]), [[1]], 3, (), "the cut-offs K must be positive whole numbers"),
        (np.array([[0, 1]]), [[1]], 0, (2,), "num_items must be a positive integer"),
    ],
)
def test_bad_input_is_a_clear_error(
    ranked: np.ndarray, relevant: list[list[int]], num_items: int, ks: tuple[int, ...], message: str
) -> None:
    with pytest.raises(MmfuseError, match=message.replace("[", r"\[").replace(")", r"\)")):
        ranking_metrics(ranked, relevant, num_items, ks)


def test_many_users_closed_form() -> None:
    """100k users x 20 positions, every user's only relevant item ranked first."""
    num_users, num_items = 100_000, 1_000
    rng = np.random.default_rng(1)
    ranked = np.argsort(rng.random((num_users, 50)), 1)[:, :20]  # 20 distinct items of 0..49
    relevant = Relevance(np.arange(num_users + 1), ranked[:, 0].copy())  # one relevant: rank 1
    metrics = ranking_metrics(ranked, relevant, num_items)
    for k in DEFAULT_KS:
        for name in ("recall", "ndcg", "hit", "map"):
            assert metrics[f"{name}@{k}"] == 1.0
        assert metrics[f"coverage@{k}"] == 50 / num_items
