"""Decoding one table cell into a modality's array: paths, text, embeddings and media files.

``checked_cell`` is the one validation every cell passes on every encoder path (from-scratch,
fine-tuned and frozen pretrained): empty cells, text that is not UTF-8, URLs, missing files and
folders are decided there, with the same message everywhere. ``cell_decoder`` then picks, per
modality, the network's own preparation (pretrained encoders), the text vocabulary, the
embedding parser or the image / video / audio loader.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mmfuse.errors import DecodeError

if TYPE_CHECKING:
    from mmfuse.data.preprocess import Preprocessor

Corruption = Callable[[str, Any, np.random.Generator], Any]
"""(modality, decoded value, rng) -> corrupted value; see ``Preprocessor.transform``."""


URL_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
"""A cell that starts like ``http://`` or ``s3://``: a URL, never fetched."""
_SURROGATES = re.compile("[\udc80-\udcff]")  # undecodable bytes, as read by surrogateescape


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


def printable(text: str) -> str:
    """``text`` with each undecodable byte (a lone surrogate) written as ``\\xNN``."""
    return _SURROGATES.sub(lambda m: f"\\x{ord(m.group()) - 0xDC00:02x}", text)


def checked_text(value: Any) -> str:
    """The cell as NFC text; DecodeError for bytes that were not valid UTF-8.

    Tables are read as UTF-8 with undecodable bytes kept as lone surrogates (U+DC80-U+DCFF,
    Python's ``surrogateescape``); a cell holding one is refused here.
    """
    text = as_text(value)
    first = _SURROGATES.search(text)
    if first is not None:
        bad = _SURROGATES.findall(text)
        shown = " ".join(f"0x{ord(ch) - 0xDC00:02x}" for ch in bad[:4])
        shown += " ..." if len(bad) > 4 else ""
        raise DecodeError(
            f"the text is not valid UTF-8 (byte(s) {shown} at character {first.start()}); "
            "save the file as UTF-8 (it looks like Latin-1 or another legacy encoding)"
        )
    return unicodedata.normalize("NFC", text)


def valid_texts(values: Iterable[Any]) -> Iterator[str]:
    """The checked text of every non-empty, valid cell (bad ones are reported by ``transform``)."""
    for value in values:
        try:
            text = checked_cell(value, "text", Path("."))
        except DecodeError:
            continue
        if text is not None:
            yield text


def checked_cell(
    value: Any, kind: str, base_dir: Path, missing_files: str = "error", audio_track: bool = False
) -> Any:
    """The one check every cell passes before any encoder (from-scratch or pretrained) sees it.

    Args:
        value: The cell.
        kind: The column's kind ("text", "embedding", "image", "audio", "video").
        base_dir: Folder that relative media paths resolve against.
        missing_files: "error" (a missing media file is a bad cell) or "missing" (a missing
            modality).
        audio_track: The cell is a video whose audio track is wanted; a video without one
            is a missing modality.

    Returns:
        None for a missing modality; the NFC text for text; an existing local path for media;
        the value itself for embeddings (their parser checks them).

    Raises:
        DecodeError: Text that is not valid UTF-8; a URL, a missing file or a folder in a
            media column. The message says what to do.
    """
    if is_empty(value):
        return None
    if kind == "text":
        return checked_text(value)
    if kind == "embedding":
        return value
    path = checked_path(value, kind, base_dir, missing_files)
    if path is not None and audio_track:
        from mmfuse.data.video import has_audio_track

        return path if has_audio_track(path) else None
    return path


