"""MultimodalRecommender end to end: evaluate's protocol on cases computed by hand, cold items
ranked from content, cold users ranked from friends, the social table's effect, save/load,
and explain's Shapley values."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from recommend_data import is_cold_item, is_cold_user, topic_of

from mmfuse.errors import MmfuseError
from mmfuse.estimators.io import load
from mmfuse.estimators.recommender import MultimodalRecommender

TINY_TRAIN = [  # (user, item, rating); items.csv also lists f, which nobody has
    ("u1", "a", 5), ("u1", "b", 4),
    ("u2", "c", 5), ("u2", "d", 3),
    ("u3", "e", 4), ("u3", "b", 2),
    ("u4", "a", 5), ("u4", "b", 5), ("u4", "c", 5), ("u4", "d", 5), ("u4", "e", 5),
]  # fmt: skip
TINY_TEST = [("u1", "c", 5), ("u1", "e", 2), ("u2", "a", 4), ("u3", "f", 5), ("u4", "f", 1)]
CATALOGUE = pd.DataFrame({"item": ["a", "b", "c", "d", "e", "f"]})
PERFECT = {"recall": 1.0, "ndcg": 1.0, "hit": 1.0, "map": 1.0}


def _frame(rows: list[tuple[str, str, int]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["user", "item", "rating"])


def _tiny_fit(seed: int = 0) -> MultimodalRecommender:
    rec = MultimodalRecommender(user="user", item="item", rating="rating", epochs=2, seed=seed,
                                num_threads=1, verbose=False)
    return rec.fit(_frame(TINY_TRAIN), items=CATALOGUE)


@pytest.fixture(scope="module")
def tiny() -> MultimodalRecommender:
    torch.manual_seed(0)  # see the docstring of tests/recommend/conftest.py
    return _tiny_fit()


# ---------------------------------------------------------------- evaluate's protocol
def test_evaluate_ranks_candidates_minus_training_items(tiny: MultimodalRecommender) -> None:
    # Candidates {a, c}. u1 has a: it ranks only c, its relevant candidate (e is no candidate).
    # u2 has c: it ranks only a, its relevant candidate. u3's and u4's test item f is no
    # candidate: they are not evaluated. Every list is one item, the right one.
    candidates = pd.DataFrame({"item": ["c", "a"]})
    result = tiny.evaluate(_frame(TINY_TEST), ks=(1, 2), candidates=candidates)
    scores = PERFECT | {"coverage": 2 / 6}  # a and c, of six items
    expected = {f"{name}@{k}": value for k in (1, 2) for name, value in scores.items()}
    assert result["metrics"] == pytest.approx(expected, abs=1e-12)
    assert result["most_popular"] == pytest.approx(expected, abs=1e-12)
    counts = ("n_users", "n_cold_users", "n_items_ranked", "n_interactions")
    assert [result[k] for k in counts] == [2, 0, 2, 2]


def test_evaluate_excludes_training_items(tiny: MultimodalRecommender) -> None:
    # u4 has every item but f: f is all that is left to rank, and it is the test item.
    result = tiny.evaluate(_frame([("u4", "f", 1)]), ks=(1, 3))
    scores = PERFECT | {"coverage": 1 / 6}
    expected = {f"{name}@{k}": value for k in (1, 3) for name, value in scores.items()}
    assert result["metrics"] == pytest.approx(expected, abs=1e-12)
    assert tiny.recommend(["u4"], k=3)["item"].tolist() == ["f"]


def test_relevant_min_keeps_well_rated_test_rows(tiny: MultimodalRecommender) -> None:
    result = tiny.evaluate(_frame(TINY_TEST), ks=(1,), relevant_min=4)
    assert (result["n_interactions"], result["n_users"]) == (3, 3)  # u1-c 5, u2-a 4, u3-f 5
    with pytest.raises(MmfuseError, match="no relevant test interaction"):
        tiny.evaluate(_frame(TINY_TEST), ks=(1,), relevant_min=6)


def test_evaluate_counts_users_unknown_to_the_model(tiny: MultimodalRecommender) -> None:
    # A stranger gets the most popular items: b (3 training rows), then a, c, d, e (2 each).
    result = tiny.evaluate(_frame([("stranger", "b", 5), ("stranger", "f", 5)]), ks=(1, 6))
    assert (result["n_users"], result["n_cold_users"]) == (1, 1)
    assert result["metrics"]["recall@1"] == 0.5 and result["metrics"]["hit@1"] == 1.0
    assert result["metrics"]["recall@6"] == 1.0
    assert tiny.recommend(["stranger"], k=6)["item"].tolist() == ["b", "a", "c", "d", "e", "f"]


def _by_hand(lists: dict[str, list[str]], relevant: dict[str, set[str]],
             k: int) -> dict[str, float]:
    """Mean recall, hit and NDCG at k of top-k lists, from their definitions."""
    recall, hit, ndcg = [], [], []
    for user, rel in relevant.items():
        top = lists.get(user, [])[:k]
        gains = [1.0 if item in rel else 0.0 for item in top]
        recall.append(sum(gains) / len(rel))
        hit.append(float(any(gains)))
        ideal = sum(1 / math.log2(p + 2) for p in range(min(len(rel), k)))
        ndcg.append(sum(g / math.log2(p + 2) for p, g in enumerate(gains)) / ideal)
    means = {"recall": recall, "hit": hit, "ndcg": ndcg}
    return {f"{name}@{k}": float(np.mean(values)) for name, values in means.items()}


def test_evaluate_agrees_with_recommend_lists(taste: Path,
                                              taste_social: MultimodalRecommender) -> None:
    test = pd.read_csv(taste / "test.csv")
    relevant = test.groupby("user")["item"].agg(set).to_dict()
    recs = taste_social.recommend(list(relevant), k=5)
    lists = recs.sort_values(["user", "rank"]).groupby("user")["item"].agg(list).to_dict()
    result = taste_social.evaluate(taste / "test.csv", ks=(5,))
    expected = _by_hand(lists, relevant, 5)
    assert {k: result["metrics"][k] for k in expected} == pytest.approx(expected, abs=1e-9)
    assert result["n_users"] == len(relevant) and result["n_cold_users"] == 0


def test_evaluate_refuses_cut_offs_below_one(tiny: MultimodalRecommender) -> None:
    for ks in ((0,), (-1, 2)):
        with pytest.raises(MmfuseError, match="positive"):
            tiny.evaluate(_frame(TINY_TEST), ks=ks)


def test_evaluate_refuses_an_empty_list_of_cut_offs(tiny: MultimodalRecommender) -> None:
    with pytest.raises(MmfuseError):
        tiny.evaluate(_frame(TINY_TEST), ks=())


@pytest.mark.parametrize("k", [0, -2, 2.5, True])
def test_recommend_refuses_k_that_is_not_a_positive_whole_number(tiny: MultimodalRecommender,
                                                                  k: object) -> None:
    with pytest.raises(MmfuseError, match=f"k must be a positive whole number, got {k!r}"):
        tiny.recommend(["u1"], k=k)  # type: ignore[arg-type]


# ------------------------------------------------------------------------ cold start
def test_cold_items_are_recommended_and_ranked_from_content(
    taste_social: MultimodalRecommender,
) -> None:
    warm = [u for u in taste_social.users_.ids if not is_cold_user(u)]
    recs = taste_social.recommend(warm, k=len(taste_social.items_.ids))
    cold = recs[recs["item"].map(is_cold_item)].copy()
    assert cold.groupby("user").size().eq(12).all()  # every cold item is ranked for every user
    cold["same"] = cold["item"].map(topic_of) == cold["user"].map(topic_of)
    # On average a cold item of the user's topic scores far above one of another topic ...
    same, other = cold.loc[cold["same"], "score"], cold.loc[~cold["same"], "score"]
    assert same.mean() > other.mean() + 0.3
    # ... and each user's three best cold items are those of their topic (chance: 1 in 4).
    best = cold.sort_values(["user", "score"], ascending=[True, False]).groupby("user").head(3)
    assert best["same"].mean() >= 0.9
    top6 = recs[recs["rank"] <= 6]
    assert top6["item"].map(is_cold_item).any()  # cold items reach the top of real lists


def test_cold_user_is_ranked_from_friends_tastes(taste: Path,
                                                 taste_social: MultimodalRecommender) -> None:
    cold = [u for u in taste_social.users_.ids if is_cold_user(u)]
    rows = np.array([taste_social.users_.index[u] for u in cold])
    assert len(cold) == 12 and taste_social.data_.history.degree(rows).sum() == 0
    recs = taste_social.recommend(cold, k=9)
    same_topic = recs["item"].map(topic_of) == recs["user"].map(topic_of)
    assert same_topic.mean() >= 0.9  # chance: 1 in 4
    result = taste_social.evaluate(taste / "test_cold_users.csv", ks=(10,))
    assert result["n_cold_users"] == 0  # in users.csv: known, with no history
    assert result["metrics"]["recall@10"] >= result["most_popular"]["recall@10"] + 0.25


def test_social_table_helps_cold_users(taste: Path, taste_social: MultimodalRecommender,
                                       taste_plain: MultimodalRecommender) -> None:
    with_friends = taste_social.evaluate(taste / "test_cold_users.csv", ks=(10,))["metrics"]
    without = taste_plain.evaluate(taste / "test_cold_users.csv", ks=(10,))["metrics"]
    assert with_friends["recall@10"] >= without["recall@10"] + 0.4
    assert with_friends["ndcg@10"] > without["ndcg@10"] + 0.15


def test_user_in_user_table_without_interactions_is_a_cold_user(
    taste_plain: MultimodalRecommender,
) -> None:
    cold = [u for u in taste_plain.users_.ids if is_cold_user(u)]
    recs = taste_plain.recommend(cold[:2], k=4)
    assert len(recs) == 8 and recs["score"].between(-1, 1).all()
    # without friends or attributes nothing tells two cold users apart: the same list
    first, second = (recs[recs["user"] == u]["item"].tolist() for u in cold[:2])
    assert first == second


# ----------------------------------------------------------------------- save / load
def _same_answers(first: MultimodalRecommender, second: MultimodalRecommender,
                  test: Path) -> None:
    """Identical recommend() lists and scores, and identical evaluate() results."""
    users = first.users_.ids[::7] + ["stranger"]
    pd.testing.assert_frame_equal(first.recommend(users, k=5), second.recommend(users, k=5))
    candidates = pd.DataFrame({"item": first.items_.ids[::3]})
    for options in ({"ks": (5, 10)}, {"ks": (3,), "candidates": candidates}):
        assert first.evaluate(test, **options) == second.evaluate(test, **options)


def test_save_load_round_trip(taste: Path, taste_social: MultimodalRecommender,
                              tmp_path: Path) -> None:
    taste_social.save(tmp_path / "model")
    loaded = load(tmp_path / "model", verbose=False)
    assert type(loaded) is MultimodalRecommender and loaded.task_ == "recommendation"
    _same_answers(taste_social, loaded, taste / "test.csv")


def test_loaded_model_saves_and_loads_again(generated: Path, generated_model: Path,
                                            tmp_path: Path) -> None:
    # every part: image, text and tabular content, user attributes, friends
    first = load(generated_model, verbose=False)
    assert sorted(first.model_.content_modalities) == ["image", "tabular", "title"]
    assert first.data_.friends is not None and first.data_.attributes is not None
    first.save(tmp_path / "again")
    _same_answers(first, load(tmp_path / "again", verbose=False), generated / "test.csv")


def test_save_after_fit_with_tables_as_parameters(tmp_path: Path) -> None:
    rec = MultimodalRecommender(user="user", item="item", items=str(tmp_path / "items.csv"),
                                epochs=1, verbose=False)
    CATALOGUE.assign(colour=list("rgbrgb")).to_csv(tmp_path / "items.csv", index=False)
    rec.fit(_frame(TINY_TRAIN)).save(tmp_path / "model")
    assert load(tmp_path / "model").items == str(tmp_path / "items.csv")


def test_save_after_fit_with_a_data_frame_as_parameter(tmp_path: Path) -> None:
    rec = MultimodalRecommender(user="user", item="item", items=CATALOGUE, epochs=1, verbose=False)
    rec.fit(_frame(TINY_TRAIN)).save(tmp_path / "model")
    users = ["u1", "u2"]
    pd.testing.assert_frame_equal(load(tmp_path / "model").recommend(users, k=3),
                                  rec.recommend(users, k=3))


def test_damaged_catalogue_is_refused(taste_social: MultimodalRecommender,
                                      tmp_path: Path) -> None:
    taste_social.save(tmp_path / "model")
    catalogue = tmp_path / "model" / "catalogue.safetensors"
    data = bytearray(catalogue.read_bytes())
    data[len(data) // 2] ^= 0xFF
    catalogue.write_bytes(bytes(data))
    with pytest.raises(MmfuseError) as err:
        load(tmp_path / "model")
    assert "catalogue.safetensors" in str(err.value) and "SHA-256" in str(err.value)


@pytest.mark.parametrize("name", ["catalogue.safetensors", "ids.json"])
def test_missing_catalogue_file_is_refused(taste_social: MultimodalRecommender, tmp_path: Path,
                                           name: str) -> None:
    taste_social.save(tmp_path / "model")
    (tmp_path / "model" / name).unlink()
    with pytest.raises(MmfuseError, match=name.replace(".", r"\.")):
        load(tmp_path / "model")


def test_fit_is_reproducible() -> None:
    first, second = _tiny_fit(seed=3), _tiny_fit(seed=3)
    users = ["u1", "u2"]
    pd.testing.assert_frame_equal(first.recommend(users, k=4), second.recommend(users, k=4))


# --------------------------------------------------------------------------- explain
def test_explain_values_sum_to_score_minus_base(taste_social: MultimodalRecommender) -> None:
    users = ["sp-u05", "mu-u00", "stranger"]  # a warm user, a cold one, one unknown (left out)
    values = taste_social.explain(users, k=3)
    players = ["behaviour", "social", *taste_social.model_.content_modalities]
    assert taste_social.model_.content_modalities == ["tabular"]
    assert list(values.columns) == ["user", "rank", "item", "score", "base", *players]
    assert values["user"].tolist() == ["sp-u05"] * 3 + ["mu-u00"] * 3
    recs = taste_social.recommend(users[:2], k=3)
    assert values["item"].tolist() == recs["item"].tolist()
    np.testing.assert_allclose(values["score"], recs["score"], atol=1e-6)
    efficiency = values[players].sum(axis=1) - (values["score"] - values["base"])
    np.testing.assert_allclose(efficiency, 0.0, atol=1e-5)
    cold = values[values["user"] == "mu-u00"]
    assert (cold["social"] > 0.5).all()  # a cold user's items are there because of friends


def test_explain_of_unknown_users_only_is_refused(taste_social: MultimodalRecommender) -> None:
    with pytest.raises(MmfuseError, match="none of these users is known to the model"):
        taste_social.explain(["stranger"])
