"""Videos with known important moments, for summaries (``make_summary_videos``).

Each video is a minute or so of a quiet, slowly changing grey scene ("filler", cut into a few
shots of 6-14 s) with, in between, short shots (3-5 s) of bright moving shapes:

* **events** (3 per video): shapes of one colour **with a loud sound** of their own (a tone
  burst or a chirp): what a viewer would keep;
* **decoys** (2 per video): shapes just as bright and new to the eye, **with only the quiet
  background sound**: the picture alone cannot tell them from the events; the sound can.

Every shot starts with a hard cut. Written files: ``videos/video_<k>.mp4`` (MPEG-4 video at
8 fps, 96 x 96 px, with an AAC track at 16 kHz), ``shots.csv`` (``video``, ``start``, ``end``
in seconds, ``kind`` filler / event / decoy, ``importance`` 0 / 1 / 0.2: the reference
scores) and ``README.md``. A reference summary keeps the events.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mmfuse.datasets.video_file import encode_mp4

FPS, SIZE, RATE = 8, 96, 16_000
IMPORTANCE = {"filler": 0.0, "event": 1.0, "decoy": 0.2}
COLOURS = np.array([[230, 40, 40], [40, 200, 60], [50, 90, 240], [240, 200, 30], [200, 60, 220],
                    [30, 210, 210], [250, 130, 20]], dtype=np.float32)


def make_summary_videos(out_dir: str | Path, videos: int = 4, seed: int = 0) -> Path:
    """Writes the videos and shots.csv described in the module docstring under ``out_dir``."""
    out = Path(out_dir)
    (out / "videos").mkdir(parents=True, exist_ok=True)
    rows = []
    for k in range(videos):
        rng = np.random.default_rng([seed, k])
        plan = _plan(rng)
        frames, track = [], []
        t = 0.0
        for kind, seconds in plan:
            n = int(round(seconds * FPS))
            colour = COLOURS[rng.integers(len(COLOURS))]
            frames.append(_frames(kind, n, colour, rng))
            track.append(_sound(kind, n * RATE // FPS, rng))
            rows.append({"video": f"videos/video_{k}.mp4", "start": round(t, 3), "end": round(t + n / FPS, 3),
                         "kind": kind, "importance": IMPORTANCE[kind]})
            t += n / FPS
        audio = np.concatenate(track)
        audio = np.pad(audio, (0, -len(audio) % 1024)).astype(np.float32)  # whole AAC frames
        encode_mp4(out / "videos" / f"video_{k}.mp4", np.concatenate(frames), audio, FPS, RATE)
    pd.DataFrame(rows).to_csv(out / "shots.csv", index=False)
    (out / "README.md").write_text(f"# Summary videos (make_summary_videos(videos={videos}, seed={seed}))\n\n"
                                   f"{(__doc__ or '').strip()}\n", encoding="utf-8")
    return out


def _plan(rng: np.random.Generator) -> list[tuple[str, float]]:
    """The shots of one video: filler stretches around 3 events and 2 decoys, shuffled."""
    moments = ["event"] * 3 + ["decoy"] * 2
    rng.shuffle(moments)
    plan: list[tuple[str, float]] = [("filler", float(rng.uniform(6, 14)))]
    for kind in moments:
        plan.append((kind, float(rng.uniform(3, 5))))
        plan += [("filler", float(rng.uniform(6, 14))) for _ in range(int(rng.integers(1, 3)))]
    return plan


def _frames(kind: str, n: int, colour: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(n, SIZE, SIZE, 3) uint8: a grey gradient drifting slowly (filler, its own shade per
    shot), or three shapes of ``colour`` moving over a dark ground (events and decoys)."""
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) / SIZE
    out = np.empty((n, SIZE, SIZE, 3), dtype=np.float32)
    if kind == "filler":
        shade, phase = rng.uniform(90, 150), rng.uniform(0, 2 * np.pi)
        for i in range(n):
            g = shade + 25 * np.sin(2 * np.pi * (x + 0.004 * i) + phase) * (0.5 + 0.5 * y)
            out[i] = g[..., None] * np.array([1.0, 1.02, 1.08])
    else:
        centres = rng.uniform(0.2, 0.8, (3, 2))
        speed = rng.uniform(-0.03, 0.03, (3, 2))
        for i in range(n):
            frame = np.full((SIZE, SIZE, 3), 20.0, dtype=np.float32)
            for (cy, cx), (vy, vx) in zip(centres, speed):
                py, px = (cy + vy * i) % 1.0, (cx + vx * i) % 1.0
                frame[((y - py) ** 2 + (x - px) ** 2) < 0.012] = colour
            out[i] = frame
    out += rng.normal(0, 3, out.shape)
    return np.clip(out, 0, 255).astype(np.uint8)


def _sound(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """Quiet noise everywhere; events add a loud tone burst or chirp."""
    wave = rng.normal(0, 0.01, n)
    if kind == "event":
        t = np.arange(n) / RATE
        if rng.random() < 0.5:
            f0 = rng.uniform(300, 900)
            loud = np.sin(2 * np.pi * f0 * t) * (np.sin(2 * np.pi * 3 * t) > 0)  # bursts
        else:
            f0, f1 = rng.uniform(200, 500), rng.uniform(1000, 2500)
            loud = np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * t[-1])))  # a chirp
        wave = wave + 0.4 * loud
    return wave.astype(np.float32)