def checked_path(
    value: Any, kind: str, base_dir: Path, missing_files: str = "error"
) -> Path | None:
    """The existing local file (or, for video, frame folder) a media cell names; None for a
    missing file with ``missing_files="missing"``. Nothing is ever downloaded."""
    text = as_text(value).strip()
    if URL_PATTERN.match(text):
        raise DecodeError(
            f"{text!r:.200} is a URL; mmfuse reads local files only and makes no network "
            "requests: download the file and put its local path in the column"
        )
    path = resolve_path(text, base_dir)
    try:
        exists, is_dir = path.exists(), path.is_dir()
    except OSError as err:  # a name too long for the file system, a permission error, ...
        raise DecodeError(f"cannot access {kind} file {path}: {err.strerror or err}") from err
    if not exists:
        if missing_files == "missing":
            return None
        raise DecodeError(
            f"file not found: {path}; fix the path (a relative path starts at the data "
            f"file's folder, {base_dir}) or pass --missing-files missing to treat it as a "
            f"missing {kind}"
        )
    if is_dir and kind != "video":
        raise DecodeError(
            f"{path} is a folder, not an {kind} file; put the path of a file in the column"
        )
    return path


def checked_dim(vector: np.ndarray, dim: int) -> np.ndarray:
    if vector.shape != (dim,):
        raise DecodeError(f"embedding has {vector.shape[0]} values; expected {dim}")
    return vector


def cell_decoder(
    pre: Preprocessor,
    name: str,
    kind: str,
    base_dir: Path,
    missing_files: str,
    corrupt: Corruption | None,
) -> Callable[[Any, Any], np.ndarray | None]:
    """(cell value, rng) -> the modality's array, None for a missing modality (an empty cell,
    a video without sound for an audio track, a missing file with ``missing_files='missing'``);
    raises DecodeError for a bad cell. Every cell first passes :func:`checked_cell`.
    ``corrupt`` alters the decoded value before the last step (robustness evaluation)."""
    track = name in pre.track_modalities()
    finish = _finisher(pre, name, kind, base_dir, corrupt)

    def decode(value: Any, rng: Any) -> np.ndarray | None:
        cell = checked_cell(value, "video" if track else kind, base_dir, missing_files, track)
        return None if cell is None else finish(cell, rng)

    return decode


def _finisher(
    pre: Preprocessor, name: str, kind: str, base_dir: Path, corrupt: Corruption | None
) -> Callable[[Any, Any], np.ndarray]:
    """(checked cell, rng) -> the modality's array."""
    c = pre.config

    def alter(value: Any, rng: Any) -> Any:
        return value if corrupt is None else corrupt(name, value, rng)

    if name in pre.pretrained:  # the network's own preprocessing
        from mmfuse.data.preparations import get_preparation

        prep = get_preparation(pre.pretrained[name].preparation)
        if prep.kind == "text":
            return lambda v, r: prep.finish(alter(prep.decode(v, None), r))
        return lambda p, r: prep.finish(alter(prep.decode(None, p), r))
    if kind == "text":
        vocab = pre.vocabularies[name]
        return lambda v, r: vocab.encode(alter(v, r), c.text_max_length)
    if kind == "embedding":
        from mmfuse.data.embedding import parse_embedding

        dim = pre.embedding_dims[name]
        return lambda v, r: alter(checked_dim(parse_embedding(v, base_dir), dim), r)
    return _media_loader(pre, kind, alter)


def _media_loader(
    pre: Preprocessor, kind: str, alter: Callable[[Any, Any], Any]
) -> Callable[[Path, Any], np.ndarray]:
    from mmfuse.data.image import load_image, normalize_image

    c = pre.config
    if kind == "image":
        return lambda p, r: normalize_image(alter(load_image(p, c.image_size), r))
    if kind == "video":
        from mmfuse.data.video import load_video_frames

        frames = lambda p: load_video_frames(p, c.video_frames, c.video_size)  # noqa: E731
        return lambda p, r: normalize_image(alter(frames(p), r))
    from mmfuse.data.audio import load_audio, log_mel_spectrogram

    def audio(path: Path, rng: Any) -> np.ndarray:
        wave = alter(load_audio(path, c.sample_rate), rng)
        return log_mel_spectrogram(wave, c.sample_rate, n_mels=c.n_mels, num_frames=c.audio_frames)

    return audio
