"""``mmfuse encode`` with the local engine (no Ray needed): entries written once, a second run
writes nothing, bad cells named by file, row and column, the networks ``fit`` would choose, and
``--engine ray`` without Ray installed (exit 2 naming the extra to install)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from PIL import Image

from mmfuse.cli.main import main
from mmfuse.data.cache import FeatureCache
from mmfuse.pretrained import BACKBONES

pytestmark = pytest.mark.skipif(
    bool(BACKBONES["minilm"].missing() or BACKBONES["efficientnet-lite0"].missing()),
    reason="the pretrained text and image networks are not installed",
)

QUIET = ["--threads", "1", "--quiet"]


@pytest.fixture(autouse=True)
def _pretrained_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """``encode`` runs the networks ``fit`` uses by default (tests/conftest.py turns them off)."""
    monkeypatch.setenv("MMFUSE_PRETRAINED", "1")


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """data.csv: 6 records, 2 distinct images (red.png, its byte copy red_copy.png, blue.png)
    and 3 distinct reviews; row 4 has no photo, row 5 no review (never modified)."""
    root = tmp_path_factory.mktemp("encode")
    Image.new("RGB", (12, 12), (220, 30, 30)).save(root / "red.png")
    Image.new("RGB", (12, 12), (30, 30, 220)).save(root / "blue.png")
    shutil.copyfile(root / "red.png", root / "red_copy.png")
    pd.DataFrame({
        "photo": ["red.png", "blue.png", "red_copy.png", "blue.png", None, "red.png"],
        "review": ["a small red square", "a small blue circle", "a small red square",
                   "a big green triangle", "a small red square", None],
        "label": ["a", "b", "a", "b", "a", "b"],
    }).to_csv(root / "data.csv", index=False)  # fmt: skip
    return root / "data.csv"


def encode_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    capsys.readouterr()
    assert main(["encode", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def counts(summary: dict[str, Any]) -> dict[str, tuple[str, int, int, int, int]]:
    """Column -> (encoder, encoded, cached, written, bad)."""
    return {c["column"]: (c["encoder"], c["encoded"], c["cached"], c["written"], c["bad"])
            for c in summary["columns"]}


def entry_bytes(cache: Path) -> dict[str, bytes]:
    return {str(p.relative_to(cache)): p.read_bytes() for p in sorted(cache.rglob("*.npy"))}


def test_local_engine_fills_the_cache_once(
    table: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = tmp_path / "cache"
    first = encode_json(capsys, str(table), "--cache-dir", str(cache), *QUIET)
    # photo: rows 0-3 and 5 have one (5 encoded), 2 distinct contents (red = red_copy, blue);
    # review: rows 0-4 (5 encoded), 3 distinct texts
    assert counts(first) == {"photo": ("efficientnet-lite0", 5, 0, 2, 0),
                             "review": ("minilm", 5, 0, 3, 0)}
    assert first["records"] == 6 and first["engine"] == "local" and first["bad"] == []
    assert first["cache_dir"] == str(cache)
    assert FeatureCache(cache).info()["entries"] == 2 + 3
    written = entry_bytes(cache)

    second = encode_json(capsys, str(table), "--cache-dir", str(cache), *QUIET)
    assert counts(second) == {"photo": ("efficientnet-lite0", 5, 2, 0, 0),
                              "review": ("minilm", 5, 3, 0, 0)}
    assert entry_bytes(cache) == written  # nothing rewritten, nothing added


def test_the_summary_table_and_where_features_went(
    table: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = tmp_path / "cache"
    assert main(["encode", str(table), "--features", "review", "--cache-dir", str(cache), *QUIET]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"{table}: 6 records, 1 column(s) encoded (local engine) in ")
    assert lines[1].split() == ["column", "modality", "encoder", "encoded", "cached", "written", "bad"]
    assert lines[3].split() == ["review", "review", "minilm", "5", "0", "3", "0"]
    assert lines[4] == (f"feature cache: {cache} (`mmfuse fit ... --cache-dir {cache}` reads these "
                        "features)")


def test_bad_cells_are_named_by_file_row_and_column(
    table: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "bad"
    shutil.copytree(table.parent, root)
    (root / "broken.png").write_bytes(b"not a png")
    pd.DataFrame({"photo": ["red.png", "missing.png", "broken.png"]}).to_csv(root / "data.csv", index=False)
    argv = [str(root / "data.csv"), "--cache-dir", str(tmp_path / "cache"), *QUIET]
    summary = encode_json(capsys, *argv)
    assert counts(summary) == {"photo": ("efficientnet-lite0", 1, 0, 1, 2)}
    assert [(b["file"], b["row"], b["column"]) for b in summary["bad"]] == [
        (str(root / "data.csv"), 1, "photo"), (str(root / "data.csv"), 2, "photo")]
    assert "missing.png" in summary["bad"][0]["reason"] and "broken.png" in summary["bad"][1]["reason"]

    assert main(["encode", *argv]) == 0  # bad cells do not stop the others; all are listed
    out = capsys.readouterr().out
    assert "2 bad value(s); they have no features:" in out
    assert f"  {root / 'data.csv'}, row 1, column 'photo': " in out
    assert f"  {root / 'data.csv'}, row 2, column 'photo': " in out


def test_the_networks_are_those_fit_chooses(
    table: Path, media_writer: Any, tmp_path: Path
) -> None:
    """With a target, audio gets fit's prediction default (voice+prosody); without one, the
    matching default (voice); and the plan is what ``Pipeline.plan`` builds for a fit."""
    from mmfuse.data.readers import read_table
    from mmfuse.estimators.encoding import plan_encoding
    from mmfuse.estimators.pipeline import Pipeline
    from mmfuse.params import EstimatorParams

    if BACKBONES["voice+prosody"].missing():
        pytest.skip("the voice and prosody networks are not installed")
    media_writer(tmp_path).wav("speech.wav")
    frame = pd.read_csv(table).assign(speech="speech.wav", price=[1.0, 2, 3, 4, 5, 6])
    frame.to_csv(tmp_path / "data.csv", index=False)
    data = tmp_path / "data.csv"
    for target, audio in ((None, "voice"), ("label", "voice+prosody")):
        plan = plan_encoding(data, target, verbose=False)
        chosen = {c.modality.name: c.backbone for c in plan.columns}
        assert chosen == {"photo": "efficientnet-lite0", "review": "minilm", "speech": audio}
        fit = Pipeline.plan(read_table(data), target, "classification" if target else None,
                            EstimatorParams(use_cache=False, verbose=False))  # type: ignore[arg-type]
        assert {m: p.backbone for m, p in fit.preprocessor.pretrained.items()} == chosen
    only = plan_encoding(data, columns=["review"], encoders="text=minilm", verbose=False)
    assert [(c.column, c.batch_size) for c in only.columns] == [("review", 32)]


def test_nothing_to_encode_writes_nothing(
    table: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = tmp_path / "cache"
    assert main(["encode", str(table), "--no-pretrained", "--cache-dir", str(cache), *QUIET]) == 0
    assert "no column feeds a frozen pretrained network" in capsys.readouterr().out
    assert not cache.exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--address", "auto"], "--address names a Ray cluster: it applies to --engine ray"),
        (["--batch-size", "0"], "--batch-size 0: a forward pass needs at least 1 item"),
        (["--features", "nope"], "data.csv: unknown column 'nope'; the columns are: photo, review, label"),
    ],
)
def test_usage_errors_exit_2(
    table: Path, tmp_path: Path, extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = tmp_path / "cache"
    assert main(["encode", str(table), "--cache-dir", str(cache), *QUIET, *extra]) == 2
    assert message in capsys.readouterr().err
    assert not cache.exists()


def test_engine_ray_without_ray_names_the_extra(
    table: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in [m for m in sys.modules if m == "ray" or m.startswith("ray.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    cache = tmp_path / "cache"
    assert main(["encode", str(table), "--engine", "ray", "--cache-dir", str(cache), *QUIET]) == 2
    err = capsys.readouterr().err
    assert "--engine ray needs Ray Data, which is not installed" in err
    assert "install it with: pip install 'mmfuse[distributed]'" in err
    assert not cache.exists()  # refused before any work
    argv = ["index", str(tmp_path / "model"), str(table), "--column", "photo", "--out",
            str(tmp_path / "index"), "--engine", "ray"]
    assert main(argv) == 2  # checked before the model is even looked for
    assert "pip install 'mmfuse[distributed]'" in capsys.readouterr().err


def test_importing_mmfuse_and_its_engines_does_not_import_ray() -> None:
    code = ("import sys, mmfuse, mmfuse.cli.encode, mmfuse.distributed.ray_engine, "
            "mmfuse.distributed.ray_index; from mmfuse.cli.main import main; "
            "assert main(['encode', '--help']) == 0; "
            "assert not [m for m in sys.modules if m == 'ray' or m.startswith('ray.')]")
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
