"""Records on disk: the shard files, the store that writes them, rows read back by index."""

from __future__ import annotations


from pathlib import Path

import numpy as np
import pytest

from mmfuse.data.preprocess import Encoded
from mmfuse.data.record_store import RecordStore, open_records
from mmfuse.data.sharded import ShardedArray, ShardFiles
from mmfuse.errors import MmfuseError


def _shards(tmp_path: Path, sizes: tuple[int, ...]) -> tuple[ShardedArray, np.ndarray]:
    """Raw shards of (rows, 2, 3) float32 whose row r holds r in every cell."""
    whole = np.repeat(np.arange(sum(sizes), dtype=np.float32), 6).reshape(-1, 2, 3)
    paths, start = [], 0
    for i, size in enumerate(sizes):
        paths.append(tmp_path / f"{i}.bin")
        paths[-1].write_bytes(whole[start : start + size].tobytes())
        start += size
    return ShardedArray(ShardFiles(paths, list(sizes), np.dtype(np.float32), (2, 3))), whole


def test_rows_are_read_across_shards_in_the_order_asked(tmp_path: Path) -> None:
    x, whole = _shards(tmp_path, (3, 0, 4, 2))
    assert (len(x), x.shape, x.dtype, x.ndim) == (9, (9, 2, 3), np.float32, 3)
    rows = np.array([8, 0, 3, 2, 3, 6, 1, 2])  # shards 3, 0, 2, 0, 2, 2, 0, 0; one row twice
    np.testing.assert_array_equal(x.take(rows), whole[rows])
    np.testing.assert_array_equal(np.asarray(x), whole)  # runs 0-2, 3-6, 7-8: one read per shard
    np.testing.assert_array_equal(np.concatenate(list(x.chunks(4))), whole)
    assert [len(c) for c in x.chunks(4)] == [4, 4, 1]
    assert x.take(np.array([], dtype=np.int64)).shape == (0, 2, 3)


def test_a_selection_is_a_view_on_the_same_files(tmp_path: Path) -> None:
    x, whole = _shards(tmp_path, (5, 5))
    keep = np.array([True, False] * 5)  # rows 0, 2, 4, 6, 8
    even = x[keep]
    assert isinstance(even, ShardedArray) and even.files is x.files and len(even) == 5
    np.testing.assert_array_equal(even.take(np.array([4, 1])), whole[[8, 2]])
    tail = even[np.array([3, 4])]  # a view of a view: rows 6 and 8
    np.testing.assert_array_equal(np.asarray(tail), whole[[6, 8]])
    np.testing.assert_array_equal(np.asarray(x[2:4]), whole[2:4])


def test_a_truncated_shard_is_an_error(tmp_path: Path) -> None:
    x, whole = _shards(tmp_path, (3,))
    (tmp_path / "0.bin").write_bytes(whole[:2].tobytes())
    with pytest.raises(OSError, match="shorter than its records"):
        x.take(np.array([2]))


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
    assert (store.chunks, store.shard_rows) == (2, [5])  # the empty chunk wrote nothing
    back = open_records(tmp_path / "s")
    assert isinstance(back.inputs["img"], ShardedArray)
    np.testing.assert_array_equal(back.rows, [0, 1, 2, 5, 7])
    np.testing.assert_array_equal(back.targets, [0, 1, 2, 5, 7])
    np.testing.assert_array_equal(back.mask["img"], [True, False, True, False, False])
    for m in ("img", "txt"):
        np.testing.assert_array_equal(np.asarray(back.inputs[m]),
                                      np.concatenate([parts[0].inputs[m], parts[2].inputs[m]]))


def test_shards_begin_every_shard_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mmfuse.data import record_store

    monkeypatch.setattr(record_store, "SHARD_BYTES", 100)
    store = RecordStore(tmp_path / "s", ["img", "txt"])
    for rows in ([0, 1, 2], [3], [4, 5]):  # 3 records x (16 + 24) bytes = 120 >= 100: a new shard
        store.append(_chunk(rows))
    store.finish()
    assert store.shard_rows == [3, 3]
    back = open_records(tmp_path / "s")
    np.testing.assert_array_equal(back.inputs["txt"].take(np.array([5, 2, 3])), [[5] * 3, [2] * 3, [3] * 3])


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
