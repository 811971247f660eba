"""Random records, for checking a graph when no data is given.

Each column of the model's schema gets synthetic cells of its kind: noise pictures of random
sizes, texts of random words (from the model's own vocabulary where it learned one), tones in
noise, short clips (with a sound track where the model listens to one), numbers around the
training mean and categories from the training vocabulary plus an unseen one; some cells are
left empty. The model's own preprocessing then prepares them, so the graph is checked on
inputs of exactly the form it is fed, missing modalities included.

The first record has every cell filled and texts long enough to fill every token position: an
export traces its example, and a traced graph keeps the lengths the example has.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmfuse.data.preprocess import Encoded, FeatureSource, Preprocessor
from mmfuse.data.readers import Table

MISSING_RATE = 0.15
"""Share of cells left empty (after the first record)."""
LONG_TEXT_WORDS = 300
"""Words of a text that fills every token position of any text input mmfuse prepares."""

Cell = Callable[[np.random.Generator, bool], Any]
"""(generator, make it full-size) -> one synthetic cell."""


def random_records(pre: Preprocessor, n: int, seed: int = 0) -> Encoded:
    """``n`` synthetic records prepared by ``pre`` (no feature cache is read or written)."""
    pre = pre.with_features(FeatureSource(dict(pre.extractors), None))
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory(prefix="mmfuse-export-") as scratch:
        makers = {c: _cell_maker(pre, c, k, Path(scratch)) for c, k in pre.schema.kinds.items()}
        columns = {
            c: [_cell(make, rng, first=i == 0) for i in range(n)] for c, make in makers.items()
        }
        table = Table(pd.DataFrame(columns), Path(scratch), "<random records>")
        return pre.transform(table, with_target=False, verbose=False)


def _cell(make: Cell, rng: np.random.Generator, first: bool) -> Any:
    """A cell: full-size in the first record, else empty with probability ``MISSING_RATE``."""
    if first:
        return make(rng, True)
    return None if rng.random() < MISSING_RATE else make(rng, False)


def _cell_maker(pre: Preprocessor, column: str, kind: str, scratch: Path) -> Cell:
    """The synthetic cells of one column."""
    if kind == "image":
        return lambda rng, full: rng.integers(0, 256, (*rng.integers(8, 65, 2), 3), dtype=np.uint8)
    if kind == "text":
        vocabulary = pre.vocabularies.get(column)
        words = vocabulary.tokens[2:] if vocabulary is not None else []
        return lambda rng, full: _text(
            rng, words, LONG_TEXT_WORDS if full else int(rng.integers(1, 40))
        )
    if kind == "audio":
        rate = pre.config.sample_rate
        return lambda rng, full: (_tone(rng, rate, float(rng.uniform(0.2, 2.0))), rate)
    if kind == "video":
        track = column in pre.schema.audio_tracks
        return lambda rng, full: _clip(rng, scratch, track, pre.config.sample_rate)
    if kind == "embedding":
        width = pre.embedding_dims[column]
        return lambda rng, full: rng.standard_normal(width).astype(np.float32)
    return _tabular_maker(pre, column, kind)


def _tabular_maker(pre: Preprocessor, column: str, kind: str) -> Cell:
    stats = pre.tabular.to_dict() if pre.tabular is not None else {}
    if kind == "numeric":
        i = stats["numeric"].index(column)
        mean, std = stats["means"][i], stats["stds"][i]
        return lambda rng, full: float(mean + std * rng.standard_normal())
    vocabulary = stats["vocabularies"][stats["categorical"].index(column)]
    choices = [*vocabulary, "an unseen category"]
    return lambda rng, full: str(rng.choice(choices))


def _text(rng: np.random.Generator, words: list[str], count: int) -> str:
    """``count`` words: from ``words`` where given, else made-up lowercase ones."""
    if words:
        return " ".join(str(w) for w in rng.choice(words, count))
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    return " ".join("".join(rng.choice(letters, int(rng.integers(2, 9)))) for _ in range(count))


def _tone(rng: np.random.Generator, rate: int, seconds: float) -> np.ndarray:
    """A sine tone of random pitch in white noise, mono float32."""
    t = np.arange(int(seconds * rate)) / rate
    tone = rng.uniform(0.1, 0.8) * np.sin(2 * np.pi * rng.uniform(100, 2000) * t)
    return (tone + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


def _clip(rng: np.random.Generator, scratch: Path, track: bool, rate: int) -> bytes:
    """The bytes of a short 16x16 MP4 of noise frames, with a tone as its sound when ``track``."""
    from mmfuse.datasets.video_file import encode_mp4

    frames = rng.integers(0, 256, (int(rng.integers(2, 6)), 16, 16, 3), dtype=np.uint8)
    sound = _tone(rng, rate, 4096 / rate) if track else None
    path = scratch / f"clip-{rng.integers(1 << 62)}.mp4"
    encode_mp4(path, frames, sound, sample_rate=rate)
    data = path.read_bytes()
    path.unlink()
    return data
