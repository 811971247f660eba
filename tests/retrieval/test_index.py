"""VectorIndex: exact and approximate search, save/load round trips, append, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mmfuse.errors import MmfuseError
from mmfuse.retrieval.ann import recall_at_k
from mmfuse.retrieval.index import VectorIndex


def clustered(
    n: int, dim: int = 32, clusters: int = 40, seed: int = 0, spread: float = 0.6
) -> np.ndarray:
    """Unit vectors around fixed cluster centres (the centres do not depend on ``seed``)."""
    centres = np.random.default_rng(123).standard_normal((clusters, dim))
    rng = np.random.default_rng(seed)
    x = centres[rng.integers(0, clusters, n)] + spread * rng.standard_normal((n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def paths(n: int, start: int = 0) -> pd.DataFrame:
    return pd.DataFrame({"path": [f"item{i}.jpg" for i in range(start, start + n)]})


def test_exact_search_equals_numpy_brute_force() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 16)).astype(np.float32)
    q = rng.standard_normal((7, 16)).astype(np.float32)
    index = VectorIndex.build(x, paths(200))
    result = index.search(q, k=5)
    scores = q @ x.T
    expected = np.argsort(-scores, axis=1, kind="stable")[:, :5]
    assert result.positions.shape == (7, 5)
    np.testing.assert_array_equal(result.positions, expected)
    np.testing.assert_allclose(result.scores, np.take_along_axis(scores, expected, 1), rtol=1e-5)
    hits = result.hits(0)
    assert hits["path"].tolist() == [f"item{i}.jpg" for i in expected[0]]
    assert hits["rank"].tolist() == [1, 2, 3, 4, 5]
    frame = result.to_frame()
    assert len(frame) == 35 and frame["query"].max() == 6


def test_k_larger_than_index_returns_every_row() -> None:
    x = np.eye(3, dtype=np.float32)
    result = VectorIndex.build(x).search(x[:1], k=10)
    assert result.positions.shape == (1, 3)
    assert result.positions[0, 0] == 0 and sorted(result.positions[0]) == [0, 1, 2]


@pytest.mark.parametrize("approximate", [None, "hnsw", "ivf"])
def test_save_load_round_trip(tmp_path: Path, approximate: str | None) -> None:
    x = clustered(1500)
    info = {"model": "abc123", "modality": "image"}
    index = VectorIndex.build(x, paths(1500), info, approximate=approximate, num_threads=1)
    index.save(tmp_path / "idx")
    loaded = VectorIndex.load(tmp_path / "idx")
    assert (len(loaded), loaded.dim, loaded.kind, loaded.info) == (1500, 32, index.kind, info)
    assert loaded.parameters == index.parameters
    q = clustered(20, seed=1)
    before, after = index.search(q, 10), loaded.search(q, 10)
    np.testing.assert_array_equal(before.positions, after.positions)
    np.testing.assert_array_equal(before.scores, after.scores)
    pd.testing.assert_frame_equal(loaded.metadata, index.metadata)
    np.testing.assert_array_equal(loaded.vectors(), x)
    header = json.loads((tmp_path / "idx" / "index.json").read_text())
    assert header["count"] == 1500 and header["metric"] == "inner_product"
    assert (tmp_path / "idx" / "ann.faiss").exists() == (approximate is not None)


def test_add_then_search_finds_new_rows(tmp_path: Path) -> None:
    x = clustered(300)
    index = VectorIndex.build(x, paths(300))
    new = clustered(5, seed=7)
    index.add(new, paths(5, start=300))
    assert len(index) == 305
    result = index.search(new, k=1)
    assert result.positions[:, 0].tolist() == [300, 301, 302, 303, 304]
    assert result.hits(2)["path"].tolist() == ["item302.jpg"]
    assert index.metadata["row_id"].tolist() == list(range(305))
    index.save(tmp_path / "idx")
    reloaded = VectorIndex.load(tmp_path / "idx").search(new, k=1)
    assert reloaded.positions[:, 0].tolist() == [300, 301, 302, 303, 304]


@pytest.mark.parametrize("approximate", ["hnsw", "ivf"])
def test_approximate_recall_is_measured_and_high(approximate: str) -> None:
    x = clustered(4000, dim=48, clusters=60)
    index = VectorIndex.build(x, approximate=approximate, num_threads=1)
    params = index.parameters
    assert params["recall_at_10"] >= 0.95 and params["target_met"]
    assert params["recall_queries"] == 400  # a tenth of the rows, held out until measured
    assert params["recall_query_source"] == "held-out rows"
    chosen = {"hnsw": "efSearch", "ivf": "nprobe"}[approximate]
    assert params["recall_curve"][str(params[chosen])] == params["recall_at_10"]
    # the held-out rows went in afterwards, under their own positions
    assert np.mean(index.search(x, 1).positions[:, 0] == np.arange(4000)) >= 0.99
    q = clustered(300, dim=48, clusters=60, seed=5)
    exact = index.search(q, 10, exact=True).positions
    assert recall_at_k(index.search(q, 10).positions, exact) >= 0.9
    # appending re-measures, with the new rows held out
    index.add(clustered(500, dim=48, clusters=60, seed=9))
    assert len(index) == 4500 and index.parameters["recall_queries"] == 500
    assert index.parameters["recall_measured_at_count"] == 4000
    assert index.parameters["recall_at_10"] >= 0.95
    assert np.mean(index.search(x, 1).positions[:, 0] == np.arange(4000)) >= 0.99


@pytest.mark.parametrize("approximate", ["hnsw", "ivf"])
def test_measured_recall_predicts_recall_on_fresh_queries(approximate: str) -> None:
    # overlapping clusters make the search hard enough for the recall to be informative;
    # measuring with rows already in the index would overstate HNSW's recall here
    x = clustered(4000, dim=48, clusters=60, spread=1.5)
    index = VectorIndex.build(x, approximate=approximate, num_threads=1)
    q = clustered(500, dim=48, clusters=60, seed=5, spread=1.5)
    fresh = recall_at_k(index.search(q, 10).positions, index.search(q, 10, exact=True).positions)
    assert abs(index.parameters["recall_at_10"] - fresh) < 0.03


@pytest.mark.parametrize("approximate", ["hnsw", "ivf"])
def test_small_approximate_index_is_measured_on_50_held_out_rows(approximate: str) -> None:
    x = clustered(300)
    index = VectorIndex.build(x, approximate=approximate, num_threads=1)
    params = index.parameters
    assert index.kind == approximate and "fallback_reason" not in params
    assert params["recall_queries"] == 50 and params["recall_query_source"] == "held-out rows"
    assert params["recall_measured_at_count"] == 250  # measured before the 50 went in
    assert params["recall_at_10"] >= 0.95 and params["target_met"]
    assert len(index) == 300


@pytest.mark.parametrize("approximate", ["hnsw", "ivf"])
def test_too_small_to_measure_falls_back_to_exact_and_says_why(
    tmp_path: Path, approximate: str
) -> None:
    x = clustered(99)
    index = VectorIndex.build(x, approximate=approximate)
    assert index.kind == "exact"
    params = index.parameters
    assert params["requested_kind"] == approximate
    assert params["fallback_reason"].startswith(
        f"99 rows are too few to measure the recall of an approximate ({approximate}) index"
    )
    assert "at least 100 rows" in params["fallback_reason"]
    q = clustered(10, seed=4)
    np.testing.assert_array_equal(
        index.search(q, 5).positions, index.search(q, 5, exact=True).positions
    )
    index.save(tmp_path / "idx")
    header = json.loads((tmp_path / "idx" / "index.json").read_text())
    assert header["kind"] == "exact" and header["recall_at_10"] == 1.0
    assert header["parameters"]["fallback_reason"] == params["fallback_reason"]
    assert not (tmp_path / "idx" / "ann.faiss").exists()
    assert VectorIndex.load(tmp_path / "idx").parameters["requested_kind"] == approximate


def test_a_small_index_with_eval_queries_stays_approximate() -> None:
    index = VectorIndex.build(clustered(60), approximate="hnsw", eval_queries=clustered(20, seed=3))
    assert index.kind == "hnsw" and index.parameters["recall_queries"] == 20
    assert index.parameters["recall_at_10"] is not None


def test_ivf_steps_up_nprobe_until_target() -> None:
    x = clustered(3000, dim=48, clusters=60)
    index = VectorIndex.build(x, approximate="ivf", target_recall=0.999, num_threads=1)
    curve = index.parameters["recall_curve"]
    assert len(curve) >= 2  # nprobe=1 alone did not reach 0.999
    assert list(map(int, curve)) == sorted(map(int, curve))
    assert index.parameters["recall_at_10"] >= 0.999


def test_held_out_eval_queries_are_used() -> None:
    x = clustered(2000)
    q = clustered(100, seed=3)
    index = VectorIndex.build(x, approximate="hnsw", eval_queries=q)
    assert index.parameters["recall_queries"] == 100
    assert index.parameters["recall_query_source"] == "eval_queries"


def test_dimension_mismatch_names_both_dims() -> None:
    index = VectorIndex.build(clustered(50))
    with pytest.raises(MmfuseError, match="dimension 16 but the index has dimension 32"):
        index.search(np.zeros((1, 16), dtype=np.float32))
    with pytest.raises(MmfuseError, match="dimension 8 but the index has dimension 32"):
        index.add(np.zeros((2, 8), dtype=np.float32))


def test_bad_search_and_build_inputs() -> None:
    index = VectorIndex.build(clustered(50), paths(50))
    with pytest.raises(MmfuseError, match="k must be a positive integer; got 0"):
        index.search(clustered(1), k=0)
    empty = VectorIndex.build(np.zeros((0, 4), dtype=np.float32))
    with pytest.raises(MmfuseError, match="the index is empty"):
        empty.search(np.zeros((1, 4), dtype=np.float32))
    bad = clustered(10)
    bad[3, 2] = np.nan
    with pytest.raises(MmfuseError, match="non-finite.*first row 3"):
        VectorIndex.build(bad)
    with pytest.raises(MmfuseError, match="non-finite"):
        index.search(np.full((1, 32), np.inf, dtype=np.float32))
    with pytest.raises(MmfuseError, match="metadata has 3 rows but there are 10 vectors"):
        VectorIndex.build(clustered(10), paths(3))
    with pytest.raises(MmfuseError, match="unknown approximate index 'lsh'"):
        VectorIndex.build(clustered(10), approximate="lsh")
    with pytest.raises(MmfuseError, match="metadata columns"):
        index.add(clustered(2), pd.DataFrame({"other": [1, 2]}))


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(MmfuseError, match="does not exist"):
        VectorIndex.load(tmp_path / "missing")
    (tmp_path / "plain").mkdir()
    with pytest.raises(MmfuseError, match="is not an mmfuse index \\(no index.json\\)"):
        VectorIndex.load(tmp_path / "plain")
    root = VectorIndex.build(clustered(30), paths(30)).save(tmp_path / "idx")
    header = json.loads((root / "index.json").read_text())
    header["count"] = 31
    (root / "index.json").write_text(json.dumps(header))
    with pytest.raises(MmfuseError, match=r"float32 \(31, 32\).*corrupted"):
        VectorIndex.load(root)
    header["count"] = 30
    (root / "index.json").write_text(json.dumps(header))
    paths(29).assign(row_id=range(29)).to_parquet(root / "metadata.parquet")
    with pytest.raises(MmfuseError, match="29 rows but index.json says 30"):
        VectorIndex.load(root)


def test_save_refuses_foreign_directory(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(MmfuseError, match="not empty and not an mmfuse index"):
        VectorIndex.build(clustered(5)).save(tmp_path)


def test_ground_truth_skips_held_out_rows_even_when_most_are_held_out() -> None:
    x = clustered(200)
    q = clustered(20, seed=8)
    excluded = np.sort(np.random.default_rng(0).choice(200, 150, replace=False))
    truth = VectorIndex.build(x)._exact_without(q, excluded, 10)  # the recall ground truth
    scores = q @ x.T
    scores[:, excluded] = -np.inf
    expected = np.argsort(-scores, axis=1, kind="stable")[:, :10]
    np.testing.assert_array_equal(truth, expected)


def test_large_append_to_small_index_is_measured() -> None:
    index = VectorIndex.build(clustered(600), approximate="hnsw", num_threads=1)
    assert index.parameters["recall_queries"] == 60
    index.add(clustered(1500, seed=2))
    params = index.parameters
    assert params["recall_queries"] == 1000 and params["recall_measured_at_count"] == 1100
    assert params["recall_at_10"] >= 0.95


def test_a_metadata_column_named_score_is_kept_as_input_score() -> None:
    vectors = np.eye(3, dtype=np.float32)
    meta = pd.DataFrame({"score": [5, 6, 7], "rank": ["a", "b", "c"]})
    result = VectorIndex.build(vectors, meta).search(vectors[:1], k=2)
    hits = result.hits(0)
    assert list(hits.columns[:2]) == ["rank", "score"]
    assert hits["input_score"].tolist()[0] == 5 and hits["rank"].tolist() == [1, 2]
    assert result.to_frame()["input_rank"].tolist()[0] == "a"
