"""Decoding one table cell into a modality's array: paths, text, embeddings and media.

``checked_cell`` is the one validation every cell passes on every encoder path (from-scratch,
fine-tuned and frozen pretrained): empty cells, text that is not UTF-8, URLs, missing files and
folders are decided there, with the same message everywhere. Each kind's processor
(``mmfuse.data.kinds``) then decodes the checked cell: the network's own preparation
(pretrained encoders), the text vocabulary, the embedding parser or the image / video / audio
loader.

A media cell of a DataFrame may hold the media itself instead of a path ("in-memory" cells):

- image: a ``PIL.Image.Image`` (any mode), a numpy array (H, W), (H, W, 3) or (H, W, 4) of
  uint8 or of floats in [0, 1], or ``bytes`` of an encoded image (PNG, JPEG, ...);
- audio: ``bytes`` of an encoded file (WAV, FLAC, OGG, ...), a 1-D float array (or 2-D, the
  shorter axis being channels) taken to be at ``PreprocessConfig.sample_rate`` (16 kHz), or an
  ``(array, sample_rate)`` pair, resampled from its own rate;
- video: ``bytes`` of an encoded file (MP4 / MOV, Matroska / WebM, AVI), read with the demuxer
  its magic bytes name (:data:`VIDEO_CONTAINERS`); its audio track, when the schema uses it, is
  read from the same bytes.

They pass the same checks as files (decompression bombs, corrupt content) and give the same
arrays and feature-cache entries as a file with the same content. Nothing in memory is ever
written to a file, and bytes are never taken for a path.
"""

from __future__ import annotations

import math
import re
import sys
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from mmfuse._hints import option
from mmfuse.errors import DecodeError

Corruption = Callable[[str, Any, np.random.Generator], Any]
"""(modality, decoded value, rng) -> corrupted value; see ``Preprocessor.transform``."""


URL_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
"""A cell that starts like ``http://`` or ``s3://``: a URL, never fetched."""
_SURROGATES = re.compile("[\udc80-\udcff]")  # undecodable bytes, as read by surrogateescape
_BUFFER_REPR = re.compile(r" ?<_io\.BytesIO object at 0x[0-9a-fA-F]+>")


_MEMORY_FORMS = {
    "image": "a PIL image, a uint8 or [0, 1] float numpy array, or encoded image bytes",
    "audio": "encoded audio bytes, a float numpy array, or an (array, sample_rate) pair",
    "video": "encoded video bytes (MP4, MOV, MKV, WebM, AVI)",
}
VIDEO_CONTAINERS = (
    (4, b"ftyp", "mov"),  # MP4, MOV, M4V, 3GP: the ISO base media file-type box
    (4, b"moov", "mov"),  # QuickTime files without a file-type box
    (4, b"mdat", "mov"),
    (4, b"wide", "mov"),
    (4, b"free", "mov"),
    (0, b"\x1aE\xdf\xa3", "matroska"),  # MKV, WebM (EBML header)
    (8, b"AVI ", "avi"),  # after "RIFF" and the size
)
"""(offset, magic bytes, FFmpeg demuxer) of the video containers read from bytes cells."""
_SIGNATURES: tuple[tuple[int, bytes, str | None], ...] = (
    # (offset, magic bytes, kind) of the encoded formats recognised in bytes cells; the first
    # match wins, so the ISO brands that are not video come before the video containers
    (4, b"ftypM4A ", "audio"),
    (4, b"ftypM4B ", "audio"),
    (4, b"ftypavif", "image"),
    (4, b"ftypavis", "image"),
    (4, b"ftypheic", None),  # HEIF stills: no decoder here
    (4, b"ftypheix", None),
    (4, b"ftypmif1", None),
    (4, b"ftypmsf1", None),
    (0, b"\x89PNG\r\n\x1a\n", "image"),
    (0, b"\xff\xd8\xff", "image"),  # JPEG
    (0, b"GIF87a", "image"),
    (0, b"GIF89a", "image"),
    (8, b"WEBP", "image"),  # after "RIFF" and the size
    (0, b"BM", "image"),
    (0, b"II*\x00", "image"),  # TIFF, little endian
    (0, b"MM\x00*", "image"),  # TIFF, big endian
    (8, b"WAVE", "audio"),
    (0, b"fLaC", "audio"),
    (0, b"OggS", "audio"),
    (8, b"AIFF", "audio"),
    (8, b"AIFC", "audio"),
    (0, b"ID3", "audio"),  # MP3 with a tag
    *((offset, magic, "video") for offset, magic, _ in VIDEO_CONTAINERS),
)


def sniff_media(data: bytes) -> str | None:
    """"image", "audio" or "video" from the magic bytes of an encoded file; None when
    unrecognised (16 bytes are enough)."""
    for offset, magic, kind in _SIGNATURES:
        if data[offset : offset + len(magic)] == magic:
            return kind
    return None


