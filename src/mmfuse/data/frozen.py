"""Frozen pretrained features of one column: cache lookups first, then decode + encode misses.

For every non-empty cell: hash its content (file bytes, text or in-memory media), look the key
up in the feature cache; decode and prepare only the misses (in threads, one batch ahead of
the network), run the frozen network on full batches without gradients, and store the results.
A second ``fit`` on the same files therefore never decodes or re-encodes media.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from mmfuse._progress import track
from mmfuse.data.cache import FeatureCache, content_key
from mmfuse.data.preparations import Preparation
from mmfuse.errors import DecodeError


class Extractor(Protocol):
    """A frozen network: prepared inputs (B, *item) -> features (B, ...)."""

    fingerprint: str
    batch_size: int

    def __call__(self, batch: np.ndarray) -> np.ndarray: ...


@dataclass
class Column:
    """One column's cells and how to read them.

    Attributes:
        values: The cells, in record order.
        kind: The column's kind ("text", or "image" / "audio" / "video" for media: file
            paths, or in-memory images and audio).
        base_dir: Folder that relative paths resolve against.
        missing_files: "error" or "missing" (see ``Preprocessor.transform``).
        audio_track: The cells are videos whose audio track is wanted.
    """

    values: list[Any]
    kind: str
    base_dir: Path
    missing_files: str = "error"
    audio_track: bool = False


def extract_features(
    column: Column,
    prep: Preparation,
    extractor: Extractor,
    out_shape: tuple[int, ...],
    cache: FeatureCache | None,
    alter: Callable[[int, Any], Any] | None = None,
    num_threads: int = 2,
    label: str = "",
    verbose: bool = True,
) -> tuple[np.ndarray, np.ndarray, list[tuple[int, str]]]:
    """Features of every cell.

    Args:
        column: The cells.
        prep: The network's input preparation.
        extractor: The frozen network.
        out_shape: Feature shape of one item.
        cache: Feature cache (None: compute everything).
        alter: Optional ``(position, decoded) -> decoded`` corruption; corrupted inputs are
            neither read from nor written to the cache.
        num_threads: Decoding threads.
        label: Progress description.
        verbose: Show progress.

    Returns:
        (features (N, *out_shape), present (N,) bool, [(position, error message)]).
    """
    n = len(column.values)
    x = np.zeros((n, *out_shape), dtype=np.float32)
    present = np.zeros(n, dtype=bool)
    sources, errors = _checked_sources(column)
    use_cache = cache is not None and alter is None
    fingerprint = f"{extractor.fingerprint}|{prep.fingerprint}"  # network, versions, preprocessing
    keyed = _keys(sources, num_threads) if alter is None else {}
    copies: dict[int, list[int]] = {}  # first position of a content -> later positions with it
    first_of: dict[str, int] = {}
    todo = []
    for pos in sources:
        key = keyed.get(pos)
        if key is not None and key in first_of:  # the same file or text again: encode once
            copies[first_of[key]].append(pos)
            continue
        if key is not None:
            first_of[key] = pos
            copies[pos] = []
        hit = cache.get(fingerprint, key) if use_cache and cache is not None and key else None
        if hit is not None and hit.shape == out_shape:
            x[pos], present[pos] = hit, True
        else:
            todo.append(pos)

    def prepare(pos: int) -> np.ndarray | str:
        src = sources[pos]
        try:
            decoded = prep.decode(src, src if isinstance(src, Path) else None)
            if alter is not None:
                decoded = alter(pos, decoded)
            return prep.finish(decoded)
        except DecodeError as err:
            return str(err)

    batches = [todo[i : i + extractor.batch_size] for i in range(0, len(todo), extractor.batch_size)]
    with ThreadPoolExecutor(max_workers=max(1, num_threads)) as pool:
        ahead: list[Future[np.ndarray | str]] | None = None
        done = track(_items(batches), len(todo), label or "encoding", verbose and bool(todo))
        for i, batch in enumerate(batches):
            current = ahead or [pool.submit(prepare, pos) for pos in batch]
            ahead = [pool.submit(prepare, pos) for pos in batches[i + 1]] if i + 1 < len(batches) else None
            results = [f.result() for f in current]
            good = [(pos, r) for pos, r in zip(batch, results) if not isinstance(r, str)]
            errors += [(pos, r) for pos, r in zip(batch, results) if isinstance(r, str)]
            if good:
                feats = extractor(np.stack([r for _, r in good]))
                for (pos, _), f in zip(good, feats):
                    x[pos], present[pos] = f, True
                    if use_cache and cache is not None and pos in keyed:
                        cache.put(fingerprint, keyed[pos], f)
            for _ in batch:
                next(done, None)
        for _ in done:  # finishes the progress display
            pass
    for first, later in copies.items():
        for pos in later:
            x[pos], present[pos] = x[first], present[first]
            errors += [(pos, reason) for p, reason in errors if p == first]
    if use_cache and cache is not None and todo:
        cache.prune_after_writes()
    return x, present, sorted(errors)


def _checked_sources(column: Column) -> tuple[dict[int, Any], list[tuple[int, str]]]:
    """Position -> checked text, existing file or in-memory media, and the bad cells, by the
    same validation as every other encoder path (``checked_cell``); missing modalities are in
    neither."""
    from mmfuse.data.cells import checked_cell

    sources: dict[int, Any] = {}
    errors: list[tuple[int, str]] = []
    for pos, value in enumerate(column.values):
        try:
            source = checked_cell(
                value, column.kind, column.base_dir, column.missing_files, column.audio_track
            )
        except DecodeError as err:
            errors.append((pos, str(err)))
            continue
        if source is not None:
            sources[pos] = source
    return sources, errors


def _items(batches: list[list[int]]) -> Any:
    for batch in batches:
        yield from batch


def _keys(sources: dict[int, Any], num_threads: int) -> dict[int, str]:
    """Content key per position; an unreadable file or image gets none (its decoder reports
    why). Files are hashed in threads; in-memory cells (one object may fill several cells)
    in this thread."""

    key = source_key
    files = {pos: src for pos, src in sources.items() if isinstance(src, Path)}
    with ThreadPoolExecutor(max_workers=max(1, num_threads)) as pool:
        keys = dict(zip(files, pool.map(key, files.values())))
    keys.update({pos: key(src) for pos, src in sources.items() if pos not in files})
    return {pos: k for pos, k in keys.items() if k is not None}


def source_key(source: Any) -> str | None:
    """The cache key of a checked cell (a file, a text or in-memory media); None when it cannot
    be read (its decoder reports why)."""
    try:
        if isinstance(source, Path):
            return content_key(path=source)
        return content_key(text=source) if isinstance(source, str) else content_key(value=source)
    except (OSError, ValueError):  # a broken file, a closed or truncated PIL image
        return None
