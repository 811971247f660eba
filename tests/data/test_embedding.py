"""Tests for mmfuse.data.embedding: parsing lists, JSON strings and .npy files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmfuse.data.embedding import looks_like_embedding, parse_embedding
from mmfuse.errors import DecodeError


@pytest.mark.parametrize(
    "value",
    [[0.5, -1, 2], (0.5, -1, 2), np.array([0.5, -1.0, 2.0]), "[0.5, -1, 2]", "  [0.5,-1,2] "],
)
def test_in_cell_values(tmp_path: Path, value: object) -> None:
    out = parse_embedding(value, tmp_path)
    assert out.dtype == np.float32 and out.shape == (3,)
    np.testing.assert_array_equal(out, [0.5, -1.0, 2.0])


def test_npy_relative_and_absolute(tmp_path: Path) -> None:
    (tmp_path / "emb").mkdir()
    np.save(tmp_path / "emb" / "a.npy", np.array([1, 2, 3, 4], dtype=np.int32))
    out = parse_embedding("emb/a.npy", tmp_path)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [1, 2, 3, 4])
    absolute = str(tmp_path / "emb" / "a.npy")
    np.testing.assert_array_equal(parse_embedding(absolute, Path("/elsewhere")), [1, 2, 3, 4])


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("[0.1, 0.2", "not valid JSON"),
        ("[1, NaN]", "non-finite"),
        ([1.0, float("inf")], "non-finite"),
        ("[[1, 2], [3, 4]]", r"must be 1-D, got shape \(2, 2\)"),
        ("[]", "empty"),
        ('["a", "b"]', "must hold numbers"),
        ("[[1], [2, 3]]", "not a numeric array"),
        ("hello", "neither a JSON list nor a .npy path"),
        (3.5, "got 3.5"),
        (None, "got None"),
    ],
)
def test_bad_values(tmp_path: Path, value: object, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        parse_embedding(value, tmp_path)


def test_bad_npy_files(tmp_path: Path) -> None:
    with pytest.raises(DecodeError, match="not found.*missing.npy"):
        parse_embedding("missing.npy", tmp_path)
    np.save(tmp_path / "m.npy", np.zeros((2, 3)))
    with pytest.raises(DecodeError, match="must be 1-D"):
        parse_embedding("m.npy", tmp_path)
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(DecodeError, match="cannot read embedding file .*obj.npy"):
        parse_embedding("obj.npy", tmp_path)
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    with pytest.raises(DecodeError, match="junk.npy"):
        parse_embedding("junk.npy", tmp_path)
    np.save(tmp_path / "nan.npy", np.array([1.0, np.nan]))
    with pytest.raises(DecodeError, match="non-finite"):
        parse_embedding("nan.npy", tmp_path)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("[0.1, 0.2]", True),
        (" [1, 2, 3] ", True),
        ("vectors/x.NPY", True),
        ([0.1, 0.2], True),
        (np.arange(4.0), True),
        ("[0.1]", False),  # one number is a scalar, not an embedding
        ('["a", "b"]', False),
        ("[true, false]", False),
        ("[1, 2", False),
        ("[[1, 2]]", False),
        ("a cat [1, 2]", False),
        ("photo.png", False),
        (1.5, False),
        (None, False),
        (np.zeros((2, 2)), False),
    ],
)
def test_looks_like_embedding(value: object, expected: bool) -> None:
    assert looks_like_embedding(value) is expected
