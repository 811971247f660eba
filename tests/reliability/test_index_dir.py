"""Battery, index directories (`mmfuse index` output): missing, truncated, garbage or edited
files, a pickled vectors.npy, and the retrieval model behind an index tampered with.

Every case exits 2 naming the file and saying to rebuild the index; nothing is unpickled
(NumPy's header is read before the data, and object arrays are refused unread). Issue 11
item 9 is here too: an approximate index of a small collection says what it did.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import faiss
import numpy as np
import pandas as pd
import pytest
from file_damage import Planted, edit_json, flip_bytes, halve, plant, replace_with_folder
from reliability_harness import Result, expect_user_error, snapshot

from mmfuse.cli.main import main
from mmfuse.datasets import make_paired_dataset

REBUILD = "rebuild it with `mmfuse index"
INCOMPLETE = "the index is incomplete or corrupted"
RETRIEVAL_FAST = ["--epochs", "1", "--dim", "8", "--threads", "1", "--quiet", "--no-pretrained"]
N_ITEMS = 110  # enough for an HNSW index to be measured (50 rows held out)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny from-scratch retrieval model, its data, an exact and an HNSW index (read-only)."""
    root = tmp_path_factory.mktemp("index-dir")
    pairs = make_paired_dataset(root / "pairs", n_items=N_ITEMS, captions_per_item=1, seed=4)
    model = root / "model"
    fit = ["fit", pairs, "--task", "retrieval", "--pair", "image,caption", "--out", model]
    assert main([str(a) for a in [*fit, *RETRIEVAL_FAST]]) == 0
    paths = {"data": pairs, "model": model}
    for kind, extra in (("exact", []), ("hnsw", ["--approximate", "hnsw"])):
        paths[kind] = root / kind
        index = ["index", model, pairs, "--column", "image", "--out", paths[kind], "--quiet", *extra]
        assert main([str(a) for a in index]) == 0
    return paths


@pytest.fixture
def fresh(built: dict[str, Path], tmp_path: Path) -> Callable[[str], Path]:
    """``fresh("exact")``: a private copy of one index, free to damage."""

    def copy(kind: str) -> Path:
        return Path(shutil.copytree(built[kind], tmp_path / kind))

    return copy


def save_vectors(root: Path, array: np.ndarray) -> None:
    np.save(root / "vectors.npy", array, allow_pickle=True)


def vectors_as(dtype: type) -> Callable[[Path], None]:
    return lambda d: save_vectors(d, np.load(d / "vectors.npy").astype(dtype))


def wrong_faiss_type(root: Path) -> None:
    faiss.write_index(faiss.IndexFlatIP(8), str(root / "ann.faiss"))


# kind -> (index kind, damage, damaged file ("" = the directory), what the message says)
CASES: dict[str, tuple[str, Callable[[Path], object], str, str]] = {
    "header_missing": ("exact", lambda d: (d / "index.json").unlink(), "", "is not an mmfuse index (no index.json)"),
    "header_truncated": ("exact", lambda d: halve(d / "index.json"), "index.json", "is not readable JSON"),
    "header_count_a_string": ("exact", lambda d: edit_json(d / "index.json", lambda h: h.update(count="12")), "index.json", "has an invalid count: '12'"),
    "header_info_not_an_object": ("exact", lambda d: edit_json(d / "index.json", lambda h: h.update(info=[])), "index.json", "has info [], which is not an object"),
    "header_unknown_kind": ("exact", lambda d: edit_json(d / "index.json", lambda h: h.update(kind="lsh")), "index.json", "has unknown kind 'lsh'"),
    "vectors_missing": ("exact", lambda d: (d / "vectors.npy").unlink(), "vectors.npy", "is missing"),
    "vectors_truncated": ("exact", lambda d: halve(d / "vectors.npy"), "vectors.npy", "is truncated"),
    "vectors_garbage": ("exact", lambda d: (d / "vectors.npy").write_bytes(b"garbage" * 40), "vectors.npy", "is not a NumPy .npy file"),
    "vectors_wrong_shape": ("exact", lambda d: save_vectors(d, np.zeros((5, 3), np.float32)), "vectors.npy", "holds float32 (5, 3) but index.json says float32"),
    "vectors_float64": ("exact", vectors_as(np.float64), "vectors.npy", "holds float64"),
    "vectors_a_folder": ("exact", lambda d: replace_with_folder(d / "vectors.npy"), "vectors.npy", "is not a regular file"),
    "metadata_missing": ("exact", lambda d: (d / "metadata.parquet").unlink(), "metadata.parquet", "is missing"),
    "metadata_truncated": ("exact", lambda d: halve(d / "metadata.parquet"), "metadata.parquet", "is not a readable Parquet file"),
    "metadata_short": ("exact", lambda d: pd.read_parquet(d / "metadata.parquet").iloc[:5].to_parquet(d / "metadata.parquet"), "metadata.parquet", "has 5 rows but index.json says"),
    "ann_missing": ("hnsw", lambda d: (d / "ann.faiss").unlink(), "ann.faiss", "is missing"),
    "ann_truncated": ("hnsw", lambda d: halve(d / "ann.faiss"), "ann.faiss", "is not a readable FAISS index"),
    "ann_garbage": ("hnsw", lambda d: (d / "ann.faiss").write_bytes(b"\0" * 300), "ann.faiss", "is not a readable FAISS index"),
    "ann_wrong_type": ("hnsw", wrong_faiss_type, "ann.faiss", "holds a IndexFlatIP, not the IndexIDMap"),
    "ann_search_parameter_edited": ("hnsw", lambda d: edit_json(d / "index.json", lambda h: h["parameters"].update(efSearch="big")), "index.json", "invalid parameters.efSearch"),
}  # fmt: skip