def is_pil_image(value: Any) -> bool:
    """Whether ``value`` is a ``PIL.Image.Image`` (without importing Pillow)."""
    module = sys.modules.get("PIL.Image")
    # another thread may be importing Pillow right now: a module still being initialised has
    # no Image class yet, and no value can be an instance of it
    image_class = getattr(module, "Image", None)
    return isinstance(image_class, type) and isinstance(value, image_class)


def is_wave_pair(value: Any) -> bool:
    """Whether ``value`` is an ``(array, sample_rate)`` audio cell."""
    return (
        isinstance(value, tuple)
        and len(value) == 2
        and isinstance(value[0], np.ndarray)
        and isinstance(value[1], (int, np.integer))
        and not isinstance(value[1], bool)
    )


def is_in_memory(value: Any) -> bool:
    """Whether a cell holds media itself (bytes, an array, a PIL image, a wave pair)."""
    return (
        isinstance(value, (bytes, bytearray, memoryview, np.ndarray))
        or is_pil_image(value)
        or is_wave_pair(value)
    )


def in_memory_kind(value: Any) -> str | None:
    """The kind an in-memory cell suggests, for schema inference: "image", "audio", "video",
    "embedding" (a 1-D array), "" when it cannot tell; None for a cell that is not in memory.

    PIL images, 2-D / 3-D uint8 arrays and (H, W, 3|4) arrays are images; an
    ``(array, sample_rate)`` pair is audio; bytes go by their magic bytes (:func:`sniff_media`).
    """
    if not is_in_memory(value):
        return None
    if is_pil_image(value):
        return "image"
    if is_wave_pair(value):
        return "audio"
    if not isinstance(value, np.ndarray):
        return sniff_media(bytes(value[:16])) or ""
    if value.ndim == 1:
        return "embedding"
    if value.ndim in (2, 3) and value.dtype == np.uint8:
        return "image"
    return "image" if value.ndim == 3 and value.shape[2] in (3, 4) else ""


def describe_cell(value: Any) -> str:
    """A short name for an in-memory cell ("<PIL image 32x32>", "<array (16000,)>",
    "<bytes 1234>", "<wave (8000,) at 8000 Hz>"); ``str(value)`` for anything else."""
    if is_pil_image(value):
        return f"<PIL image {value.width}x{value.height}>"
    if is_wave_pair(value):
        return f"<wave {value[0].shape} at {int(value[1])} Hz>"
    if isinstance(value, np.ndarray):
        return f"<array {value.shape}>"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<bytes {len(value)}>"
    return str(value)


def error_text(err: BaseException) -> str:
    """A decoder's message without the address of an in-memory file object (which would make
    the same bad cell read differently on every run)."""
    return _BUFFER_REPR.sub("", str(err))


def checked_in_memory(value: Any, kind: str) -> Any:
    """An in-memory cell of a media ``kind`` ("image", "audio", "video") whose form fits the
    kind (bytearray / memoryview as bytes); its content is checked when it is decoded.

    Raises:
        DecodeError: Empty bytes, or a form the kind does not take.
    """
    if isinstance(value, (bytearray, memoryview)):
        value = bytes(value)
    if isinstance(value, bytes) and not value:
        raise DecodeError(f"the {kind} bytes are empty (0 bytes)")
    if not _fits(value, kind):
        a = "an" if kind[0] in "aeiou" else "a"
        raise DecodeError(
            f"{describe_cell(value)} is not {a} {kind}; {a} {kind} cell holds a file path or "
            f"{_MEMORY_FORMS[kind]}"
        )
    return value


def _fits(value: Any, kind: str) -> bool:
    """Whether an in-memory value has a form a ``kind`` cell takes (video: bytes only)."""
    if isinstance(value, bytes):
        return True
    if kind == "video":
        return False
    return isinstance(value, np.ndarray) or (
        is_pil_image(value) if kind == "image" else is_wave_pair(value)
    )


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
        None for a missing modality (with ``audio_track``, also a video without sound);
        the NFC text for text; an existing local path, or the in-memory media (see
        :func:`checked_in_memory`), for media; the value itself for embeddings (their parser
        checks them).

    Raises:
        DecodeError: Text that is not valid UTF-8; a URL, a missing file, a folder or an
            unusable in-memory value in a media column. The message says what to do.
    """
    if is_empty(value):
        return None
    if kind == "text":
        return checked_text(value)
    if kind == "embedding":
        return value
    if is_in_memory(value):
        source = checked_in_memory(value, kind)
    else:
        source = checked_path(value, kind, base_dir, missing_files)
    if source is not None and audio_track:
        from mmfuse.data.video import has_audio_track

        return source if has_audio_track(source) else None
    return source


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
            f"file not found: {path}; fix the path (a relative path starts at {base_dir}: the "
            f"data file's folder, or {option('base_dir', 'FOLDER')}) or pass "
            f"{option('missing_files', 'missing')} to treat it as a missing {kind}"
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
