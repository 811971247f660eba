"""Tests for mmfuse.data.cache (FeatureCache, content_key), its folder tag and layout
(mmfuse.data.cache_layout), the cache path of mmfuse.data.frozen.extract_features, and
`mmfuse cache info|clear|prune`. The CLI's refusals on users' folders are in
tests/reliability/test_cache_safety.py."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mmfuse.cli.main import main
from mmfuse.data import cache as cache_module
from mmfuse.data.cache import FeatureCache, content_key
from mmfuse.data.cache_layout import TAG_NAME, TAG_SIGNATURE
from mmfuse.data.frozen import Column, extract_features
from mmfuse.data.preparations import Preparation
from mmfuse.errors import DecodeError, MmfuseError

FP = "net-a|pkg==1.0|prep:size=8"
OTHER_FP = "net-a|pkg==2.0|prep:size=8"


def _entries(root: Path) -> list[Path]:
    return sorted(root.glob("*/*/*.npy"))


def _contents(root: Path) -> dict[Path, tuple[bytes, int]]:
    """Bytes and modification time of every file."""
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


def _leftovers(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix == ".tmp")


# ------------------------------------------------------------------ content keys
def test_content_key_follows_bytes_not_path(tmp_path: Path) -> None:
    a, b = tmp_path / "a.png", tmp_path / "sub" / "b.png"
    b.parent.mkdir()
    a.write_bytes(b"\x89PNG same bytes")
    b.write_bytes(b"\x89PNG same bytes")
    assert content_key(path=a) == content_key(path=b)  # a copied file hits the same entry
    key = content_key(path=a)
    a.write_bytes(b"\x89PNG same byteS")  # one byte changed
    assert content_key(path=a) != key


def test_content_key_of_text_and_folders(tmp_path: Path) -> None:
    assert content_key(text="good film") == content_key(text="good film")
    assert content_key(text="good film") != content_key(text="Good film")
    (tmp_path / "t.txt").write_bytes(b"good film")
    assert content_key(text="good film") != content_key(path=tmp_path / "t.txt")
    frames = tmp_path / "frames"
    frames.mkdir()
    (frames / "0.png").write_bytes(b"one")
    (frames / "1.png").write_bytes(b"two")
    key = content_key(path=frames)
    (frames / "1.png").rename(frames / "2.png")  # same bytes, other name
    assert content_key(path=frames) != key


# -------------------------------------------------------------------- get / put
def test_put_get_round_trip_is_exact(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path / "c")
    value = np.random.default_rng(0).normal(size=(4, 7)).astype(np.float32)
    cache.put(FP, "ab" * 32, value)
    got = cache.get(FP, "ab" * 32)
    assert got is not None
    assert got.dtype == np.float32 and got.shape == (4, 7)
    np.testing.assert_array_equal(got, value)
    assert (cache.stats.hits, cache.stats.misses, cache.stats.writes) == (1, 0, 1)


def test_miss_returns_none_and_counts(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path / "c")
    assert cache.get(FP, "cd" * 32) is None
    assert cache.get(FP, "cd" * 32) is None
    assert (cache.stats.hits, cache.stats.misses) == (0, 2)
    assert not (tmp_path / "c").exists()  # reading never creates the cache


def test_changed_file_is_a_miss_never_stale(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path / "c")
    img = tmp_path / "x.png"
    img.write_bytes(b"first version")
    cache.put(FP, content_key(path=img), np.ones(3, np.float32))
    img.write_bytes(b"second version")
    assert cache.get(FP, content_key(path=img)) is None
    img.write_bytes(b"first version")  # back to the old bytes: the old entry is valid again
    np.testing.assert_array_equal(cache.get(FP, content_key(path=img)), np.ones(3, np.float32))


def test_fingerprints_are_separate_entries(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path / "c")
    key = "ef" * 32
    cache.put(FP, key, np.zeros(2, np.float32))
    assert cache.get(OTHER_FP, key) is None  # new package version: never the old features
    cache.put(OTHER_FP, key, np.full(2, 5.0, np.float32))
    np.testing.assert_array_equal(cache.get(FP, key), [0.0, 0.0])
    np.testing.assert_array_equal(cache.get(OTHER_FP, key), [5.0, 5.0])


def _interrupting_save(handle: Any, *args: Any, **kwargs: Any) -> None:
    handle.write(b"\x93NUMPY\x01")  # a few bytes of a header, then the process "dies"
    raise KeyboardInterrupt


def test_interrupted_write_leaves_no_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = FeatureCache(tmp_path / "c")
    monkeypatch.setattr(cache_module.np, "save", _interrupting_save)
    with pytest.raises(KeyboardInterrupt):
        cache.put(FP, "12" * 32, np.ones(10, np.float32))
    monkeypatch.undo()
    assert _entries(tmp_path / "c") == []
    assert _leftovers(tmp_path / "c") == []  # the temporary file was removed as well
    assert cache.get(FP, "12" * 32) is None
    assert cache.stats.corrupt == 0 and cache.stats.writes == 0
    assert cache.info()["entries"] == 0


def test_interrupted_overwrite_keeps_the_previous_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = FeatureCache(tmp_path / "c")
    old = np.arange(6, dtype=np.float32)
    cache.put(FP, "34" * 32, old)
    monkeypatch.setattr(cache_module.np, "save", _interrupting_save)
    with pytest.raises(KeyboardInterrupt):
        cache.put(FP, "34" * 32, old + 100)
    monkeypatch.undo()
    np.testing.assert_array_equal(cache.get(FP, "34" * 32), old)


def test_leftover_temporary_files_are_reported_and_cleared(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path / "c")
    cache.put(FP, "56" * 32, np.ones(4, np.float32))
    entry = _entries(tmp_path / "c")[0]
    # what a killed process leaves: a temporary file next to where the entry would go
    (entry.parent / f".{'78' * 32}.npy.k1l2.tmp").write_bytes(b"\x93NUMPY partial")
    info = cache.info()
    assert info["temporary_files"] == 1
    assert info["entries"] == 1  # the leftover is not an entry
    assert cache.get(FP, "78" * 32) is None
    assert cache.clear() > 0
    assert _leftovers(tmp_path / "c") == [] and _entries(tmp_path / "c") == []
    assert cache.info()["temporary_files"] == 0 and cache.info()["bytes"] == 0


@pytest.mark.parametrize("keep", [0, 5, 100], ids=["empty", "partial-header", "partial-data"])
def test_corrupt_entry_is_a_miss_and_deleted(tmp_path: Path, keep: int) -> None:
    cache = FeatureCache(tmp_path / "c")
    cache.put(FP, "9a" * 32, np.arange(64, dtype=np.float32))
    entry = _entries(tmp_path / "c")[0]
    with open(entry, "r+b") as handle:
        handle.truncate(keep)
    assert cache.get(FP, "9a" * 32) is None
    assert not entry.exists()
    assert cache.stats.corrupt == 1 and cache.stats.misses == 1 and cache.stats.hits == 0
    cache.put(FP, "9a" * 32, np.arange(64, dtype=np.float32))  # rewritten on the next run
    np.testing.assert_array_equal(cache.get(FP, "9a" * 32), np.arange(64, dtype=np.float32))


# ------------------------------------------------------------------ maintenance
def _filled(root: Path, keys: list[str]) -> tuple[FeatureCache, int]:
    cache = FeatureCache(root)
    for i, key in enumerate(keys):
        cache.put(FP, key, np.full(100, i, np.float32))
    size = _entries(root)[0].stat().st_size
    return cache, size


def _age(cache: FeatureCache, key: str, seconds_ago: float) -> None:
    path = cache._entry(FP, key)
    t = path.stat().st_mtime - seconds_ago
    os.utime(path, (t, t))


def test_prune_evicts_least_recently_used(tmp_path: Path) -> None:
    keys = ["a1" * 32, "b2" * 32, "c3" * 32]
    cache, size = _filled(tmp_path / "c", keys)
    for key, ago in zip(keys, (300, 200, 100)):  # a1 oldest, c3 newest
        _age(cache, key, ago)
    cache.max_bytes = 2 * size
    assert cache.prune() == 1
    assert cache.get(FP, keys[0]) is None
    assert cache.get(FP, keys[1]) is not None and cache.get(FP, keys[2]) is not None
    assert cache.prune() == 0  # fits now


def test_reading_an_entry_protects_it_from_eviction(tmp_path: Path) -> None:
    keys = ["a1" * 32, "b2" * 32, "c3" * 32]
    cache, size = _filled(tmp_path / "c", keys)
    for key, ago in zip(keys, (300, 200, 100)):
        _age(cache, key, ago)
    assert cache.get(FP, keys[0]) is not None  # the oldest entry is used again
    cache.max_bytes = size
    assert cache.prune() == 2
    assert [p.stem for p in _entries(tmp_path / "c")] == [keys[0]]


def test_info_counts_entries_per_fingerprint(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path / "c", max_bytes=12345)
    for key in ("d1" * 32, "d2" * 32):
        cache.put(FP, key, np.zeros(10, np.float32))
    cache.put(OTHER_FP, "d3" * 32, np.zeros(20, np.float32))
    info = cache.info()
    assert info["root"] == str(tmp_path / "c")
    assert info["entries"] == 3 and info["max_bytes"] == 12345
    per = {e["fingerprint"]: e for e in info["encoders"]}  # type: ignore[union-attr]
    assert set(per) == {FP, OTHER_FP}
    assert per[FP]["entries"] == 2 and per[OTHER_FP]["entries"] == 1
    for fp in (FP, OTHER_FP):
        files = cache._folder(fp).glob("*/*.npy")
        assert per[fp]["bytes"] == sum(p.stat().st_size for p in files)
    assert info["bytes"] == per[FP]["bytes"] + per[OTHER_FP]["bytes"]


def test_info_of_a_missing_folder_is_empty(tmp_path: Path) -> None:
    info = FeatureCache(tmp_path / "nothing").info()
    assert info["entries"] == 0 and info["bytes"] == 0 and info["encoders"] == []
    assert FeatureCache(tmp_path / "nothing").clear() == 0
    assert FeatureCache(tmp_path / "nothing").prune() == 0


def test_default_root_follows_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MMFUSE_CACHE_DIR", str(tmp_path / "env-cache"))
    assert FeatureCache().root == tmp_path / "env-cache"
    monkeypatch.delenv("MMFUSE_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert FeatureCache().root == tmp_path / "xdg" / "mmfuse"


# --------------------------------------------------------- the tag and the layout
def test_first_write_creates_the_folder_with_its_tag(tmp_path: Path) -> None:
    root = tmp_path / "new" / "c"
    FeatureCache(root).put(FP, "ab" * 32, np.ones(2, np.float32))
    lines = (root / TAG_NAME).read_text().splitlines()
    assert lines[0] == TAG_SIGNATURE == "Signature: 8a477f597d28d172789f06886806bc55"
    assert lines[1].startswith("#") and "mmfuse" in lines[1]
    assert FeatureCache(root).info()["tagged"] is True


def test_an_empty_folder_is_tagged_on_first_write(tmp_path: Path) -> None:
    FeatureCache(tmp_path).put(FP, "ab" * 32, np.ones(2, np.float32))
    assert (tmp_path / TAG_NAME).read_text().startswith(TAG_SIGNATURE)


def test_a_user_folder_is_never_written(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    cache = FeatureCache(tmp_path)
    refusal = "refusing to write features into .*'notes.txt'.*--no-cache"
    with pytest.raises(MmfuseError, match=refusal):
        cache.put(FP, "ab" * 32, np.ones(2, np.float32))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_another_programs_tag_is_not_mmfuses(tmp_path: Path) -> None:
    (tmp_path / TAG_NAME).write_text(TAG_SIGNATURE + "\n# created by some other tool\n")
    with pytest.raises(MmfuseError, match="another program"):
        FeatureCache(tmp_path).clear()
    assert FeatureCache(tmp_path).info()["tagged"] is False


def test_a_cache_from_before_the_tag_is_adopted(tmp_path: Path) -> None:
    """A folder holding nothing but mmfuse's layout was written by an mmfuse without tags: it
    is tagged and kept on the first write, clear or prune."""
    cache, _ = _filled(tmp_path / "c", ["a1" * 32, "b2" * 32])
    (tmp_path / "c" / TAG_NAME).unlink()
    assert FeatureCache(tmp_path / "c").info()["tagged"] is False
    assert FeatureCache(tmp_path / "c").prune() == 0
    assert (tmp_path / "c" / TAG_NAME).exists() and len(_entries(tmp_path / "c")) == 2


def test_clear_removes_only_mmfuses_layout(tmp_path: Path) -> None:
    root = tmp_path / "c"
    cache, _ = _filled(root, ["a1" * 32])
    entry = _entries(root)[0]
    encoder = entry.parent.parent
    strays = [
        root / "README.md",
        encoder / "notes.txt",
        encoder / "a1" / "not-an-entry.npy",
        encoder / "zz" / ("cd" * 32 + ".npy"),  # not a shard folder
        encoder / "a1" / ("cd" * 32 + ".npy"),  # an entry name in the wrong shard
        root / "0123456789abcdeg" / "info.json",  # not a 16-hex folder
    ]
    for path in strays:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("user data")
    (encoder / "ab").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / ("ab" * 32 + ".npy")).write_text("linked")
    assert cache.info()["other_files"] == len(strays) + 1  # the link; its target is not entered
    assert cache.clear() > 0
    assert not entry.exists() and not (encoder / "info.json").exists()
    assert all(p.read_text() == "user data" for p in strays)
    assert (tmp_path / "elsewhere" / ("ab" * 32 + ".npy")).read_text() == "linked"
    assert (root / TAG_NAME).exists()


def test_a_users_folder_with_a_look_alike_name_is_not_adopted(tmp_path: Path) -> None:
    (tmp_path / "0123456789abcdef").mkdir()
    (tmp_path / "0123456789abcdef" / "info.json").write_text('{"mine": true}')
    with pytest.raises(MmfuseError, match="refusing to clear .*0123456789abcdef/info.json"):
        FeatureCache(tmp_path).clear()
    assert (tmp_path / "0123456789abcdef" / "info.json").read_text() == '{"mine": true}'
    assert not (tmp_path / TAG_NAME).exists()


def test_clear_removes_the_emptied_folders(tmp_path: Path) -> None:
    cache, _ = _filled(tmp_path / "c", ["a1" * 32, "b2" * 32])
    cache.clear()
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == [TAG_NAME]


def test_a_read_only_cache_reads_and_never_changes_anything(tmp_path: Path) -> None:
    _filled(tmp_path / "c", ["a1" * 32, "b2" * 32])
    corrupt = _entries(tmp_path / "c")[1]
    corrupt.write_bytes(b"")
    before = _contents(tmp_path / "c")
    cache = FeatureCache(tmp_path / "c", max_bytes=0, read_only=True)
    np.testing.assert_array_equal(cache.get(FP, "a1" * 32), np.zeros(100, np.float32))
    assert cache.get(FP, "b2" * 32) is None and cache.stats.corrupt == 1
    cache.put(FP, "c3" * 32, np.ones(3, np.float32))
    assert cache.prune() == 0
    cache.prune_after_writes()
    with pytest.raises(MmfuseError, match="read-only"):
        cache.clear()
    assert _contents(tmp_path / "c") == before and cache.stats.writes == 0


def test_a_read_only_cache_in_a_missing_folder_creates_nothing(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path / "nothing", read_only=True)
    cache.put(FP, "a1" * 32, np.ones(3, np.float32))
    assert cache.get(FP, "a1" * 32) is None and not (tmp_path / "nothing").exists()


def test_a_file_in_the_way_turns_the_cache_off_with_one_notice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "f").write_text("a file")
    for root in (tmp_path / "f", tmp_path / "f" / "c"):
        cache = FeatureCache(root)
        for key in ("a1" * 32, "b2" * 32):
            cache.put(FP, key, np.ones(3, np.float32))
            assert cache.get(FP, key) is None
        cache.prune_after_writes()
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"{tmp_path / 'f'} is a file, not a folder" in err
        assert "cache_dir=" in err and cache.stats.writes == 0  # from Python: the keyword
    assert (tmp_path / "f").read_text() == "a file"


def test_a_failing_write_turns_the_cache_off_with_one_notice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """What a read-only folder, a read-only $HOME or a full disk does (chmod does not stop root)."""
    cache = FeatureCache(tmp_path / "c")
    cache.put(FP, "a1" * 32, np.ones(3, np.float32))

    def read_only(*args: Any, **kwargs: Any) -> None:
        raise OSError(30, "Read-only file system", str(tmp_path / "c"))

    monkeypatch.setattr(cache_module.np, "save", read_only)
    for key in ("b2" * 32, "c3" * 32):
        cache.put(FP, key, np.ones(3, np.float32))
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Read-only file system" in err
    assert cache.stats.writes == 1 and _leftovers(tmp_path / "c") == []
    assert cache.get(FP, "a1" * 32) is not None  # what it holds is still served


# --------------------------------------------------------------------------- CLI
def test_cli_cache_info_json_prune_and_clear(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "c"
    cache, size = _filled(root, ["e1" * 32, "e2" * 32, "e3" * 32])
    _age(cache, "e1" * 32, 100)

    assert main(["cache", "info", "--cache-dir", str(root)]) == 0
    out = capsys.readouterr().out
    assert "3 entries" in out and FP in out

    assert main(["cache", "info", "--cache-dir", str(root), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["entries"] == 3 and info["encoders"][0]["fingerprint"] == FP

    max_gb = 2.5 * size / 1024**3  # room for two entries
    assert main(["cache", "prune", "--cache-dir", str(root), "--max-gb", str(max_gb)]) == 0
    assert "pruned 1 " in capsys.readouterr().out
    assert sorted(p.stem for p in _entries(root)) == ["e2" * 32, "e3" * 32]

    assert main(["cache", "clear", "--cache-dir", str(root)]) == 0
    assert "cleared" in capsys.readouterr().out
    assert _entries(root) == []
    assert main(["cache", "info", "--cache-dir", str(root), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["entries"] == 0


def test_cli_cache_info_mentions_leftovers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "c"
    _filled(root, ["f1" * 32])
    (_entries(root)[0].parent / f".{'f2' * 32}.npy.x1y2z3.tmp").write_bytes(b"partial")
    assert main(["cache", "info", "--cache-dir", str(root)]) == 0
    assert "1 leftover temporary file" in capsys.readouterr().out


def test_cli_cache_rejects_unknown_action(tmp_path: Path) -> None:
    assert main(["cache", "shrink", "--cache-dir", str(tmp_path)]) == 2


# ------------------------------------------------- extract_features with a cache
class _Doubling(Preparation):
    """A toy preparation: the file's first byte b as the vector (b, 2b)."""

    def decode(self, value: Any, path: Path | None) -> Any:
        assert path is not None
        self.decoded.append(path.name)  # type: ignore[attr-defined]
        data = path.read_bytes()
        if not data:
            raise DecodeError(f"empty file {path}")
        return float(data[0])

    def finish(self, decoded: Any) -> np.ndarray:
        return np.asarray([decoded, 2 * decoded], dtype=np.float32)


