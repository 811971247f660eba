"""The feature cache deletes only what mmfuse wrote, and an unwritable cache never fails a run.

A user's own folder (a project with ``src/main.py``, a photo, notes) given as the cache folder
of ``mmfuse cache clear|prune``, of ``fit``, or named by a model's config.json must come out
byte for byte as it went in. A read-only cache folder, a read-only ``$HOME`` or a file where
the folder should be gives one notice and a run without caching, or exit 2 with the fix.

``fit`` uses the cache only with pretrained encoders, so those tests opt in
(MMFUSE_PRETRAINED=1) and fit a text column with minilm, the cheapest pretrained path.
Tests run as root, where ``chmod`` does not stop writes: ``read_only`` also refuses the
writes themselves (as the kernel does for a non-root user or a read-only file system).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from reliability_harness import FAST, Result, expect_user_error, snapshot, write_csv

from mmfuse.data.cache import FeatureCache
from mmfuse.data.cache_layout import TAG_NAME
from mmfuse.pretrained import BACKBONES

CLI = Callable[..., Result]
FP = "net-a|pkg==1.0|prep:size=8"
PRETRAINED_FAST = [flag for flag in FAST if flag != "--no-pretrained"]
needs_minilm = pytest.mark.skipif(
    bool(BACKBONES["minilm"].missing()), reason="minilm is not installed"
)


def _user_folder(root: Path) -> Path:
    """An ordinary folder of a user's own files."""
    (root / "src").mkdir(parents=True)
    (root / "src" / "main.py").write_text("print('hello')\n")
    (root / "photo.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (root / "notes.txt").write_text("meeting at 10\n")
    (root / "0123456789abcdef").mkdir()  # a name of mmfuse's layout, by coincidence
    (root / "0123456789abcdef" / "info.json").write_text('{"mine": true}\n')
    return root


def _tagged_cache(root: Path) -> Path:
    """A cache mmfuse wrote (tagged, two entries) with a user's README dropped into it."""
    cache = FeatureCache(root)
    for key in ("a1" * 32, "b2" * 32):
        cache.put(FP, key, np.ones(64, np.float32))
    (root / "README.md").write_text("what this folder is\n")
    return root


def _mtimes(folder: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in folder.rglob("*")}


def _text_data(folder: Path) -> Path:
    n = 12
    frame = pd.DataFrame({"note": [f"note {i} is {'good' if i % 2 else 'bad'}" for i in range(n)],
                          "label": ["yes", "no"] * (n // 2)})
    return write_csv(frame, folder)


def _fit(cli: CLI, data: Path, out: Path, *extra: str) -> Result:
    return cli("fit", data, "--target", "label", "--out", out, *PRETRAINED_FAST, *extra)


@pytest.fixture
def pretrained(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMFUSE_PRETRAINED", "1")


@pytest.fixture(scope="module")
def text_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(model directory, data CSV) of a tiny minilm text fit; copy the model before changing it."""
    from mmfuse.cli.main import main

    if BACKBONES["minilm"].missing():
        pytest.skip("minilm is not installed")
    root = tmp_path_factory.mktemp("text-model")
    data = _text_data(root / "data")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MMFUSE_PRETRAINED", "1")
        argv = ["fit", str(data), "--target", "label", "--out", str(root / "model")]
        assert main([*argv, *PRETRAINED_FAST, "--cache-dir", str(root / "cache")]) == 0
    return root / "model", data


def _model_naming(text_model: tuple[Path, Path], cache_dir: Path, tmp_path: Path) -> Path:
    """A copy of the text model whose config.json names ``cache_dir`` as its cache."""
    model = tmp_path / "model"
    shutil.copytree(text_model[0], model)
    config = json.loads((model / "config.json").read_text())
    config["params"]["cache_dir"] = str(cache_dir)
    (model / "config.json").write_text(json.dumps(config))
    return model


@pytest.fixture
def read_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Path], None]]:
    """``read_only(folder)``: no file or folder can be created, replaced, removed or touched
    under ``folder`` (chmod, plus the same refusal for root, who ignores permissions)."""
    folders: list[Path] = []

    def under(path: Any) -> bool:
        return isinstance(path, (str, os.PathLike)) and any(
            Path(os.path.abspath(path)).is_relative_to(f) for f in folders
        )

    def refuse(real: Callable[..., Any], writes: Callable[..., bool]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            if writes(*args, **kwargs):
                raise PermissionError(errno.EACCES, "Permission denied", str(args[0]))
            return real(*args, **kwargs)

        return call

    create = os.O_WRONLY | os.O_RDWR | os.O_CREAT
    opens = refuse(os.open, lambda p, flags, *a, **k: under(p) and flags & create)
    monkeypatch.setattr(os, "open", opens)
    for name in ("mkdir", "replace", "unlink", "rmdir", "utime"):
        monkeypatch.setattr(os, name, refuse(getattr(os, name), lambda p, *a, **k: under(p)))
    modes: dict[Path, int] = {}

    def make(folder: Path) -> None:
        folders.append(folder.resolve())
        for path in [folder, *folder.rglob("*")]:
            if path.is_dir():
                modes[path] = path.stat().st_mode
                path.chmod(stat.S_IMODE(modes[path]) & ~0o222)

    yield make
    for path, mode in modes.items():
        path.chmod(stat.S_IMODE(mode))


# ----------------------------------------------------------- mmfuse cache clear|prune|info
@pytest.mark.parametrize("action", ["clear", "prune"])
def test_cache_command_refuses_a_user_folder(cli: CLI, tmp_path: Path, action: str) -> None:
    folder = _user_folder(tmp_path / "project")
    before = snapshot(folder)
    result = cli("cache", action, "--cache-dir", folder, "--max-gb", "0")
    expect_user_error(result, f"refusing to {action} {folder}", "not an mmfuse feature cache",
                      "'notes.txt'", "changed nothing", "a folder mmfuse created")
    assert snapshot(folder) == before


def test_cache_clear_keeps_a_users_file_in_a_tagged_cache(cli: CLI, tmp_path: Path) -> None:
    root = _tagged_cache(tmp_path / "cache")
    result = cli("cache", "clear", "--cache-dir", root)
    assert result.code == 0 and "kept 1 file(s)" in result.out, result
    assert sorted(p.name for p in root.iterdir()) == [TAG_NAME, "README.md"]
    assert (root / "README.md").read_text() == "what this folder is\n"


def test_cache_prune_evicts_only_entries(cli: CLI, tmp_path: Path) -> None:
    root = _tagged_cache(tmp_path / "cache")
    result = cli("cache", "prune", "--cache-dir", root, "--max-gb", "0")
    assert result.code == 0 and "pruned 2 " in result.out, result
    assert FeatureCache(root).info()["entries"] == 0
    assert (root / "README.md").read_text() == "what this folder is\n"
    assert (root / TAG_NAME).exists()


def test_cache_info_on_a_missing_folder(cli: CLI, tmp_path: Path) -> None:
    result = cli("cache", "info", "--cache-dir", tmp_path / "nothing")
    assert result.code == 0 and "0 entries" in result.out and "does not exist yet" in result.out
    assert not (tmp_path / "nothing").exists()


def test_cache_info_on_a_user_folder_says_it_is_not_a_cache(cli: CLI, tmp_path: Path) -> None:
    folder = _user_folder(tmp_path / "project")
    before = snapshot(folder)
    result = cli("cache", "info", "--cache-dir", folder)
    assert result.code == 0 and "0 entries" in result.out, result
    assert "not an mmfuse cache" in result.out
    assert "will not write to, clear or prune it" in result.out
    assert snapshot(folder) == before


@pytest.mark.parametrize("action", ["info", "clear", "prune"])
@pytest.mark.parametrize("where", ["file", "inside-file"])
def test_cache_command_on_a_file(cli: CLI, tmp_path: Path, action: str, where: str) -> None:
    blocker = tmp_path / "cache"
    blocker.write_text("a file, not a folder\n")
    root = blocker if where == "file" else blocker / "mmfuse"
    result = cli("cache", action, "--cache-dir", root)
    expect_user_error(result, str(root), f"{blocker} is a file, not a folder", "--cache-dir")
    assert blocker.read_text() == "a file, not a folder\n"


def test_cache_clear_on_a_read_only_cache(
    cli: CLI, tmp_path: Path, read_only: Callable[[Path], None]
) -> None:
    root = _tagged_cache(tmp_path / "cache")
    before = snapshot(root)
    read_only(root)
    result = cli("cache", "clear", "--cache-dir", root)
    expect_user_error(
        result, f"cannot clear the feature cache {root}", "Permission denied", "permissions"
    )
    assert snapshot(root) == before


# ------------------------------------------------------------------------- fit and predict
@needs_minilm
def test_fit_refuses_a_user_folder_as_cache(cli: CLI, tmp_path: Path, pretrained: None) -> None:
    data = _text_data(tmp_path / "data")
    folder = _user_folder(tmp_path / "project")
    before = snapshot(folder, data.parent)
    result = _fit(cli, data, tmp_path / "model", "--cache-dir", folder)
    expect_user_error(result, f"refusing to write features into {folder}", "'photo.jpg'",
                      "empty or new folder", "--no-cache")
    assert snapshot(folder, data.parent) == before


@needs_minilm
def test_fit_tags_an_empty_folder_and_caches_there(
    cli: CLI, tmp_path: Path, pretrained: None
) -> None:
    data = _text_data(tmp_path / "data")
    (tmp_path / "cache").mkdir()
    result = _fit(cli, data, tmp_path / "model", "--cache-dir", tmp_path / "cache")
    assert result.code == 0, result
    assert FeatureCache(tmp_path / "cache").info()["tagged"] is True
    assert FeatureCache(tmp_path / "cache").info()["entries"] == 12


@needs_minilm
@pytest.mark.parametrize("where", ["file", "inside-file"])
def test_fit_with_a_file_where_the_cache_should_be(
    cli: CLI, tmp_path: Path, pretrained: None, where: str
) -> None:
    data = _text_data(tmp_path / "data")
    blocker = tmp_path / "cache"
    blocker.write_text("a file, not a folder\n")
    root = blocker if where == "file" else blocker / "mmfuse"
    result = _fit(cli, data, tmp_path / "model", "--cache-dir", root)
    assert result.code == 0 and (tmp_path / "model" / "model.safetensors").exists(), result
    assert result.err.count("\n") == 1, result.err  # one notice, naming the file and the fix
    assert f"{blocker} is a file, not a folder" in result.err and "--cache-dir" in result.err
    assert blocker.read_text() == "a file, not a folder\n"


@needs_minilm
def test_fit_with_a_read_only_cache_folder(
    cli: CLI, tmp_path: Path, pretrained: None, read_only: Callable[[Path], None]
) -> None:
    data = _text_data(tmp_path / "data")
    root = _tagged_cache(tmp_path / "cache")
    before = snapshot(root)
    read_only(root)
    result = _fit(cli, data, tmp_path / "model", "--cache-dir", root)
    assert result.code == 0 and (tmp_path / "model" / "model.safetensors").exists(), result
    assert result.err.count("\n") == 1 and "Permission denied" in result.err, result.err
    assert snapshot(root) == before


@needs_minilm
def test_fit_with_a_read_only_home(
    cli: CLI, tmp_path: Path, pretrained: None, read_only: Callable[[Path], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    home = tmp_path / "home"
    (home / "Documents").mkdir(parents=True)
    (home / "Documents" / "cv.txt").write_text("mine\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("MMFUSE_CACHE_DIR")
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    data = _text_data(tmp_path / "data")
    before = snapshot(home)
    read_only(home)
    result = _fit(cli, data, tmp_path / "model")
    assert result.code == 0 and (tmp_path / "model" / "model.safetensors").exists(), result
    assert result.err.count("\n") == 1, result.err
    assert f"feature cache {home / '.cache' / 'mmfuse'} cannot be written" in result.err
    assert snapshot(home) == before


@needs_minilm
def test_predict_never_writes_to_a_user_folder_named_by_the_model(
    cli: CLI, text_model: tuple[Path, Path], tmp_path: Path
) -> None:
    folder = _user_folder(tmp_path / "project")
    model = _model_naming(text_model, folder, tmp_path)
    before = snapshot(folder)
    result = cli("predict", model, text_model[1], "--out", tmp_path / "pred.csv")
    assert result.code == 0 and len(pd.read_csv(tmp_path / "pred.csv")) == 12, result
    assert snapshot(folder) == before


@needs_minilm
def test_predict_uses_a_cache_named_by_the_model_read_only(
    cli: CLI, text_model: tuple[Path, Path], tmp_path: Path
) -> None:
    """Its entries serve hits; a corrupt one is not deleted, none is touched, nothing pruned."""
    root = tmp_path / "cache"
    shutil.copytree(text_model[0].parent / "cache", root)
    entries = sorted(root.glob("*/*/*.npy"))
    entries[0].write_bytes(b"")  # corrupt: a writable cache would delete it
    (root / "README.md").write_text("mine\n")
    model = _model_naming(text_model, root, tmp_path)
    before = snapshot(root), _mtimes(root)
    result = cli("predict", model, text_model[1], "--out", tmp_path / "pred.csv")
    assert result.code == 0 and len(pd.read_csv(tmp_path / "pred.csv")) == 12, result
    assert (snapshot(root), _mtimes(root)) == before


@needs_minilm
def test_predict_refuses_a_user_folder_as_the_default_cache(
    cli: CLI, text_model: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A model fitted with the default cache uses this machine's default, like a fit does."""
    folder = _user_folder(tmp_path / "project")
    model = _model_naming(text_model, folder, tmp_path)
    config = json.loads((model / "config.json").read_text())
    config["params"]["cache_dir"] = None
    (model / "config.json").write_text(json.dumps(config))
    monkeypatch.setenv("MMFUSE_CACHE_DIR", str(folder))
    before = snapshot(folder)
    result = cli("predict", model, text_model[1], "--out", tmp_path / "pred.csv")
    expect_user_error(result, f"refusing to write features into {folder}", "MMFUSE_CACHE_DIR")
    assert snapshot(folder) == before and not (tmp_path / "pred.csv").exists()
