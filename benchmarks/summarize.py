#!/usr/bin/env python
"""Video summaries: picture-only, sound-only and fused scoring against the known important moments.

Data: ``make_summary_videos`` (``mmfuse.datasets.summary_videos``): per video about 1.5 minutes
of quiet grey filler with 3 events (bright shapes **and** a loud sound) and 2 decoys (bright
shapes, no sound): the picture alone cannot tell an event from a decoy. ``--videos`` videos
per ``--seeds`` seed.

For each scoring (``--scoring`` picture / sound / fused, and ``supervised``: a model fitted with
``fit --task summarization`` on ``--train-videos`` other generated videos and their
importance) and video, ``shot_scores`` (the code
``mmfuse summarize`` runs: PySceneDetect shots, segments of at most 5 s, features, importance,
knapsack at ``--ratio``) gives per-segment importance and a selection, expanded to frames at
the video's rate, and is scored against the reference (``shots.csv``):

* ``fscore``: the selection against the reference summary (the event frames), the
  TVSum/SumMe F-measure (``mmfuse.summarize.metrics.summary_fscore``);
* ``kendall_tau`` / ``spearman_rho``: the per-frame importance against the reference
  importance (event 1, decoy 0.2, filler 0), Otani et al. 2019;
* ``events_kept`` / ``decoys_kept``: the share of events / decoys with at least half their
  frames selected.

Means over all videos. Cost: ``seconds_per_minute`` of video for the whole ``summarize`` (with
summary.mp4 written) once per video with the fused scoring, with ``--threads`` torch threads;
``memory_by_length``: peak RSS and seconds of ``mmfuse summarize`` in a fresh process on long
plain videos of ``--long-minutes`` minutes (32 px, 4 fps, a loud bright moment every 5 min):
the passes stream, so the peak should not grow with the length.
Prints one JSON object.

Usage::

    .venv/bin/python benchmarks/summarize.py [--videos 4] [--seeds 0,1] [--ratio 0.15] [--threads 2] [--out F]

``--quick`` (one video, one seed) is a smoke run; its numbers mean little.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from _quick import parse_with_quick

QUICK = {"videos": 1, "seeds": "0", "train_videos": 2, "epochs": 2, "long_minutes": "0.5,1"}
SCORINGS = ("picture", "sound", "fused")
ROWS = (*SCORINGS, "supervised")


def score_video(video: Path, reference: pd.DataFrame, options: Any, model: Any = None) -> dict[str, float]:
    from mmfuse.summarize.metrics import frame_scores, frame_selection, rank_correlation, summary_fscore
    from mmfuse.summarize.video import shot_scores

    bounds, scores, selected, duration = shot_scores(video, options, model)
    fps = 8.0
    frames = int(round(duration * fps))
    as_frames = np.clip(np.round(bounds * fps).astype(int), 0, frames)
    predicted_sel = frame_selection(as_frames, selected, frames)
    predicted = frame_scores(as_frames, scores, frames)
    ref_bounds = np.clip(np.round(reference[["start", "end"]].to_numpy() * fps).astype(int), 0, frames)
    truth = frame_scores(ref_bounds, reference["importance"].to_numpy(), frames)
    events = reference["kind"].to_numpy() == "event"
    keep = frame_selection(ref_bounds, events, frames)
    kept = [float(predicted_sel[a:b].mean() >= 0.5) for a, b in ref_bounds]
    corr = rank_correlation(predicted, truth[None, :])
    return {
        "fscore": summary_fscore(predicted_sel, keep[None, :]),
        **corr,
        "events_kept": float(np.mean([k for k, e in zip(kept, events) if e])),
        "decoys_kept": float(np.mean([k for k, kind in zip(kept, reference["kind"]) if kind == "decoy"])),
    }


def long_video(path: Path, minutes: float, seed: int = 0) -> Path:
    """A long, plain video (32 px, 4 fps, quiet sound) with a short loud bright moment every
    five minutes (the writer holds it whole in this process: 32 px keeps that small)."""
    from mmfuse.datasets.video_file import encode_mp4

    rng = np.random.default_rng(seed)
    fps, rate = 4, 16_000
    n = int(minutes * 60 * fps)
    t = np.arange(n) / fps
    event = (t % 300) < 4
    frames = np.where(event[:, None, None, None], np.array([220, 40, 40], np.uint8),
                      np.uint8(110) + rng.integers(0, 6, (n, 1, 1, 1), dtype=np.uint8))
    frames = np.broadcast_to(frames, (n, 32, 32, 3)).astype(np.uint8)
    samples = int(minutes * 60 * rate) // 1024 * 1024
    st = np.arange(samples) / rate
    track = (rng.normal(0, 0.01, samples) + 0.4 * ((st % 300) < 4) * np.sin(2 * np.pi * 600 * st)).astype(np.float32)
    encode_mp4(path, frames, track, fps=fps, sample_rate=rate)
    return path


def memory_by_length(tmp: Path, minutes: list[float], threads: int) -> dict[str, Any]:
    """Peak RSS of ``mmfuse summarize`` (a fresh process each) on long plain videos: it streams,
    so memory should not grow with the length."""
    import subprocess

    out = {}
    for m in minutes:
        video = long_video(tmp / f"long_{m:g}.mp4", m)
        began = time.perf_counter()
        # VmHWM (the peak of this process's memory map) rather than ru_maxrss, which Linux keeps
        # across exec: the child would report this benchmark's own peak
        code = ("import re, sys; from mmfuse.cli.main import main; "
                f"rc = main(['summarize', '{video}', '--out', '{tmp / f'long_out_{m:g}'}', '--quiet', "
                f"'--threads', '{threads}']); "
                "print(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)); sys.exit(rc)")
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        rss = int(done.stdout.strip().splitlines()[-1]) / 1024
        out[f"{m:g}_min"] = {"peak_rss_mib": round(rss, 1), "seconds": round(time.perf_counter() - began, 1)}
    return out


def train_supervised(tmp: Path, args: argparse.Namespace) -> Any:
    """``fit --task summarization`` on ``--train-videos`` other videos (seed 1000), labelled
    with shots.csv's importance."""
    from mmfuse.datasets.summary_videos import make_summary_videos
    from mmfuse.summarize.supervised import fit_summarizer, load_summarizer

    folder = make_summary_videos(tmp / "train", args.train_videos, seed=1000)
    print(f"[summarize] fitting the supervised model on {args.train_videos} videos", file=sys.stderr)
    fit_summarizer(folder / "shots.csv", "importance", tmp / "model",
                   {"epochs": args.epochs, "num_threads": args.threads, "verbose": False})
    return load_summarizer(tmp / "model", verbose=False, num_threads=args.threads)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from mmfuse.datasets.summary_videos import make_summary_videos
    from mmfuse.summarize.video import SummaryOptions, summarize_video
    from mmfuse.training.device import set_threads

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--ratio", type=float, default=0.15)
    parser.add_argument("--train-videos", type=int, default=6, help="videos the supervised model learns from")
    parser.add_argument("--epochs", type=int, default=30, help="the supervised model's maximum epochs")
    parser.add_argument("--long-minutes", default="3,30",
                        help="lengths of the long plain videos whose peak memory is measured (0: none)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parse_with_quick(parser, QUICK, argv)
    set_threads(args.threads)
    per: dict[str, list[dict[str, float]]] = {s: [] for s in ROWS}
    cost = []
    with tempfile.TemporaryDirectory(prefix="summarize-") as tmp:
        model = train_supervised(Path(tmp), args)
        for seed in (int(s) for s in args.seeds.split(",")):
            folder = make_summary_videos(Path(tmp) / f"seed{seed}", args.videos, seed)
            shots = pd.read_csv(folder / "shots.csv")
            for name, reference in shots.groupby("video", sort=True):
                video = folder / str(name)
                print(f"[summarize] seed {seed}: {name}", file=sys.stderr)
                for scoring in SCORINGS:
                    per[scoring].append(score_video(video, reference, SummaryOptions(args.ratio, scoring)))
                per["supervised"].append(score_video(video, reference, SummaryOptions(args.ratio), model))
                began = time.perf_counter()
                s = summarize_video(video, Path(tmp) / "out" / f"{seed}_{Path(str(name)).stem}",
                                    SummaryOptions(args.ratio), verbose=False)
                cost.append((time.perf_counter() - began) / (s["duration_seconds"] / 60))
        lengths = [float(m) for m in args.long_minutes.split(",") if float(m) > 0]
        memory = memory_by_length(Path(tmp), lengths, args.threads) if lengths else {}
    result = {
        "benchmark": "summarize",
        "config": {k: v for k, v in vars(args).items() if k != "out"},
        "videos": len(cost),
        "scoring": {s: {k: round(statistics.fmean(r[k] for r in rows), 4) for k in rows[0]} for s, rows in per.items()},
        "seconds_per_minute": round(statistics.fmean(cost), 2),
        "memory_by_length": memory,
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    return result


if __name__ == "__main__":
    main()
