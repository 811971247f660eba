"""Precomputed embeddings in a table cell: a list, a JSON list string or a ``.npy`` path."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mmfuse.errors import DecodeError


def _to_vector(values: object, source: str) -> np.ndarray:
    """Check and convert array-like values to a finite 1-D float32 vector."""
    try:
        array = np.asarray(values)
    except (ValueError, TypeError) as err:  # ragged nested lists
        raise DecodeError(f"embedding from {source} is not a numeric array: {err}") from err
    if array.dtype.kind not in "biuf":
        raise DecodeError(
            f"embedding from {source} must hold numbers, got dtype {array.dtype}"
        )
    if array.ndim != 1:
        raise DecodeError(f"embedding from {source} must be 1-D, got shape {array.shape}")
    if array.size == 0:
        raise DecodeError(f"embedding from {source} is empty")
    vector = array.astype(np.float32)
    if not np.isfinite(vector).all():
        raise DecodeError(f"embedding from {source} contains non-finite values (NaN or inf)")
    return vector


def _load_npy(path: Path) -> np.ndarray:
    """Load a ``.npy`` file without pickle support."""
    if not path.is_file():
        raise DecodeError(f"embedding file not found: {path}")
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise DecodeError(f"cannot read embedding file {path}: {err}") from err


def parse_embedding(value: object, base_dir: Path) -> np.ndarray:
    """Read one embedding cell.

    Args:
        value: A list, tuple or NumPy array of numbers; a JSON list string such as
            ``"[0.1, 0.2]"``; or a path to a ``.npy`` file holding a 1-D array, relative
            to ``base_dir`` unless absolute.
        base_dir: Folder relative paths are resolved against (the data file's folder).

    Returns:
        float32 array of shape (D,).

    Raises:
        DecodeError: Bad JSON, not numbers, not 1-D, empty, non-finite values, a missing or
            unreadable ``.npy`` file, or any other kind of value.
    """
    if isinstance(value, (list, tuple, np.ndarray)):
        return _to_vector(value, "a sequence")
    if not isinstance(value, str):
        raise DecodeError(
            f"embedding must be a list, a JSON list string or a .npy path, got {value!r:.80}"
        )
    text = value.strip()
    if text.startswith("["):
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as err:
            raise DecodeError(f"embedding {text!r:.80} is not valid JSON: {err}") from err
        return _to_vector(parsed, f"JSON {text!r:.80}")
    if text.lower().endswith(".npy"):
        path = base_dir / text
        return _to_vector(_load_npy(path), str(path))
    raise DecodeError(f"embedding {text!r:.80} is neither a JSON list nor a .npy path")


def _is_number_list(values: Sequence[object]) -> bool:
    """A flat sequence of at least two ints/floats (bools excluded)."""
    return len(values) >= 2 and all(
        isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
        for v in values
    )


def looks_like_embedding(value: object) -> bool:
    """Whether a cell looks like an embedding, for schema inference.

    True for a string holding a JSON list of at least two numbers, a string ending in
    ``.npy``, or a 1-D list/tuple/array of at least two numbers. The values are not checked
    for finiteness here; :func:`parse_embedding` does that.
    """
    if isinstance(value, np.ndarray):
        return value.ndim == 1 and value.size >= 2 and value.dtype.kind in "iuf"
    if isinstance(value, (list, tuple)):
        return _is_number_list(value)
    if not isinstance(value, str):
        return False
    text = value.strip()
    if text.lower().endswith(".npy"):
        return True
    if not (text.startswith("[") and text.endswith("]")):
        return False
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        return False
    return isinstance(parsed, list) and _is_number_list(parsed)
