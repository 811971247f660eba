"""A video's shots: PySceneDetect's content detector finds the cuts (frames are streamed, never
held whole), and shots longer than ``max_seconds`` are split into equal segments, so that a long
uneventful stretch is several candidates rather than one that never fits the budget."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmfuse.errors import MmfuseError
from mmfuse.summarize.knapsack import select_shots


@dataclass(frozen=True)
class Shots:
    """The segments of one video.

    Attributes:
        bounds: (S, 2) start and end of each segment in seconds from the first frame, in order,
            covering the video.
        cuts: (S,) whether the segment starts at a detected cut (False: a split of a long shot).
        duration: The video's length in seconds.
        fps: Its average frame rate.
        origin: The first frame's time in the file's own clock (seconds); frame and sound
            times minus ``origin`` are on the clock of ``bounds``.
    """

    bounds: np.ndarray
    cuts: np.ndarray
    duration: float
    fps: float
    origin: float = 0.0

    @property
    def lengths(self) -> np.ndarray:
        return self.bounds[:, 1] - self.bounds[:, 0]

    def __len__(self) -> int:
        return len(self.bounds)

    def select(self, scores: np.ndarray, ratio: float) -> np.ndarray:
        """(S,) bool: the segments with the most ``scores`` x seconds that fit in ``ratio`` of
        the duration (the 0/1 knapsack of the summarisation protocol)."""
        return select_shots(self.lengths, np.asarray(scores) * self.lengths, ratio * self.duration)


def detect_shots(path: Path, threshold: float = 27.0, max_seconds: float = 5.0,
                 min_seconds: float = 1.0) -> Shots:
    """The shots of the video at ``path`` (see the module docstring), in seconds from the first
    frame; the frame count and duration come from the video packets' own timestamps (a WebM
    from a browser records no frame count), so a variable frame rate or a stream that starts
    late does not shift them.

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
    times, origin = frame_times(path)
    if len(times) < 2:
        raise MmfuseError(f"{path}: {len(times)} frame(s): a video needs at least two (a still image, or an empty "
                          "file, saved as a video?)")
    step = float(np.median(np.diff(times))) or 1.0 / 25
    duration = float(times[-1]) + step
    fps = (len(times) - 1) / max(float(times[-1]), 1e-9)
    try:
        video = open_video(str(path), backend="opencv")
    except Exception as err:  # noqa: BLE001  PySceneDetect raises OSError, VideoOpenFailure, ...
        raise MmfuseError(f"{path}: cannot open the video ({err})") from None
    manager = SceneManager()
    manager.add_detector(ContentDetector(threshold=threshold, min_scene_len=max(1, round(min_seconds * fps))))
    manager.detect_scenes(video)
    # PySceneDetect's times follow OpenCV's clock, which counts from the first frame and follows
    # the timestamps (a cut 7 s in is at 7 s whatever the frame rate did before it)
    cuts = sorted({float(a.seconds) for a, _ in manager.get_scene_list()} - {0.0})
    edges = [0.0] + [t for t in cuts if 0.0 < t < duration] + [duration]
    scenes = np.column_stack([edges[:-1], edges[1:]])
    return split_long(scenes, max_seconds, duration, fps, origin)


def frame_times(path: Path) -> tuple[np.ndarray, float]:
    """(Each frame's time in seconds from the first, sorted; the first frame's time in the
    file's clock), from the video packets' timestamps (read, not decoded)."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise MmfuseError(f"{path}: no video stream")
            stream = container.streams.video[0]
            pts = np.array([p.pts for p in container.demux(stream) if p.pts is not None and p.size > 0],
                           dtype=np.int64)
            base = float(stream.time_base) if stream.time_base is not None else 1.0
    except (av.FFmpegError, OSError, ValueError) as err:
        raise MmfuseError(f"{path}: cannot open the video ({err})") from None
    if len(pts) == 0:
        return np.zeros(0), 0.0
    times = np.sort(pts).astype(np.float64) * base
    return times - times[0], float(times[0])


def split_long(scenes: np.ndarray, max_seconds: float, duration: float, fps: float, origin: float = 0.0) -> Shots:
    """Shots from (S, 2) scene bounds, each longer than ``max_seconds`` split into equal parts."""
    if max_seconds <= 0:
        raise MmfuseError(f"the longest segment must be positive, got {max_seconds}")
    bounds, cuts = [], []
    for start, end in scenes:
        parts = max(1, math.ceil((end - start) / max_seconds - 1e-9))
        edges = np.linspace(start, end, parts + 1)
        bounds += list(zip(edges[:-1], edges[1:]))
        cuts += [True] + [False] * (parts - 1)
    return Shots(np.asarray(bounds, dtype=np.float64).reshape(-1, 2), np.asarray(cuts), duration, fps, origin)