class _Network:
    """A toy frozen network: sums the prepared vector and records what it saw."""

    fingerprint = "toy|toy==1"
    batch_size = 2

    def __init__(self) -> None:
        self.seen: list[int] = []

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.seen.append(len(batch))
        return batch.sum(1, keepdims=True) + np.zeros((len(batch), 3), np.float32)  # (B, 3)


def _toy_prep() -> _Doubling:
    prep = _Doubling("toy", "image", (2,))
    object.__setattr__(prep, "decoded", [])
    return prep


def test_extract_features_hits_the_cache_on_the_second_run(tmp_path: Path) -> None:
    for i in range(5):
        (tmp_path / f"{i}.bin").write_bytes(bytes([i + 1]))
    column = Column([f"{i}.bin" for i in range(5)] + [None], "image", tmp_path)
    cache = FeatureCache(tmp_path / "c")
    first_net, first_prep = _Network(), _toy_prep()
    x1, present1, errors1 = extract_features(
        column, first_prep, first_net, (3,), cache, verbose=False
    )
    assert errors1 == [] and present1.tolist() == [True] * 5 + [False]
    np.testing.assert_array_equal(x1[:, 0], [3, 6, 9, 12, 15, 0])  # (b + 2b) per file
    assert sum(first_net.seen) == 5 and max(first_net.seen) <= 2  # batches of batch_size

    second_net, second_prep = _Network(), _toy_prep()
    x2, present2, _ = extract_features(column, second_prep, second_net, (3,), cache, verbose=False)
    assert second_net.seen == [] and second_prep.decoded == []  # nothing decoded or encoded
    np.testing.assert_array_equal(x2, x1)
    np.testing.assert_array_equal(present2, present1)

    (tmp_path / "3.bin").write_bytes(bytes([50]))  # one file changes
    third_net, third_prep = _Network(), _toy_prep()
    x3, _, _ = extract_features(column, third_prep, third_net, (3,), cache, verbose=False)
    assert third_prep.decoded == ["3.bin"] and third_net.seen == [1]
    np.testing.assert_array_equal(x3[:, 0], [3, 6, 9, 150, 15, 0])


