"""Video decoding: a video file, its bytes or a folder of frames -> float32
(num_frames, 3, size, size).

Video files are decoded with PyAV (imported inside the functions so ``import mmfuse`` stays
cheap). A folder of image files is also accepted as a video, frames in natural file-name order.
A video may also come in memory (a DataFrame cell, an upload): the bytes of an encoded file,
read from memory with the FFmpeg demuxer their magic bytes name (MP4 / MOV, Matroska / WebM,
AVI; ``mmfuse.data.cells.VIDEO_CONTAINERS``), so FFmpeg never guesses a format that reads
other files (a playlist, say). Bytes and a file with the same content give the same frames.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any, Union

import numpy as np
from PIL import Image

from mmfuse.data.cells import VIDEO_CONTAINERS, describe_cell, error_text, sniff_media
from mmfuse.data.image import IMAGE_EXTENSIONS, check_media_file, check_pixels, image_to_array, load_image
from mmfuse.errors import DecodeError

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
VideoSource = Union[str, Path, bytes]
"""A video file or frame folder, or the bytes of an encoded video file."""


def sample_frame_indices(num_available: int, num_frames: int) -> np.ndarray:
    """Pick ``num_frames`` indices spread uniformly over ``num_available`` frames.

    Indices are ``linspace(0, num_available - 1, num_frames).round()``, so the first and last
    frames are always included and indices repeat when the video is shorter than
    ``num_frames``. ``round`` is NumPy's round-half-to-even.

    Returns:
        int64 array of shape (num_frames,).
    """
    if num_available < 1:
        raise ValueError(f"num_available must be >= 1, got {num_available}")
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    return np.linspace(0, num_available - 1, num_frames).round().astype(np.int64)


def _natural_key(name: str) -> list[int | str]:
    """Sort key so that "frame2.png" comes before "frame10.png"."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def list_frame_files(folder: Path) -> list[Path]:
    """Image files directly inside ``folder``, in natural file-name order."""
    files = [
        p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
    ]
    return sorted(files, key=lambda p: _natural_key(p.name))


def _load_frame_folder(folder: Path, num_frames: int, size: int) -> np.ndarray:
    """Load the sampled frames of a folder of images; returns (num_frames, 3, size, size)."""
    files = list_frame_files(folder)
    if not files:
        raise DecodeError(
            f"video frame folder {folder} holds no image files "
            f"({', '.join(IMAGE_EXTENSIONS)})"
        )
    indices = sample_frame_indices(len(files), num_frames)
    cache: dict[int, np.ndarray] = {}
    for i in indices.tolist():
        if i not in cache:
            cache[i] = load_image(files[i], size)  # (3, size, size)
    return np.stack([cache[i] for i in indices.tolist()])


def video_demuxer(data: bytes) -> str | None:
    """The FFmpeg demuxer ("mov", "matroska", "avi") of encoded video bytes; None for bytes
    that are not a video container (images, audio, anything unrecognised)."""
    if sniff_media(data[:16]) != "video":
        return None
    for offset, magic, demuxer in VIDEO_CONTAINERS:
        if data[offset : offset + len(magic)] == magic:
            return demuxer
    return None


def open_container(source: Path | bytes) -> Any:
    """A PyAV input container (a context manager) of a media file or of encoded bytes.

    Video bytes are opened with the demuxer :func:`video_demuxer` names; other bytes (audio
    formats) are probed by FFmpeg.

    Raises:
        av.FFmpegError, OSError, ValueError: What PyAV raises for unreadable input.
    """
    import av

    if isinstance(source, bytes):
        return av.open(io.BytesIO(source), format=video_demuxer(source))
    return av.open(str(source))


def ffmpeg_reason(err: Exception) -> str:
    """What went wrong, without the file name or buffer PyAV appends (the message names it)."""
    reason = getattr(err, "strerror", None)
    return str(reason) if reason else error_text(err)