def search(cli: Callable[..., Result], index: Path, model: Path) -> Result:
    return cli("search", index, "a red circle", "--model", model)


@pytest.mark.parametrize("kind", sorted(CASES))
def test_broken_index_file_is_named_and_refused(
    cli: Callable[..., Result], built: dict[str, Path], fresh: Callable[[str], Path], kind: str
) -> None:
    index_kind, damage, name, what = CASES[kind]
    root = fresh(index_kind)
    damage(root)
    before = snapshot(root, built["model"])
    result = search(cli, root, built["model"])
    expect_user_error(result, str(root / name) if name else str(root), what, REBUILD)
    assert snapshot(root, built["model"]) == before


def test_pickled_vectors_are_refused_unread(
    cli: Callable[..., Result], built: dict[str, Path], fresh: Callable[[str], Path], tmp_path: Path
) -> None:
    marker = tmp_path / "PWNED"
    root = fresh("exact")
    save_vectors(root, np.array([Planted(marker)] * N_ITEMS, dtype=object))
    plant(root / "metadata.parquet", marker)
    before = snapshot(root)
    result = search(cli, root, built["model"])
    expect_user_error(result, str(root / "vectors.npy"), "holds Python objects (pickled data), which mmfuse never loads", REBUILD)
    assert not marker.exists() and snapshot(root) == before


def test_index_path_that_is_a_file(cli: Callable[..., Result], built: dict[str, Path], tmp_path: Path) -> None:
    afile = tmp_path / "index"
    afile.write_text("not an index")
    expect_user_error(search(cli, afile, built["model"]), f"{afile} is a file, not an index directory")


def test_append_to_a_broken_index_changes_nothing(
    cli: Callable[..., Result], built: dict[str, Path], fresh: Callable[[str], Path]
) -> None:
    root = fresh("exact")
    halve(root / "vectors.npy")
    before = snapshot(root, built["data"].parent)
    result = cli("index", built["model"], built["data"], "--column", "image", "--out", root, "--append", "--quiet")
    expect_user_error(result, str(root / "vectors.npy"), "is truncated", REBUILD)
    assert snapshot(root, built["data"].parent) == before


@pytest.mark.parametrize("command", ["search", "index"])
def test_tampered_retrieval_model_is_refused(
    cli: Callable[..., Result], built: dict[str, Path], tmp_path: Path, command: str
) -> None:
    model = Path(shutil.copytree(built["model"], tmp_path / "model"))
    flip_bytes(model / "model.safetensors")
    before = snapshot(model, built["exact"], built["data"].parent)
    out = tmp_path / "new-index"
    if command == "search":
        result = search(cli, built["exact"], model)
    else:
        result = cli("index", model, built["data"], "--column", "image", "--out", out, "--quiet")
    expect_user_error(result, str(model / "model.safetensors"), "the weights were changed or corrupted after saving", "fit the model again")
    assert snapshot(model, built["exact"], built["data"].parent) == before and not out.exists()


def test_small_approximate_index_falls_back_to_exact_and_says_so(
    cli: Callable[..., Result], built: dict[str, Path], tmp_path: Path
) -> None:
    """Issue 11 item 9: 30 rows cannot measure an HNSW index's recall; it used to store null."""
    small = tmp_path / "small.csv"
    df = pd.read_csv(built["data"]).iloc[:30]
    df["image"] = [str(built["data"].parent / p) for p in df["image"]]
    df.to_csv(small, index=False)
    out = tmp_path / "idx"
    result = cli("index", built["model"], small, "--column", "image", "--out", out, "--approximate", "hnsw", "--quiet")
    assert result.code == 0, result.err
    assert "wrote 30 vectors (exact index)" in result.out
    assert "note: --approximate hnsw: 30 rows are too few to measure the recall" in result.out
    header = json.loads((out / "index.json").read_text())
    assert header["kind"] == "exact" and header["recall_at_10"] == 1.0
    assert header["parameters"]["requested_kind"] == "hnsw"
    assert "exact search" in header["parameters"]["fallback_reason"]


def test_approximate_index_reports_its_measured_recall(built: dict[str, Path]) -> None:
    header = json.loads((built["hnsw"] / "index.json").read_text())
    assert header["kind"] == "hnsw" and header["count"] == N_ITEMS
    assert header["recall_at_10"] is not None and header["parameters"]["recall_queries"] == 50


def test_index_naming_a_tower_the_model_lacks(
    cli: Callable[..., Result], built: dict[str, Path], fresh: Callable[[str], Path]
) -> None:
    root = fresh("exact")
    edit_json(root / "index.json", lambda h: h["info"].update(tower="audio"))
    before = snapshot(root)
    result = search(cli, root, built["model"])
    expect_user_error(result, "vectors of a 'audio' tower", "image, caption", REBUILD)
    assert snapshot(root) == before
