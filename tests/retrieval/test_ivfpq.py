"""IVF-PQ: an approximate index whose full vectors stay on disk, re-ranked exactly."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from mmfuse.errors import MmfuseError
from mmfuse.retrieval import ann, disk_vectors
from mmfuse.retrieval.ann import create_ann, default_pq_m, nbytes, recall_at_k, rerank
from mmfuse.retrieval.disk_vectors import ChunkedFlatIP, kept_vectors
from mmfuse.retrieval.index import VectorIndex
from mmfuse.retrieval.index_files import read_header

from test_index import clustered

DIM, CLUSTERS = 48, 60


@pytest.fixture(scope="module")
def built() -> tuple[np.ndarray, VectorIndex]:
    x = clustered(4000, dim=DIM, clusters=CLUSTERS)
    return x, VectorIndex.build(x, approximate="ivfpq", num_threads=1)


def queries(n: int = 300, seed: int = 5) -> np.ndarray:
    return clustered(n, dim=DIM, clusters=CLUSTERS, seed=seed)


def as_memmap(tmp_path: Path, x: np.ndarray) -> np.ndarray:
    np.save(tmp_path / "x.npy", x)
    return np.load(tmp_path / "x.npy", mmap_mode="r")


@pytest.mark.parametrize(("dim", "m"), [(384, 48), (768, 96), (48, 6), (100, 10), (7, 1)])
def test_default_pq_m_is_the_largest_divisor_up_to_a_byte_per_8_dims(dim: int, m: int) -> None:
    # 384 // 8 = 48 divides 384; 100 // 8 = 12, and 10 is the largest divisor of 100 up to 12;
    # 7 // 8 = 0, so one sub-quantizer
    assert default_pq_m(dim) == m


def test_parameters_and_tuned_recall(built: tuple[np.ndarray, VectorIndex]) -> None:
    x, index = built
    params = index.parameters
    assert index.kind == "ivfpq" and "fallback_reason" not in params
    # nlist = min(round(4 * sqrt(4000)) = 253, 4000 // 39 = 102); training on all 4000 rows
    # (fewer than 64 * 256); pq_m = 48 / 8 = 6 bytes a vector
    expected = {"nlist": 102, "num_train": 4000, "pq_m": 6, "pq_nbits": 8, "rerank_factor": 8}
    assert {key: params[key] for key in expected} == expected
    assert params["recall_at_10"] >= 0.95 and params["target_met"]
    assert params["recall_queries"] == 400 and params["recall_measured_at_count"] == 3600
    assert params["recall_curve"][str(params["nprobe"])] == params["recall_at_10"]
    assert index.ann_index.nprobe == params["nprobe"]
    q = queries()
    fresh = recall_at_k(index.search(q, 10).positions, index.search(q, 10, exact=True).positions)
    assert fresh >= 0.9 and abs(params["recall_at_10"] - fresh) < 0.03
    # the held-out rows went in after the measurement, under their own positions
    assert np.mean(index.search(x, 1).positions[:, 0] == np.arange(4000)) >= 0.99


def test_exact_search_scans_the_vectors(built: tuple[np.ndarray, VectorIndex]) -> None:
    x, index = built
    q = queries(20)
    flat = VectorIndex.build(x).search(q, 10)
    result = index.search(q, 10, exact=True)
    np.testing.assert_array_equal(result.positions, flat.positions)
    np.testing.assert_allclose(result.scores, flat.scores, rtol=1e-5)


def test_reranking_beats_pq_alone_at_the_same_nprobe(built: tuple[np.ndarray, VectorIndex]) -> None:
    _, index = built
    q = queries()
    exact = index.search(q, 10, exact=True).positions
    reranked = recall_at_k(index.search(q, 10).positions, exact)
    _, pq_alone = index.ann_index.search(q, 10)  # the same index and nprobe, PQ scores only
    assert reranked >= recall_at_k(pq_alone, exact) + 0.2  # measured: 0.98 against 0.50


def test_memory_is_codes_ids_centroids_and_codebooks(built: tuple[np.ndarray, VectorIndex]) -> None:
    _, index = built
    # codes and ids 4000 * (6 + 8) = 56000; coarse centroids 102 * 48 * 4 = 19584;
    # codebooks 6 sub-quantizers * 256 centroids * 8 dims * 4 = 49152; total 124736
    assert nbytes(index.ann_index, "ivfpq") == 124736
    assert nbytes(index.ann_index, "ivfpq") < 4000 * DIM * 4 / 6  # the vectors: 768000 bytes


def test_save_load_round_trip_reads_vectors_from_disk(
    tmp_path: Path, built: tuple[np.ndarray, VectorIndex]
) -> None:
    x, index = built
    index.save(tmp_path / "idx")
    loaded = VectorIndex.load(tmp_path / "idx")
    assert (loaded.kind, len(loaded), loaded.parameters) == ("ivfpq", 4000, index.parameters)
    q = queries(50)
    before, after = index.search(q, 10), loaded.search(q, 10)
    np.testing.assert_array_equal(before.positions, after.positions)
    np.testing.assert_array_equal(before.scores, after.scores)
    np.testing.assert_array_equal(loaded.vectors(), x)
    header = json.loads((tmp_path / "idx" / "index.json").read_text())
    assert (header["kind"], header["parameters"]["nprobe"]) == ("ivfpq", index.parameters["nprobe"])


def test_a_read_only_memory_map_is_kept_other_arrays_are_copied(tmp_path: Path) -> None:
    x = clustered(30)
    mapped = as_memmap(tmp_path, x)
    assert kept_vectors(mapped, None, "vectors") is mapped
    copied = kept_vectors(x, None, "vectors")
    assert not np.shares_memory(copied, x) and np.array_equal(copied, x)
    x[3, 2] = np.nan
    np.save(tmp_path / "bad.npy", x)
    with pytest.raises(MmfuseError, match=r"non-finite values \(NaN or inf\), first row 3"):
        kept_vectors(np.load(tmp_path / "bad.npy", mmap_mode="r"), None, "vectors")
    with pytest.raises(MmfuseError, match="dimension 32 but the index has dimension 8"):
        kept_vectors(mapped, 8, "vectors")


def test_build_from_a_memory_map_add_and_save_merge_the_blocks(tmp_path: Path) -> None:
    x = clustered(2000, dim=DIM, clusters=CLUSTERS)
    index = VectorIndex.build(as_memmap(tmp_path, x), approximate="ivfpq", num_threads=1)
    new = clustered(300, dim=DIM, clusters=CLUSTERS, seed=9)
    index.add(new)
    assert len(index) == 2300 and index.parameters["recall_queries"] == 300
    assert index.parameters["recall_measured_at_count"] == 2000
    assert np.mean(index.search(new, 1).positions[:, 0] == np.arange(2000, 2300)) >= 0.99
    index.save(tmp_path / "idx")
    loaded = VectorIndex.load(tmp_path / "idx")
    np.testing.assert_array_equal(loaded.vectors(), np.concatenate([x, new]))
    np.testing.assert_array_equal(loaded.search(new, 5).positions, index.search(new, 5).positions)


def test_chunked_scan_equals_a_stable_sort_across_chunks_and_blocks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(disk_vectors, "MIN_SCAN_ROWS", 7)  # 7-row chunks: many boundaries
    monkeypatch.setattr(disk_vectors, "MAX_SCAN_ROWS", 7)
    x = np.random.default_rng(0).integers(-2, 3, (60, 4)).astype(np.float32)  # many ties
    q = np.random.default_rng(1).integers(-2, 3, (5, 4)).astype(np.float32)
    store = ChunkedFlatIP(x[:25])
    store.add(x[25:])
    excluded = np.array([0, 6, 7, 30, 59])
    scores, positions = store.search(q, 12, excluded)
    brute = q @ x.T
    brute[:, excluded] = -np.inf
    expected = np.argsort(-brute, axis=1, kind="stable")[:, :12]  # ties: lower position first
    np.testing.assert_array_equal(np.take_along_axis(brute, positions, 1), scores)
    np.testing.assert_array_equal(scores, np.take_along_axis(brute, expected, 1))
    # which of the rows tied with the 12th is kept is unspecified; those above it are exact
    above = scores > scores[:, -1:]
    assert above.sum() > 10  # the comparison below checks something
    np.testing.assert_array_equal(positions[above], expected[above])
    np.testing.assert_array_equal(store.rows(np.array([3, 24, 25, 40])), x[[3, 24, 25, 40]])


def test_chunked_scan_ties_and_padding_worked_by_hand() -> None:
    store = ChunkedFlatIP(np.array([[1, 0], [0, 1], [1, 1]], dtype=np.float32))
    # query (1, 1) scores the rows 1, 1, 2; the tie between rows 0 and 1 goes to row 0
    scores, positions = store.search(np.array([[1, 1]], dtype=np.float32), 4, np.array([2]))
    # row 2 excluded: rows 0 and 1 (score 1), then nothing
    assert positions.tolist() == [[0, 1, -1, -1]]
    assert scores.tolist() == [[1.0, 1.0, -np.inf, -np.inf]]


def test_save_writes_one_file_and_reads_it_memory_mapped(tmp_path: Path) -> None:
    store = ChunkedFlatIP(np.eye(3, dtype=np.float32))
    store.add(np.full((2, 3), 2.0, dtype=np.float32))
    store.save(tmp_path / "vectors.npy")
    on_disk = store.array()
    assert isinstance(on_disk, np.memmap) and Path(on_disk.filename) == tmp_path / "vectors.npy"
    expected = [[1, 0, 0], [0, 1, 0], [0, 0, 1], [2, 2, 2], [2, 2, 2]]
    assert np.load(tmp_path / "vectors.npy").tolist() == expected


@pytest.mark.parametrize("budget", [65536, 4])  # 4 candidate rows: one query per batch
def test_rerank_worked_by_hand(monkeypatch: pytest.MonkeyPatch, budget: int) -> None:
    monkeypatch.setattr(ann, "RERANK_ROWS", budget)
    rows = np.array([[1, 0], [0, 1], [1, 1]], dtype=np.float32)
    q = np.array([[2, 1], [2, 1]], dtype=np.float32)
    candidates = np.array([[1, -1, 2, 0], [1, -1, -1, -1]])
    scores, positions = rerank(lambda ids: rows[ids], q, candidates, 2)
    # query (2, 1): row 1 -> 1, row 2 -> 3, row 0 -> 2; the second has only row 1
    assert positions.tolist() == [[2, 0], [1, -1]]
    assert scores.tolist() == [[3.0, 2.0], [1.0, -np.inf]]


def test_too_few_vectors_to_train_pq() -> None:
    with pytest.raises(MmfuseError, match="ivfpq index needs at least 256 vectors to train"):
        create_ann("ivfpq", clustered(255))
    with pytest.raises(MmfuseError, match="pq_m must be a positive divisor of the dimension 32"):
        create_ann("ivfpq", clustered(300), pq_m=5)
    with pytest.raises(MmfuseError, match="rerank_factor must be a positive integer; got 0"):
        create_ann("ivfpq", clustered(300), rerank_factor=0)


def test_a_small_collection_is_exact_and_says_why() -> None:
    assert ann.MIN_PQ_ROWS == 1024  # 4 training rows per each of the 256 centroids
    index = VectorIndex.build(clustered(1023), approximate="ivfpq")
    assert index.kind == "exact" and index.parameters["requested_kind"] == "ivfpq"
    reason = index.parameters["fallback_reason"]
    assert reason.startswith("1023 rows are too few to train an ivfpq index well")
    assert "at least 1024 rows" in reason
    assert VectorIndex.build(clustered(1024), approximate="ivfpq", num_threads=1).kind == "ivfpq"


def test_header_of_an_ivfpq_index_needs_its_rerank_factor(tmp_path: Path) -> None:
    header = {"format": "mmfuse-vector-index", "version": 1, "kind": "ivfpq", "count": 2,
              "dim": 3, "parameters": {"nprobe": 4}, "info": {}}  # fmt: skip
    (tmp_path / "index.json").write_text(json.dumps(header))
    with pytest.raises(MmfuseError, match="lacks parameters.rerank_factor"):
        read_header(tmp_path)
    header["parameters"]["rerank_factor"] = 0
    (tmp_path / "index.json").write_text(json.dumps(header))
    with pytest.raises(MmfuseError, match="invalid parameters.rerank_factor: 0"):
        read_header(tmp_path)


def test_cli_offers_ivfpq() -> None:
    from mmfuse.cli.retrieval import index_args

    parser = argparse.ArgumentParser()
    index_args(parser)
    argv = ["model", "data.csv", "--column", "image", "--out", "idx", "--approximate", "ivfpq"]
    assert parser.parse_args(argv).approximate == "ivfpq"
    assert "ivfpq is for collections larger than memory" in " ".join(parser.format_help().split())


def test_tune_raises_the_rerank_factor_when_nprobe_alone_cannot_reach_the_target() -> None:
    x = clustered(4000, dim=DIM, clusters=CLUSTERS)
    q = queries(200)
    index, params = create_ann("ivfpq", x, pq_m=1, rerank_factor=1)  # 1 byte for 48 dims: coarse codes
    index.add_with_ids(x, np.arange(len(x)))
    truth = np.argsort(-(q @ x.T), axis=1, kind="stable")[:, :10]
    tuning = ann.tune(index, "ivfpq", params, q, truth, 0.95, fetch=lambda ids: x[ids])
    assert tuning.target_met and tuning.recall >= 0.95
    assert params["rerank_factor"] in ann.RERANK_STEPS  # raised in place: the index keeps it
    assert list(tuning.rerank) == [1, *ann.RERANK_STEPS[: ann.RERANK_STEPS.index(params["rerank_factor"]) + 1]]
    assert tuning.rerank[1] < 0.95 and tuning.rerank[params["rerank_factor"]] == tuning.recall
    assert index.nprobe == tuning.value
    # a target no factor reaches: the best factor and nprobe are kept, and it says so
    params["rerank_factor"] = 1
    missed = ann.tune(index, "ivfpq", params, q, truth, 1.01, fetch=lambda ids: x[ids])
    assert not missed.target_met and list(missed.rerank) == [1, *ann.RERANK_STEPS]
    assert missed.recall == max(missed.rerank.values()) and params["rerank_factor"] == max(
        missed.rerank, key=lambda f: (missed.rerank[f], -f))


def test_a_stalled_nprobe_sweep_stops() -> None:
    assert not ann._stalled({1: 0.5, 2: 0.6, 3: 0.601})
    assert ann._stalled({1: 0.5, 2: 0.9, 3: 0.9001, 5: 0.901, 8: 0.9015})  # three steps under 0.002
    assert not ann._stalled({1: 0.9, 2: 0.9001, 3: 0.9005, 5: 0.91})
