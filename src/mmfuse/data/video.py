"""Video decoding: a video file or a folder of frames -> float32 (num_frames, 3, size, size).

Video files are decoded with PyAV (imported inside the functions so ``import mmfuse`` stays
cheap). A folder of image files is also accepted as a video, frames in natural file-name order.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from PIL import Image

from mmfuse.data.image import IMAGE_EXTENSIONS, check_media_file, image_to_array, load_image
from mmfuse.errors import DecodeError

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")


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


def _decode_video_file(path: Path, size: int) -> list[np.ndarray]:
    """Decode every frame of the first video stream; returns a list of (3, size, size)."""
    import av

    frames: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DecodeError(f"no video stream in {path}")
            for frame in container.decode(video=0):
                image: Image.Image = frame.to_image()
                frames.append(image_to_array(image, size))
    except (av.FFmpegError, OSError, ValueError) as err:
        raise DecodeError(f"cannot decode video {path}: {err}") from err
    return frames


def load_video_frames(path: str | Path, num_frames: int, size: int) -> np.ndarray:
    """Decode a video (file or frame folder) and sample ``num_frames`` frames uniformly.

    Every frame is decoded, converted to RGB with Pillow and resized to (size, size) with
    bilinear filtering (no crop); then :func:`sample_frame_indices` picks the frames.

    Args:
        path: A video file with one of :data:`VIDEO_EXTENSIONS`, or a folder of image files.
        num_frames: Number of frames to return; frames repeat if the video has fewer.
        size: Output height and width of each frame.

    Returns:
        float32 array of shape (num_frames, 3, size, size), values in [0, 1].

    Raises:
        DecodeError: Missing, empty or corrupt file, unsupported extension, no video stream,
            zero decodable frames, or a folder without image files.
    """
    path = Path(path)
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if size < 1:
        raise ValueError(f"frame size must be >= 1, got {size}")
    if path.is_dir():
        return _load_frame_folder(path, num_frames, size)
    if not path.exists():
        raise DecodeError(f"video file or frame folder not found: {path}")
    check_media_file(path, VIDEO_EXTENSIONS, "video")
    frames = _decode_video_file(path, size)
    if not frames:
        raise DecodeError(f"video {path} has no decodable frames")
    indices = sample_frame_indices(len(frames), num_frames)
    return np.stack([frames[i] for i in indices.tolist()])  # (num_frames, 3, size, size)


def has_audio_track(path: str | Path) -> bool:
    """Whether a video file has at least one audio stream.

    Returns False for frame folders, missing files and anything PyAV cannot open.
    """
    import av

    path = Path(path)
    if not path.is_file():
        return False
    try:
        with av.open(str(path)) as container:
            return len(container.streams.audio) > 0
    except (av.FFmpegError, OSError, ValueError):
        return False
