"""Records on disk: the shard files, the store that writes them, rows read back by index."""

from __future__ import annotations

import mmap

from pathlib import Path

import numpy as np
import pytest

from mmfuse.data import sharded
from mmfuse.data.preprocess import Encoded
from mmfuse.data.record_store import RecordStore, open_records
from mmfuse.data.sharded import ShardedArray, ShardFiles
from mmfuse.errors import MmfuseError


def _shards(tmp_path: Path, sizes: tuple[int, ...]) -> tuple[ShardedArray, np.ndarray]:
    """Shards of (rows, 2, 3) float32 whose row r holds r in every cell."""
    whole = np.repeat(np.arange(sum(sizes), dtype=np.float32), 6).reshape(-1, 2, 3)
    paths, start = [], 0
    for i, size in enumerate(sizes):
        paths.append(tmp_path / f"{i}.npy")
        np.save(paths[-1], whole[start : start + size])
        start += size
    return ShardedArray(ShardFiles.open(paths)), whole


def test_rows_are_read_across_shards_in_the_order_asked(tmp_path: Path) -> None:
    x, whole = _shards(tmp_path, (3, 0, 4, 2))
    assert (len(x), x.shape, x.dtype, x.ndim) == (9, (9, 2, 3), np.float32, 3)
    rows = np.array([8, 0, 3, 2, 3, 6])  # shards 3, 0, 2, 0, 2, 2; one row twice
    np.testing.assert_array_equal(x.take(rows), whole[rows])
    np.testing.assert_array_equal(np.asarray(x), whole)
    np.testing.assert_array_equal(np.concatenate(list(x.chunks(4))), whole)
    assert [len(c) for c in x.chunks(4)] == [4, 4, 1]


def test_a_selection_is_a_view_on_the_same_files(tmp_path: Path) -> None:
    x, whole = _shards(tmp_path, (5, 5))
    keep = np.array([True, False] * 5)  # rows 0, 2, 4, 6, 8
    even = x[keep]
    assert isinstance(even, ShardedArray) and even.files is x.files and len(even) == 5
    np.testing.assert_array_equal(even.take(np.array([4, 1])), whole[[8, 2]])
    tail = even[np.array([3, 4])]  # a view of a view: rows 6 and 8
    np.testing.assert_array_equal(np.asarray(tail), whole[[6, 8]])
    np.testing.assert_array_equal(np.asarray(x[2:4]), whole[2:4])


def test_pages_are_released_after_enough_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    x, _ = _shards(tmp_path, (4, 4))
    released = []
    monkeypatch.setattr(ShardFiles, "release", lambda self: released.append(self.touched))
    page = mmap.PAGESIZE  # a 24-byte row still touches a whole page
    monkeypatch.setattr(sharded, "RELEASE_BYTES", 5 * page)
    x.take(np.arange(3))  # 3 pages: below 5
    assert released == []
    x.take(np.arange(2))  # 2 more: 5 pages
    assert released == [5 * page]


def _chunk(rows: list[int], targets: bool = True) -> Encoded:
    n = len(rows)
    r = np.array(rows)
    return Encoded({"img": np.arange(n * 4, dtype=np.float32).reshape(n, 2, 2) + 100 * r[:, None, None],
                    "txt": np.tile(r[:, None], (1, 3)).astype(np.int64)},
                   {"img": r % 2 == 0, "txt": np.ones(n, dtype=bool)}, r.astype(np.int64),
                   r.astype(np.float32) if targets else None)


def test_the_store_gives_back_what_was_appended(tmp_path: Path) -> None:
    store = RecordStore(tmp_path / "s", ["txt", "img"])
    parts = [_chunk([0, 1, 2]), _chunk([]), _chunk([5, 7])]
    for part in parts:
        store.append(part)
    store.finish()
    assert store.shards == 2  # the empty chunk wrote nothing
    back = open_records(tmp_path / "s")
    assert isinstance(back.inputs["img"], ShardedArray)
    np.testing.assert_array_equal(back.rows, [0, 1, 2, 5, 7])
    np.testing.assert_array_equal(back.targets, [0, 1, 2, 5, 7])
    np.testing.assert_array_equal(back.mask["img"], [True, False, True, False, False])
    for m in ("img", "txt"):
        np.testing.assert_array_equal(np.asarray(back.inputs[m]),
                                      np.concatenate([parts[0].inputs[m], parts[2].inputs[m]]))


def test_an_unfinished_store_is_refused(tmp_path: Path) -> None:
    store = RecordStore(tmp_path / "s", ["img"])
    store.append(_chunk([1]))
    with pytest.raises(MmfuseError, match="no finished record store"):
        open_records(tmp_path / "s")


def test_chunks_with_and_without_targets_do_not_mix(tmp_path: Path) -> None:
    store = RecordStore(tmp_path / "s", ["img", "txt"])
    store.append(_chunk([1]))
    with pytest.raises(ValueError, match="targets"):
        store.append(_chunk([2], targets=False))
