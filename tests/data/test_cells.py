"""Cell helpers: what counts as empty, text checks, paths, embedding widths."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from mmfuse.data.cells import as_text, checked_dim, checked_text, is_empty, resolve_path
from mmfuse.errors import DecodeError


@pytest.mark.parametrize("value", [None, math.nan, "", "   \t"])
def test_empty_cells(value: object) -> None:
    assert is_empty(value)


@pytest.mark.parametrize("value", [0, 0.0, "0", " a ", False])
def test_cells_with_a_value(value: object) -> None:
    assert not is_empty(value)


def test_text_is_normalised_and_bad_bytes_are_refused() -> None:
    assert as_text(12) == "12"
    assert checked_text("Cafe\u0301") == "Caf\u00e9"  # NFC: one code point for é
    bad = b"ok \xff".decode("utf-8", "surrogateescape")
    with pytest.raises(DecodeError, match="not valid UTF-8"):
        checked_text(bad)


def test_paths_resolve_against_the_table_folder(tmp_path: Path) -> None:
    assert resolve_path(" images/a.png ", tmp_path) == tmp_path / "images/a.png"
    assert resolve_path("/abs/a.png", tmp_path) == Path("/abs/a.png")


def test_embedding_width_is_checked() -> None:
    v = np.zeros(3, np.float32)
    assert checked_dim(v, 3) is v
    with pytest.raises(DecodeError, match="embedding has 3 values; expected 4"):
        checked_dim(v, 4)
