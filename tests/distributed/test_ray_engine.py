"""The Ray engines against the local ones.

``encode --engine ray`` writes the local engine's cache entries (the same files, byte for byte)
and reports the same counts and bad cells; a later ``fit`` reads every feature from them
without a miss; ``index --engine ray`` writes the local engine's index (vectors, ids,
metadata). The triage of cells, the key step and the pool sizes are checked without Ray.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from mmfuse.cli.main import main
from mmfuse.data.cache import FeatureCache, content_key
from mmfuse.distributed.ray_engine import POS, Triage, check_fingerprint, key_cells
from mmfuse.distributed.session import RaySettings
from mmfuse.errors import MmfuseError
from mmfuse.estimators.encoding import ColumnReport, encode_locally, plan_encoding
from mmfuse.pretrained import BACKBONES

NETWORKS_MISSING = bool(BACKBONES["minilm"].missing() or BACKBONES["efficientnet-lite0"].missing())
needs_networks = pytest.mark.skipif(NETWORKS_MISSING, reason="the pretrained networks are not installed")


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    """A local Ray on 2 CPUs for the module; the commands run inside it (and leave it up)."""
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    assert not ray.is_initialized()
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 * 1024**2,
             log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """data.csv (7 records) and clean.csv (its 5 records without a bad photo), never modified.

    photo: red.png, blue.png, red_copy.png (red.png's bytes), broken.png (not an image),
    missing.png (no such file), blue.png again, none; review: 3 distinct texts, one empty cell.
    """
    root = tmp_path_factory.mktemp("ray-encode")
    Image.new("RGB", (12, 12), (220, 30, 30)).save(root / "red.png")
    Image.new("RGB", (12, 12), (30, 30, 220)).save(root / "blue.png")
    shutil.copyfile(root / "red.png", root / "red_copy.png")
    (root / "broken.png").write_bytes(b"not a png")
    red, green = "a small red square", "a big green triangle"
    blue = "a small blue circle drawn on a dark background with a steady hand"  # longer: its
    # padding changes the floats of a text encoded in the same forward pass
    frame = pd.DataFrame({
        "photo": ["red.png", "blue.png", "red_copy.png", "broken.png", "missing.png", "blue.png", None],
        "review": [red, blue, red, green, red, None, green],
        "label": ["a", "b", "a", "b", "a", "b", "a"],
    })  # fmt: skip
    frame.to_csv(root / "data.csv", index=False)
    frame.drop(index=[3, 4]).to_csv(root / "clean.csv", index=False)
    return root / "data.csv"


def counts(reports: list[ColumnReport]) -> dict[str, tuple[str, int, int, int, int]]:
    """Column -> (encoder, encoded, cached, written, bad)."""
    return {r.column: (r.encoder, r.encoded, r.cached, r.written, len(r.bad)) for r in reports}


def files(cache: Path) -> dict[str, bytes]:
    """Every file of a cache folder (entries, info.json, CACHEDIR.TAG) and its bytes."""
    return {str(p.relative_to(cache)): p.read_bytes() for p in sorted(cache.rglob("*")) if p.is_file()}


class Encoded:
    def __init__(self, local: Path, ray: Path, reports: dict[str, list[ColumnReport]]) -> None:
        self.local, self.ray, self.reports = local, ray, reports


@pytest.fixture(scope="module")
def encoded(ray_cluster: None, table: Path, tmp_path_factory: pytest.TempPathFactory) -> Encoded:
    """data.csv encoded by both engines, 2 items per forward pass, each into its own new cache
    (read-only afterwards)."""
    from mmfuse.distributed.ray_engine import encode_with_ray

    if NETWORKS_MISSING:
        pytest.skip("the pretrained networks are not installed")
    root = tmp_path_factory.mktemp("ray-caches")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MMFUSE_PRETRAINED", "1")
        plan = plan_encoding(table, batch_size=2, verbose=False)  # passes [red, blue], [green]
    local = encode_locally(plan, FeatureCache(root / "local"), "cpu", num_threads=1, verbose=False)
    ray = encode_with_ray(plan, FeatureCache(root / "ray"), RaySettings(device="cpu", verbose=False))
    return Encoded(root / "local", root / "ray", {"local": local, "ray": ray})


# ------------------------------------------------------------------------------ encode
def test_ray_writes_the_local_entries_byte_for_byte(encoded: Encoded, table: Path) -> None:
    # photo: rows 0-5 hold one; red = red_copy and blue twice -> 2 contents written, encoded in
    # rows 0, 1, 2, 5; bad: broken.png (row 3, cannot be decoded), missing.png (row 4).
    # review: 6 cells, 3 distinct texts.
    expected = {"photo": ("efficientnet-lite0", 4, 0, 2, 2), "review": ("minilm", 6, 0, 3, 0)}
    assert counts(encoded.reports["local"]) == expected
    assert counts(encoded.reports["ray"]) == expected
    assert [r.to_dict() for r in encoded.reports["ray"]] == [r.to_dict() for r in encoded.reports["local"]]
    assert encoded.reports["ray"][0].bad == encoded.reports["local"][0].bad
    assert [(b.file, b.row, b.column) for b in encoded.reports["ray"][0].bad] == [
        (str(table), 3, "photo"), (str(table), 4, "photo")]
    entries = files(encoded.ray)
    assert sum(name.endswith(".npy") for name in entries) == 2 + 3
    assert entries == files(encoded.local)


def test_fit_reads_every_feature_the_ray_engine_wrote(
    encoded: Encoded, table: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mmfuse import MultimodalClassifier

    monkeypatch.setenv("MMFUSE_PRETRAINED", "1")
    cache = tmp_path / "cache"
    shutil.copytree(encoded.ray, cache)
    est = MultimodalClassifier(cache_dir=str(cache), epochs=1, dim=8, num_threads=1, verbose=False)
    est.fit(table.parent / "clean.csv", target="label")
    stats = est.preprocessor_.cache.stats
    # clean.csv: 2 distinct images (red, blue) and 3 distinct reviews, all written by encode
    assert (stats.hits, stats.misses, stats.writes) == (2 + 3, 0, 0)


def test_second_runs_find_everything_cached_and_word_bad_cells_alike(
    encoded: Encoded, table: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("MMFUSE_PRETRAINED", "1")
    summaries = {}
    for engine, filled in (("local", encoded.local), ("ray", encoded.ray)):
        cache = tmp_path / engine
        shutil.copytree(filled, cache)
        before = files(cache)
        capsys.readouterr()
        argv = ["encode", str(table), "--engine", engine, "--cache-dir", str(cache), "--threads", "1",
                "--quiet", "--json"]
        assert main(argv) == 0
        summaries[engine] = json.loads(capsys.readouterr().out)
        assert files(cache) == before
    local, ray = summaries["local"], summaries["ray"]
    # every content is cached: nothing written; broken.png is tried again and still bad
    assert [(c["column"], c["encoded"], c["cached"], c["written"], c["bad"]) for c in ray["columns"]] == [
        ("photo", 4, 2, 0, 2), ("review", 6, 3, 0, 0)]
    assert ray["columns"] == local["columns"] and ray["bad"] == local["bad"]
    assert "--missing-files missing" in ray["bad"][1]["reason"]  # worded for the command line


# ------------------------------------------------------------------------------- index
@pytest.fixture(scope="module")
def retriever(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(model directory, collection.csv): a tiny retrieval model of 12 images x 2 captions, and
    its pairs plus one row whose image file is missing."""
    from mmfuse.datasets import make_paired_dataset

    root = tmp_path_factory.mktemp("ray-index")
    pairs = make_paired_dataset(root / "pairs", n_items=12, captions_per_item=2, seed=0)
    argv = ["fit", str(pairs), "--task", "retrieval", "--pair", "image,caption", "--out",
            str(root / "model"), "--epochs", "2", "--patience", "2", "--dim", "16", "--batch-size",
            "8", "--threads", "1", "--quiet"]
    assert main(argv) == 0
    frame = pd.read_csv(pairs)
    extra = frame.iloc[[0]].assign(image="missing.png")
    pd.concat([frame, extra], ignore_index=True).to_csv(pairs.parent / "collection.csv", index=False)
    return root / "model", pairs.parent / "collection.csv"


def test_ray_index_equals_the_local_index(
    ray_cluster: None, retriever: tuple[Path, Path], tmp_path: Path
) -> None:
    model, collection = retriever
    common = ["index", str(model), str(collection), "--column", "image", "--threads", "1",
              "--on-bad-record", "skip", "--quiet"]
    assert main([*common, "--out", str(tmp_path / "local")]) == 0
    assert main([*common, "--out", str(tmp_path / "ray"), "--engine", "ray"]) == 0
    local, ray = tmp_path / "local", tmp_path / "ray"
    assert (ray / "vectors.npy").read_bytes() == (local / "vectors.npy").read_bytes()
    assert np.load(ray / "vectors.npy").shape[0] == 12  # 12 images; the missing one skipped
    pd.testing.assert_frame_equal(pd.read_parquet(ray / "metadata.parquet"),
                                  pd.read_parquet(local / "metadata.parquet"))
    assert json.loads((ray / "index.json").read_text()) == json.loads((local / "index.json").read_text())


def test_ray_index_stops_on_a_bad_record_as_the_local_one(
    ray_cluster: None, retriever: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model, collection = retriever
    common = ["index", str(model), str(collection), "--column", "image", "--threads", "1", "--quiet"]
    capsys.readouterr()
    assert main([*common, "--out", str(tmp_path / "local")]) == 2
    local = capsys.readouterr().err
    assert main([*common, "--out", str(tmp_path / "ray"), "--engine", "ray"]) == 2
    assert capsys.readouterr().err == local
    assert f"{collection}: 1 bad value(s) in 1 record(s):\n  row 24, column 'image': " in local
    assert not (tmp_path / "ray").exists()


# ------------------------------------------------------------------- without Ray
def test_triage_encodes_each_content_once_and_skips_cached_ones(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path / "cache")
    cache.put("fp", "k2", np.ones(3, dtype=np.float32))
    cache.put("fp", "k3", np.ones(2, dtype=np.float32))  # another shape: encoded again
    keyed = pd.DataFrame({
        POS: [0, 1, 2, 3, 4, 5, 6],
        "key": ["k1", "", "k1", "", "", "k2", "k3"],
        "present": [True, False, True, False, True, True, True],
        "error": ["", "cannot read it", "", "", "", "", ""],
    })  # fmt: skip
    triage = Triage.of(keyed, cache, "fp", (3,))
    assert triage.todo == [0, 4, 6]  # k1 once; 4 has no key (its decoder will say why)
    assert triage.copies == {0: [2], 5: [], 6: []}
    assert triage.keys == {0: "k1", 5: "k2", 6: "k3"}
    assert triage.encoded == 1 and triage.bad == [(1, "cannot read it")]  # k2 from the cache
    assert (cache.stats.hits, cache.stats.misses) == (2, 1)  # k2, k3 found; k1 not
    triage.record(0, True, "")  # position 0 and its copy 2
    triage.record(4, False, "not an image")
    triage.record(6, True, "")
    assert triage.encoded == 1 + 2 + 1
    assert triage.bad == [(1, "cannot read it"), (4, "not an image")]


@needs_networks
def test_key_step_checks_and_hashes_as_extract_features(
    table: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MMFUSE_PRETRAINED", "1")
    job = plan_encoding(table, columns=["photo"], verbose=False).columns[0]
    batch = pd.DataFrame({POS: [0, 3, 4], "cell": ["red.png", "broken.png", "missing.png"]})
    out = key_cells(batch, job, table.parent, "error")
    root = table.parent
    assert out[POS].tolist() == [0, 3, 4]
    # broken.png exists, so it is hashed; only decoding it fails (in the encode step)
    assert out["key"].tolist() == [content_key(path=root / "red.png"), content_key(path=root / "broken.png"), ""]
    assert out["present"].tolist() == [True, True, False]
    assert out["error"].tolist()[:2] == ["", ""] and "missing.png" in out["error"].iloc[2]


def test_pool_size_and_resources() -> None:
    cpu, gpu = RaySettings(device="cpu"), RaySettings(device="cuda")
    assert cpu.pool_size({"CPU": 8.0}, blocks=3) == 3  # never more actors than blocks
    assert cpu.pool_size({"CPU": 8.0}, blocks=20) == 8
    assert gpu.pool_size({"CPU": 8.0, "GPU": 2.0}, blocks=20) == 2
    assert (cpu.actor_resources(), gpu.actor_resources()) == ({"num_cpus": 1.0}, {"num_gpus": 1.0})
    assert [RaySettings(device=d).actor_device() for d in ("auto", "cpu", "cuda", "cuda:1")] == [
        "cpu", "cpu", "cuda", "cuda:1"]
    with pytest.raises(MmfuseError, match="--device cuda: the Ray cluster has no GPU"):
        gpu.pool_size({"CPU": 8.0}, blocks=1)
    with pytest.raises(MmfuseError, match="unknown device 'gpu'; choose one of: auto, cpu, cuda"):
        RaySettings(device="gpu")


def test_features_from_other_package_versions_are_refused() -> None:
    check_fingerprint({"minilm|transformers==4.1|prep"}, "minilm|transformers==4.1|prep")
    with pytest.raises(MmfuseError, match="install the same versions everywhere"):
        check_fingerprint({"minilm|transformers==4.0|prep"}, "minilm|transformers==4.1|prep")