def test_extract_features_encodes_repeated_content_once(tmp_path: Path) -> None:
    (tmp_path / "a.bin").write_bytes(bytes([7]))
    (tmp_path / "copy.bin").write_bytes(bytes([7]))
    (tmp_path / "bad.bin").write_bytes(b"")  # the toy decoder fails on an empty file
    column = Column(["a.bin", "copy.bin", "a.bin", "bad.bin", "bad.bin"], "image", tmp_path)
    net = _Network()
    x, present, errors = extract_features(
        column, _toy_prep(), net, (3,), FeatureCache(tmp_path / "c"), verbose=False
    )
    assert sum(net.seen) == 1  # one distinct readable content
    np.testing.assert_array_equal(x[:3], np.full((3, 3), 21.0))
    assert present.tolist() == [True, True, True, False, False]
    assert [pos for pos, _ in errors] == [3, 4]


def test_extract_features_without_cache_or_with_corruption_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "a.bin").write_bytes(bytes([4]))
    column = Column(["a.bin"], "image", tmp_path)
    x, _, _ = extract_features(column, _toy_prep(), _Network(), (3,), None, verbose=False)
    np.testing.assert_array_equal(x[0], [12, 12, 12])
    cache = FeatureCache(tmp_path / "c")
    x, _, _ = extract_features(
        column, _toy_prep(), _Network(), (3,), cache, alter=lambda pos, v: v * 10, verbose=False
    )
    np.testing.assert_array_equal(x[0], [120, 120, 120])  # corrupted input, not cached
    assert cache.info()["entries"] == 0 and cache.stats.hits == 0
