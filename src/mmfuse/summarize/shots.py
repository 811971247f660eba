"""A video's shots: PySceneDetect's content detector finds the cuts (frames are streamed, never
held whole), and shots longer than ``max_seconds`` are split into equal segments, so that a long
uneventful stretch is several candidates rather than one that never fits the budget."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmfuse.errors import MmfuseError


@dataclass(frozen=True)
class Shots:
    """The segments of one video.

    Attributes:
        bounds: (S, 2) start and end of each segment in seconds, in order, covering the video.
        cuts: (S,) whether the segment starts at a detected cut (False: a split of a long shot).
        duration: The video's length in seconds.
        fps: Its (average) frame rate.
    """

    bounds: np.ndarray
    cuts: np.ndarray
    duration: float
    fps: float

    @property
    def lengths(self) -> np.ndarray:
        return self.bounds[:, 1] - self.bounds[:, 0]

    def __len__(self) -> int:
        return len(self.bounds)


def detect_shots(path: Path, threshold: float = 27.0, max_seconds: float = 5.0,
                 min_seconds: float = 1.0) -> Shots:
    """The shots of the video at ``path`` (see the module docstring).

    Args:
        path: A video file.
        threshold: PySceneDetect's ContentDetector threshold (higher: fewer cuts).
        max_seconds: Longer shots are split into equal segments at most this long.
        min_seconds: The shortest shot a cut may start (PySceneDetect's ``min_scene_len``).

    Raises:
        MmfuseError: Not a readable video, no video stream, or fewer than two frames (a still
            image saved as a video, or an empty one).
    """
    try:
        from scenedetect import ContentDetector, SceneManager, open_video
    except ImportError as err:
        raise MmfuseError(f"video summaries need PySceneDetect: pip install 'mmfuse[summarize]' ({err})") from None
    try:
        video = open_video(str(path), backend="opencv")
    except Exception as err:  # noqa: BLE001  PySceneDetect raises OSError, VideoOpenFailure, ...
        raise MmfuseError(f"{path}: cannot open the video ({err})") from None
    fps = float(video.frame_rate)
    frames = int(video.duration.frame_num) if video.duration is not None else 0
    if frames < 2 or not math.isfinite(fps) or fps <= 0:
        raise MmfuseError(f"{path}: {frames} frame(s): a video needs at least two (a still image, or an empty "
                          "file, saved as a video?)")
    manager = SceneManager()
    manager.add_detector(ContentDetector(threshold=threshold, min_scene_len=max(1, round(min_seconds * fps))))
    manager.detect_scenes(video)
    scenes = [(a.seconds, b.seconds) for a, b in manager.get_scene_list()]
    duration = frames / fps
    if not scenes:
        scenes = [(0.0, duration)]
    return split_long(np.asarray(scenes, dtype=np.float64), max_seconds, duration, fps)


def split_long(scenes: np.ndarray, max_seconds: float, duration: float, fps: float) -> Shots:
    """Shots from (S, 2) scene bounds, each longer than ``max_seconds`` split into equal parts."""
    if max_seconds <= 0:
        raise MmfuseError(f"the longest segment must be positive, got {max_seconds}")
    bounds, cuts = [], []
    for start, end in scenes:
        parts = max(1, math.ceil((end - start) / max_seconds - 1e-9))
        edges = np.linspace(start, end, parts + 1)
        bounds += list(zip(edges[:-1], edges[1:]))
        cuts += [True] + [False] * (parts - 1)
    return Shots(np.asarray(bounds, dtype=np.float64).reshape(-1, 2), np.asarray(cuts), duration, fps)