def _decode_video(source: Path | bytes, size: int, name: str) -> list[np.ndarray]:
    """Decode every frame of the first video stream; returns a list of (3, size, size).

    The frame size in the stream header is checked before a frame is decoded, and each
    decoded frame's size before it is converted.
    """
    import av

    frames: list[np.ndarray] = []
    try:
        with open_container(source) as container:
            if not container.streams.video:
                raise DecodeError(f"no video stream in {name}")
            codec = container.streams.video[0].codec_context
            if codec is None:  # FFmpeg found the stream but not what codec it is
                raise DecodeError(
                    f"cannot decode video {name}: its video stream has no known codec (a "
                    "truncated or corrupt file?)"
                )
            check_pixels(codec.width, codec.height, name, "video", "frames of ")
            for frame in container.decode(video=0):
                check_pixels(frame.width, frame.height, name, "video", "frames of ")
                image: Image.Image = frame.to_image()
                frames.append(image_to_array(image, size))
    except (av.FFmpegError, OSError, ValueError) as err:
        raise DecodeError(f"cannot decode video {name}: {ffmpeg_reason(err)}") from err
    return frames


def _checked_bytes(data: bytes) -> str:
    """The name of video bytes in messages; DecodeError unless they are a known container."""
    name = describe_cell(data)
    if video_demuxer(data) is None:
        kind = sniff_media(data[:16])
        looks = f"; the bytes look like an {kind} file" if kind else ""
        raise DecodeError(
            f"cannot decode video {name}: not a video file of a known format (MP4, MOV, MKV, "
            f"WebM, AVI){looks}"
        )
    return name


def load_video_frames(source: VideoSource, num_frames: int, size: int) -> np.ndarray:
    """Decode a video (file, bytes or frame folder) and sample ``num_frames`` frames uniformly.

    Every frame is decoded, converted to RGB with Pillow and resized to (size, size) with
    bilinear filtering (no crop); then :func:`sample_frame_indices` picks the frames.

    Args:
        source: A video file with one of :data:`VIDEO_EXTENSIONS`, a folder of image files,
            or the bytes of an MP4 / MOV, Matroska / WebM or AVI file.
        num_frames: Number of frames to return; frames repeat if the video has fewer.
        size: Output height and width of each frame.

    Returns:
        float32 array of shape (num_frames, 3, size, size), values in [0, 1].

    Raises:
        DecodeError: Missing, empty or corrupt file or bytes, unsupported extension, bytes of
            no known video container, no video stream, frames over ``Image.MAX_IMAGE_PIXELS``,
            zero decodable frames, or a folder without image files.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if size < 1:
        raise ValueError(f"frame size must be >= 1, got {size}")
    if isinstance(source, bytes):
        name = _checked_bytes(source)
        frames = _decode_video(source, size, name)
    else:
        path = Path(source)
        if path.is_dir():
            return _load_frame_folder(path, num_frames, size)
        if not path.exists():
            raise DecodeError(f"video file or frame folder not found: {path}")
        check_media_file(path, VIDEO_EXTENSIONS, "video")
        name = str(path)
        frames = _decode_video(path, size, name)
    if not frames:
        raise DecodeError(f"video {name} has no decodable frames")
    indices = sample_frame_indices(len(frames), num_frames)
    return np.stack([frames[i] for i in indices.tolist()])  # (num_frames, 3, size, size)


def has_audio_track(source: VideoSource) -> bool:
    """Whether a video file (or the bytes of one) has at least one audio stream.

    Returns False for frame folders, missing files, bytes of no known video container and
    anything PyAV cannot open.
    """
    import av

    if isinstance(source, bytes):
        if video_demuxer(source) is None:
            return False
    elif not Path(source).is_file():
        return False
    try:
        with open_container(source if isinstance(source, bytes) else Path(source)) as container:
            return len(container.streams.audio) > 0
    except (av.FFmpegError, OSError, ValueError):
        return False
