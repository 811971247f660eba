"""The summary's files: ``summary.mp4`` (the selected shots' picture and sound, in order, PyAV,
streamed), ``keyframes.png`` (a contact sheet of the selected shots with their times),
``shots.csv`` and ``summary.json``."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmfuse._io import write_json
from mmfuse.errors import MmfuseError

CLOCK = Fraction(1, 1000)
"""The summary video's time base: milliseconds."""


def write_clip(source: Path, bounds: np.ndarray, out: Path, origin: float = 0.0) -> float:
    """Writes the segments ``bounds`` (K, 2) seconds (from the first frame, which is at
    ``origin`` in the file's clock) of ``source`` one after the other to ``out``: MPEG-4 video
    whose frames keep their timing within each segment, AAC sound when the source has sound,
    each segment's sound padded with silence or cut to the segment's length so picture and
    sound stay together; returns the summary's length in seconds."""
    import av

    try:
        with av.open(str(source)) as src, av.open(str(out), mode="w", format="mp4") as dst:
            video_in = src.streams.video[0]
            rate = Fraction(video_in.average_rate or 25).limit_denominator(65535)  # MPEG-4's limit
            video_out = dst.add_stream("mpeg4", rate=rate)
            video_out.codec_context.time_base = CLOCK  # frames keep their own timing (variable rates too)
            width, height = video_in.codec_context.width // 2 * 2, video_in.codec_context.height // 2 * 2
            video_out.width, video_out.height = max(width, 2), max(height, 2)
            video_out.pix_fmt = "yuv420p"
            video_out.bit_rate = 2_000_000
            audio_in = src.streams.audio[0] if src.streams.audio else None
            audio_out = None
            if audio_in is not None:
                layout = "stereo" if audio_in.codec_context.channels >= 2 else "mono"
                audio_out = dst.add_stream("aac", rate=audio_in.codec_context.sample_rate, layout=layout)
            frames = np.zeros(len(bounds), dtype=np.int64)  # frames kept per segment
            offset = np.r_[0.0, np.cumsum(bounds[:, 1] - bounds[:, 0])]  # each segment's start in the summary
            last = -1
            for frame in src.decode(video_in):
                if frame.time is None:
                    continue
                t = float(frame.time) - origin
                segment = _segment(t, bounds)
                if segment < 0:
                    continue
                picture = frame.reformat(width=video_out.width, height=video_out.height, format="yuv420p")
                pts = max(int(round((offset[segment] + t - bounds[segment, 0]) / CLOCK)), last + 1)
                picture.pts, picture.time_base, last = pts, CLOCK, pts
                dst.mux(video_out.encode(picture))
                frames[segment] += 1
            dst.mux(video_out.encode(None))
            if audio_in is not None and audio_out is not None:
                src.seek(0)  # the picture pass read the file to its end
                _copy_sound(src, audio_in, audio_out, dst, bounds, origin, bounds[:, 1] - bounds[:, 0])
    except (av.FFmpegError, OSError, ValueError) as err:
        raise MmfuseError(f"{source}: cannot write the summary video ({err})") from None
    if frames.sum() == 0:
        raise MmfuseError(f"{source}: no frame fell inside the selected shots")
    return float((bounds[:, 1] - bounds[:, 0]).sum())


def _copy_sound(src: Any, audio_in: Any, audio_out: Any, dst: Any, bounds: np.ndarray, origin: float,
                seconds: np.ndarray) -> None:
    """The selected stretches of the sound, each padded with silence or cut to ``seconds`` of
    its segment's picture, re-cut into the encoder's frame size."""
    import av

    rate = audio_out.codec_context.sample_rate
    layout = audio_out.layout.name
    channels = audio_out.layout.nb_channels
    wanted = np.round(seconds * rate).astype(np.int64)
    have = np.zeros(len(bounds), dtype=np.int64)
    resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
    fifo = av.AudioFifo()
    written = 0

    def push(data: np.ndarray) -> None:
        nonlocal written
        if data.shape[1] == 0:
            return
        chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(data, dtype=np.float32), format="fltp", layout=layout)
        chunk.sample_rate, chunk.pts = rate, None
        fifo.write(chunk)
        size = audio_out.codec_context.frame_size or 1024
        while fifo.samples >= size:
            block = fifo.read(size)
            block.pts, written = written, written + size
            dst.mux(audio_out.encode(block))

    def fill(upto: int) -> None:  # silence for the segments before ``upto`` that are short of sound
        for k in range(upto):
            if have[k] < wanted[k]:
                push(np.zeros((channels, int(wanted[k] - have[k])), dtype=np.float32))
                have[k] = wanted[k]

    def take(part: Any, start: float) -> None:
        times = start - origin + np.arange(part.samples) / rate
        owners = _segments(times, bounds)
        data = part.to_ndarray()
        for k in np.unique(owners[owners >= 0]):
            fill(int(k))
            piece = data[:, owners == k][:, : max(int(wanted[k] - have[k]), 0)]
            push(piece)
            have[k] += piece.shape[1]

    for frame in src.decode(audio_in):
        if frame.time is None:
            continue
        for part in resampler.resample(frame):
            take(part, float(part.time) if part.time is not None else float(frame.time))
    for part in resampler.resample(None):
        if part.time is not None:
            take(part, float(part.time))
    fill(len(bounds))
    if fifo.samples:
        block = fifo.read(fifo.samples)
        block.pts = written
        dst.mux(audio_out.encode(block))
    dst.mux(audio_out.encode(None))


def _segment(t: float, bounds: np.ndarray) -> int:
    """The index of the segment holding time ``t`` (-1: none)."""
    return int(_segments(np.array([t]), bounds)[0])


def _segments(times: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """The segment of each time (-1: none); ``bounds`` sorted and not overlapping."""
    k = np.searchsorted(bounds[:, 0], times, side="right") - 1
    ok = (k >= 0) & (times < bounds[np.maximum(k, 0), 1])
    return np.where(ok, k, -1)


def write_contact_sheet(thumbnails: np.ndarray, bounds: np.ndarray, out: Path, columns: int = 4) -> None:
    """A grid of the thumbnails (K, H, W, 3), each captioned with its start-end time."""
    from PIL import Image, ImageDraw

    k = max(len(thumbnails), 1)
    h, w = thumbnails.shape[1:3] if len(thumbnails) else (90, 160)
    rows, cols = -(-k // columns), min(k, columns)
    sheet = Image.new("RGB", (cols * (w + 8) + 8, rows * (h + 26) + 8), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (thumb, (start, end)) in enumerate(zip(thumbnails, bounds)):
        x, y = 8 + (i % columns) * (w + 8), 8 + (i // columns) * (h + 26)
        sheet.paste(Image.fromarray(thumb), (x, y))
        draw.text((x, y + h + 4), f"{_clock(start)} - {_clock(end)}", fill="black")
    sheet.save(out)


def _clock(seconds: float) -> str:
    m, s = divmod(float(seconds), 60.0)
    h, m = divmod(int(m), 60)
    return f"{h}:{m:02d}:{s:04.1f}" if h else f"{m}:{s:04.1f}"


def write_tables(out_dir: Path, bounds: np.ndarray, scores: np.ndarray, selected: np.ndarray,
                 summary: dict[str, Any]) -> None:
    """shots.csv (start, end, score, selected) and summary.json."""
    pd.DataFrame({"shot": np.arange(len(bounds)), "start": bounds[:, 0].round(3), "end": bounds[:, 1].round(3),
                  "score": np.round(scores, 4), "selected": selected}).to_csv(out_dir / "shots.csv", index=False)
    write_json(out_dir / "summary.json", summary)
