"""Decoding one table cell into a modality's array: paths, text, embeddings and media files.

``cell_decoder`` picks, per modality, the network's own preparation (pretrained encoders), the
text vocabulary, the embedding parser or the image / video / audio loader, and handles missing
files; the small helpers say what counts as an empty cell and how text is checked.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mmfuse.errors import DecodeError

if TYPE_CHECKING:
    from mmfuse.data.preprocess import Preprocessor

Corruption = Callable[[str, Any, np.random.Generator], Any]
"""(modality, decoded value, rng) -> corrupted value; see ``Preprocessor.transform``."""


def resolve_path(value: Any, base_dir: Path) -> Path:
    """A media path from a cell, relative paths resolved against ``base_dir``."""
    path = Path(str(value).strip()).expanduser()
    return path if path.is_absolute() else base_dir / path


def is_empty(value: Any) -> bool:
    """None, NaN or blank text: a missing value."""
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def as_text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def checked_text(value: Any) -> str:
    """The cell as NFC text; DecodeError for bytes that were not valid UTF-8."""
    text = as_text(value)
    if any("\udc80" <= ch <= "\udcff" for ch in text):
        raise DecodeError("the text is not valid UTF-8")
    return unicodedata.normalize("NFC", text)


def checked_dim(vector: np.ndarray, dim: int) -> np.ndarray:
    if vector.shape != (dim,):
        raise DecodeError(f"embedding has {vector.shape[0]} values; expected {dim}")
    return vector


def cell_decoder(
    pre: Preprocessor, name: str, kind: str, base_dir: Path, missing_files: str, corrupt: Corruption | None
) -> Callable[[Any, Any], np.ndarray | None]:
    """(cell value, rng) -> the modality's array, None for a missing file (with
    ``missing_files='missing'``); raises DecodeError for a bad cell. ``corrupt`` alters the
    decoded value before the last step (robustness evaluation)."""
    c = pre.config

    def alter(value: Any, rng: Any) -> Any:
        return value if corrupt is None else corrupt(name, value, rng)

    if name in pre.pretrained:  # the network's own preprocessing
        from mmfuse.data.preparations import get_preparation

        prep = get_preparation(pre.pretrained[name].preparation)
        if prep.kind == "text":
            return lambda v, r: prep.finish(alter(checked_text(v), r))
        load = lambda p, r: prep.finish(alter(prep.decode(None, p), r))  # noqa: E731
    elif kind == "text":
        vocab = pre.vocabularies[name]
        return lambda v, r: vocab.encode(alter(checked_text(v), r), c.text_max_length)
    elif kind == "embedding":
        from mmfuse.data.embedding import parse_embedding

        dim = pre.embedding_dims[name]
        return lambda v, r: alter(checked_dim(parse_embedding(v, base_dir), dim), r)
    else:
        load = _media_loader(pre, name, kind, alter)

    def decode(value: Any, rng: Any) -> np.ndarray | None:
        path = resolve_path(value, base_dir)
        if not path.exists():
            if missing_files == "missing":
                return None
            raise DecodeError(f"file not found: {path}")
        return load(path, rng)

    return decode


def _media_loader(
    pre: Preprocessor, name: str, kind: str, alter: Callable[[Any, Any], Any]
) -> Callable[[Path, Any], np.ndarray | None]:
    from mmfuse.data.image import load_image, normalize_image

    c = pre.config
    if kind == "image":
        return lambda p, r: normalize_image(alter(load_image(p, c.image_size), r))
    if kind == "video":
        from mmfuse.data.video import load_video_frames

        frames = lambda p: load_video_frames(p, c.video_frames, c.video_size)  # noqa: E731
        return lambda p, r: normalize_image(alter(frames(p), r))
    from mmfuse.data.audio import load_audio, log_mel_spectrogram

    is_track = name in pre.track_modalities()

    def audio(path: Path, rng: Any) -> np.ndarray | None:
        if is_track:
            from mmfuse.data.video import has_audio_track

            if not has_audio_track(path):
                return None
        wave = alter(load_audio(path, c.sample_rate), rng)
        return log_mel_spectrogram(
            wave, c.sample_rate, n_mels=c.n_mels, num_frames=c.audio_frames
        )

    return audio
