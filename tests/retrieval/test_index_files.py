"""The index directory's files read back with their header checks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mmfuse.errors import MmfuseError
from mmfuse.retrieval.index_files import FORMAT, VERSION, read_header, read_vectors


def _header(tmp_path: Path, **changes: object) -> Path:
    header = {"format": FORMAT, "version": VERSION, "kind": "exact", "count": 2, "dim": 3,
              "parameters": {}, "info": {}, **changes}  # fmt: skip
    (tmp_path / "index.json").write_text(json.dumps(header))
    return tmp_path


def test_a_good_header_reads_back(tmp_path: Path) -> None:
    assert read_header(_header(tmp_path))["count"] == 2


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"format": "other"}, "is not an mmfuse index header"),
        ({"version": 99}, "has index version 99; expected 1"),
        ({"kind": "lsh"}, "unknown kind 'lsh'"),
        ({"count": -1}, "invalid count"),
        ({"kind": "hnsw"}, "lacks parameters.efSearch"),
    ],
)
def test_bad_headers_say_what_is_wrong(tmp_path: Path, changes: dict, message: str) -> None:
    with pytest.raises(MmfuseError, match=message):
        read_header(_header(tmp_path, **changes))


def test_missing_directory_and_header(tmp_path: Path) -> None:
    with pytest.raises(MmfuseError, match="does not exist"):
        read_header(tmp_path / "nowhere")
    with pytest.raises(MmfuseError, match="not an mmfuse index"):
        read_header(tmp_path)


def test_vectors_must_match_the_header(tmp_path: Path) -> None:
    np.save(tmp_path / "vectors.npy", np.zeros((2, 3), np.float32))
    assert read_vectors(tmp_path / "vectors.npy", 2, 3).shape == (2, 3)
    with pytest.raises(MmfuseError, match="incomplete or corrupted"):
        read_vectors(tmp_path / "vectors.npy", 5, 3)
