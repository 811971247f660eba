"""Writing a generated clip: RGB frames as MPEG-4 Part 2 video, with an optional AAC track (PyAV)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def encode_mp4(
    path: Path, frames: np.ndarray, track: np.ndarray | None = None, fps: int = 8,
    sample_rate: int = 16_000,
) -> None:
    """Write ``(T, H, W, 3)`` uint8 frames as MPEG-4 Part 2 video, plus an optional AAC track.

    Args:
        path: Output ``.mp4`` path.
        frames: RGB frames, played at ``fps``.
        track: Optional mono float32 audio at ``sample_rate``, a multiple of 1024 samples.
        fps: Frames per second.
        sample_rate: The track's sample rate.
    """
    import av

    with av.open(str(path), mode="w", format="mp4") as container:
        video = container.add_stream("mpeg4", rate=fps)
        video.width, video.height = frames.shape[2], frames.shape[1]
        video.pix_fmt = "yuv420p"
        video.bit_rate = 400_000
        video.codec_context.thread_count = 1
        audio = None
        if track is not None:
            audio = container.add_stream("aac", rate=sample_rate, layout="mono")
        for frame in frames:
            container.mux(video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(video.encode(None))
        if audio is not None and track is not None:
            _mux_audio(container, audio, track, sample_rate)


def _mux_audio(container: Any, stream: Any, track: np.ndarray, sample_rate: int) -> None:
    """Encode ``track`` in 1024-sample frames (the AAC frame size) and mux it."""
    import av

    frame_size = 1024
    for start in range(0, len(track), frame_size):
        chunk = track[None, start : start + frame_size]  # (1, 1024)
        samples = np.ascontiguousarray(chunk)
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = sample_rate
        frame.pts = start
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))
