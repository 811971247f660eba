"""The recommendation tables, graph and ranking on hand-made inputs: exact indices, exact
rejections (file, row, column, reason), exact neighbour means and top-K lists."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from mmfuse.data.readers import Table
from mmfuse.errors import MmfuseError
from mmfuse.recommend.graph import Neighbours, padded_mean
from mmfuse.recommend.ranking import top_k
from mmfuse.recommend.tables import (
    IdMap,
    Interactions,
    catalogue_ids,
    id_text,
    read_interactions,
    read_social,
)


def _table(frame: pd.DataFrame, name: str) -> Table:
    return Table(frame, Path("."), name)


def _interactions(**columns: list[object]) -> Table:
    return _table(pd.DataFrame(columns), "inter.csv")


def _read(table: Table, mode: str, rating: str | None = None, users: IdMap | None = None,
          **options: bool) -> Interactions:
    """The interactions of ``table`` (columns u, i), against the catalogue {x, y}."""
    users = IdMap() if users is None else users
    return read_interactions(table, "u", "i", rating, users, IdMap(["x", "y"]), mode, **options)


# ------------------------------------------------------------------------------ ids
@pytest.mark.parametrize(
    ("cell", "text"),
    [(42, "42"), (42.0, "42"), ("42", "42"), (" a1 ", "a1"), (4.5, "4.5"), (np.float64(7.0), "7"),
     (None, None), (float("nan"), None), ("", None), ("   ", None)],
)  # fmt: skip
def test_id_text_compares_ids_as_text(cell: object, text: str | None) -> None:
    assert id_text(cell) == text


def test_id_map_keeps_first_seen_order() -> None:
    ids = IdMap(["b", "a", "b"])
    assert ids.add("c") == 2 and ids.add("a") == 1
    assert (ids.ids, len(ids), "a" in ids, "z" in ids) == (["b", "a", "c"], 3, True, False)


# --------------------------------------------------------------------- interactions
def test_interactions_map_users_and_items_to_indices() -> None:
    users = IdMap()
    got = _read(_interactions(u=["b", "a", "b"], i=["y", "x", "x"]), "raise", users=users,
                verbose=False)
    assert users.ids == ["b", "a"]
    assert (got.users.tolist(), got.items.tolist()) == ([0, 1, 0], [1, 0, 0])
    assert (got.ratings, got.merged, got.rejected) == (None, 0, [])


def test_unknown_item_raises_naming_file_row_and_column() -> None:
    table = _interactions(u=["a", "a", "b"], i=["x", "nope", "y"])
    with pytest.raises(MmfuseError) as err:
        _read(table, "raise", verbose=False)
    assert str(err.value).startswith("inter.csv: 1 bad value(s) in 1 record(s):")
    assert "row 1, column 'i': item 'nope' is not in the item table" in str(err.value)


def test_unknown_item_is_skipped_and_listed() -> None:
    got = _read(_interactions(u=["a", "a", "b"], i=["x", "nope", "y"]), "skip", verbose=False)
    assert (got.users.tolist(), got.items.tolist()) == ([0, 1], [0, 1])
    assert [(r.file, r.row, r.column) for r in got.rejected] == [("inter.csv", 1, "i")]
    assert "'nope'" in got.rejected[0].reason


def test_empty_ids_and_non_numeric_ratings_are_listed() -> None:
    table = _interactions(u=["a", None, "b", "c"], i=["x", "x", "", "y"], r=[5, 4, 3, "great"])
    got = _read(table, "skip", rating="r", verbose=False)
    assert (got.users.tolist(), got.items.tolist(), got.ratings.tolist()) == ([0], [0], [5.0])
    assert [(r.row, r.column) for r in got.rejected] == [(1, "u"), (2, "i"), (3, "r")]
    assert [r.reason for r in got.rejected] == ["empty id", "empty id", "not a number: 'great'"]
    with pytest.raises(MmfuseError, match=r"row 3, column 'r': not a number: 'great'"):
        _read(table, "raise", rating="r", verbose=False)


def test_duplicate_interactions_are_merged_and_said(capsys: pytest.CaptureFixture[str]) -> None:
    table = _interactions(u=["a", "a", "a", "b", "a"], i=["x", "x", "y", "x", "x"],
                          r=[2, 5, 1, 3, 4])
    implicit = _read(table, "raise")
    assert (implicit.users.tolist(), implicit.items.tolist()) == ([0, 0, 1], [0, 1, 0])
    assert implicit.merged == 2
    assert "inter.csv: merged 2 duplicate (user, item) row(s)" in capsys.readouterr().err
    rated = _read(table, "raise", rating="r")
    assert rated.ratings.tolist() == [5.0, 1.0, 3.0]  # the largest rating of (a, x) is kept
    assert "keeping the largest rating" in capsys.readouterr().err


def test_unknown_users_are_left_out_when_not_adding() -> None:
    users = IdMap(["a"])
    table = _interactions(u=["a", "new"], i=["x", "x"])
    got = _read(table, "skip", users=users, add_users=False, verbose=False)
    assert (got.users.tolist(), users.ids) == ([0], ["a"])
    assert [(r.row, r.column) for r in got.rejected] == [(1, "u")]


def test_missing_column_lists_the_columns() -> None:
    with pytest.raises(MmfuseError) as err:
        _read(_interactions(person=["a"], i=["x"]), "raise")
    assert str(err.value) == "inter.csv: no column 'u' (--user); its columns are: person, i"


# ------------------------------------------------------------------ item/user tables
def test_catalogue_ids_keep_rows_with_an_id(capsys: pytest.CaptureFixture[str]) -> None:
    frame = pd.DataFrame({"item": ["x", None, 7.0], "colour": ["red", "blue", "green"]})
    ids, kept = catalogue_ids(_table(frame, "items.csv"), "item", "item")
    assert ids.ids == ["x", "7"]
    assert kept.df["colour"].tolist() == ["red", "green"]
    assert "items.csv: 1 row(s) without a" in capsys.readouterr().err


def test_duplicate_catalogue_ids_name_both_rows() -> None:
    table = _table(pd.DataFrame({"item": ["x", "y", "z", "y"]}), "items.csv")
    with pytest.raises(MmfuseError) as err:
        catalogue_ids(table, "item", "item")
    assert str(err.value) == ("items.csv: item id 'y' appears twice (rows 1 and 3); "
                              "each item must have one row")


def test_catalogue_without_the_id_column_lists_the_columns() -> None:
    table = _table(pd.DataFrame({"id": ["x"], "colour": ["red"]}), "items.csv")
    with pytest.raises(MmfuseError) as err:
        catalogue_ids(table, "item", "item")
    assert str(err.value) == ("items.csv: no column 'item' (the item id); "
                              "its columns are: id, colour")


# --------------------------------------------------------------------------- social
def test_social_edges_both_ways_without_self_loops_or_unknown_users() -> None:
    frame = pd.DataFrame({"user": ["a", "b", "c", "a", "a", None],
                          "friend": ["b", "a", "c", "zz", "c", "b"]})
    src, dst, bad = read_social(_table(frame, "friends.csv"), IdMap(["a", "b", "c"]),
                                directed=False, verbose=False)
    assert list(zip(src.tolist(), dst.tolist())) == [(0, 1), (0, 2), (1, 0), (2, 0)]
    assert [(r.file, r.row, r.column) for r in bad] == [
        ("friends.csv", 2, "friend"), ("friends.csv", 3, "friend"), ("friends.csv", 5, "user")]
    assert bad[0].reason == "self-loop: user 'c' names itself"
    assert "'zz'" in bad[1].reason


def test_directed_social_edges_go_first_column_to_second() -> None:
    table = _table(pd.DataFrame({"user": ["a", "b"], "friend": ["b", "c"]}), "friends.csv")
    src, dst, bad = read_social(table, IdMap(["a", "b", "c"]), directed=True, verbose=False)
    assert (src.tolist(), dst.tolist(), bad) == ([0, 1], [1, 2], [])


def test_social_table_needs_two_columns() -> None:
    table = _table(pd.DataFrame({"user": ["a"]}), "friends.csv")
    with pytest.raises(MmfuseError) as err:
        read_social(table, IdMap(["a"]), directed=False)
    assert str(err.value) == "friends.csv: a social table needs two user-id columns, found user"


# ---------------------------------------------------------------------------- graph
def test_neighbours_rows_means_and_samples() -> None:
    graph = Neighbours.from_pairs(np.array([2, 0, 0, 2]), np.array([1, 3, 0, 2]), num_rows=4)
    assert [graph.of(r).tolist() for r in range(4)] == [[0, 3], [], [1, 2], []]
    assert graph.degree().tolist() == [2, 0, 2, 0]
    vectors = torch.tensor([[1.0, 0.0], [0.0, 2.0], [4.0, 0.0], [3.0, 3.0]])
    mean, present = graph.mean(vectors, np.array([0, 1, 2]))
    assert mean.tolist() == [[2.0, 1.5], [0.0, 0.0], [2.0, 1.0]]
    assert present.tolist() == [True, False, True]
    rng = np.random.default_rng(0)
    sampled = graph.sample(np.array([0, 2, 1]), cap=3, rng=rng, exclude=np.array([3, -1, -1]))
    assert sampled.tolist() == [[0, -1, -1], [1, 2, -1], [-1, -1, -1]]


def test_padded_mean_skips_padding() -> None:
    vectors = torch.tensor([[1.0], [3.0], [8.0]])
    mean, present = padded_mean(vectors, np.array([[0, 1, -1], [-1, -1, -1], [2, -1, -1]]))
    assert mean.flatten().tolist() == [2.0, 0.0, 8.0] and present.tolist() == [True, False, True]


# -------------------------------------------------------------------------- ranking
ITEMS = torch.eye(5)  # item j scores user vector u by u[j]
USERS = torch.tensor([[0.5, 0.4, 0.3, 0.2, 0.1], [0.1, 0.2, 0.3, 0.4, 0.5]])
BOTH = np.array([0, 1])


def test_top_k_orders_by_score() -> None:
    ranked, scores = top_k(USERS, ITEMS, 3)
    assert ranked.tolist() == [[0, 1, 2], [4, 3, 2]]
    np.testing.assert_allclose(scores, [[0.5, 0.4, 0.3], [0.5, 0.4, 0.3]], rtol=1e-6)


def test_top_k_excludes_each_users_own_items_and_pads() -> None:
    seen = Neighbours.from_pairs(np.array([0, 0, 1]), np.array([0, 2, 4]), num_rows=2)
    ranked, scores = top_k(USERS, ITEMS, 5, exclude=seen, user_index=BOTH)
    assert ranked.tolist() == [[1, 3, 4, -1, -1], [3, 2, 1, 0, -1]]
    assert np.isneginf(scores[0, 3:]).all() and np.isneginf(scores[1, 4])
    # user_index picks the rows of `seen`: the second user ranked with row 0's items left out
    ranked, _ = top_k(USERS[1:], ITEMS, 2, exclude=seen, user_index=np.array([0]))
    assert ranked.tolist() == [[4, 3]]


def test_top_k_ranks_only_candidates() -> None:
    seen = Neighbours.from_pairs(np.array([0]), np.array([3]), num_rows=2)
    pool = np.array([1, 3, 4])
    ranked, _ = top_k(USERS, ITEMS, 3, exclude=seen, user_index=BOTH, candidates=pool)
    assert ranked.tolist() == [[1, 4, -1], [4, 3, 1]]
