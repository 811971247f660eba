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


def write_clip(source: Path, bounds: np.ndarray, out: Path) -> float:
    """Writes the segments ``bounds`` (K, 2) seconds of ``source`` one after the other to
    ``out`` (MPEG-4 video, AAC sound when the source has sound); returns its length in seconds."""
    import av

    with av.open(str(source)) as src, av.open(str(out), mode="w", format="mp4") as dst:
        video_in = src.streams.video[0]
        rate = Fraction(video_in.average_rate or 25)
        video_out = dst.add_stream("mpeg4", rate=rate)
        width, height = video_in.codec_context.width // 2 * 2, video_in.codec_context.height // 2 * 2
        video_out.width, video_out.height = max(width, 2), max(height, 2)
        video_out.pix_fmt = "yuv420p"
        video_out.bit_rate = 2_000_000
        audio_in = src.streams.audio[0] if src.streams.audio else None
        audio_out = None
        if audio_in is not None:
            layout = "stereo" if audio_in.codec_context.channels >= 2 else "mono"
            audio_out = dst.add_stream("aac", rate=audio_in.codec_context.sample_rate, layout=layout)
        kept = 0
        for frame in src.decode(video_in):
            if frame.time is not None and _inside(float(frame.time), bounds):
                picture = frame.reformat(width=video_out.width, height=video_out.height, format="yuv420p")
                picture.pts, picture.time_base = kept, 1 / rate  # renumbered: the kept frames back to back
                dst.mux(video_out.encode(picture))
                kept += 1
        dst.mux(video_out.encode(None))
        if audio_in is not None and audio_out is not None:
            src.seek(0)  # the picture pass read the file to its end
            _copy_sound(src, audio_in, audio_out, dst, bounds)
    if kept == 0:
        raise MmfuseError(f"{source}: no frame fell inside the selected shots")
    return kept / float(rate)


def _copy_sound(src: Any, audio_in: Any, audio_out: Any, dst: Any, bounds: np.ndarray) -> None:
    """The selected stretches of the sound, re-cut into the encoder's frame size."""
    import av

    rate = audio_out.codec_context.sample_rate
    resampler = av.AudioResampler(format="fltp", layout=audio_out.layout.name, rate=rate)
    fifo = av.AudioFifo()
    written = 0
    for frame in src.decode(audio_in):
        if frame.time is None:
            continue
        for part in resampler.resample(frame):
            start = float(part.time) if part.time is not None else float(frame.time)
            times = start + np.arange(part.samples) / rate
            keep = _inside_many(times, bounds)
            if not keep.any():
                continue
            data = part.to_ndarray()[:, keep]
            chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(data), format="fltp", layout=audio_out.layout.name)
            chunk.sample_rate, chunk.pts = rate, None
            fifo.write(chunk)
            size = audio_out.codec_context.frame_size or 1024
            while fifo.samples >= size:
                out = fifo.read(size)
                out.pts, written = written, written + size
                dst.mux(audio_out.encode(out))
    if fifo.samples:
        out = fifo.read(fifo.samples)
        out.pts = written
        dst.mux(audio_out.encode(out))
    dst.mux(audio_out.encode(None))


def _inside(t: float, bounds: np.ndarray) -> bool:
    return bool(((bounds[:, 0] <= t) & (t < bounds[:, 1])).any())


def _inside_many(times: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    return ((bounds[None, :, 0] <= times[:, None]) & (times[:, None] < bounds[None, :, 1])).any(1)


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
