"""The demo's video-summary row: a generated video with three events (bright shapes and a loud
sound) and two silent decoys among quiet filler (``mmfuse.datasets.summary_videos``),
summarised at 15 % of its length into ``OUT/summary``; the F-score of the kept frames against
the events, and which events and decoys were kept. Skipped, saying why, without PySceneDetect."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmfuse._progress import log

FPS = 8  # the generated videos' frame rate


def summary_run(out: Path, seed: int) -> dict[str, Any]:
    """Summarises one generated video; what was kept, scored against the known events."""
    from mmfuse.datasets.summary_videos import make_summary_videos
    from mmfuse.summarize.metrics import frame_selection, summary_fscore
    from mmfuse.summarize.video import SummaryOptions, summarize_video

    if importlib.util.find_spec("scenedetect") is None:
        log("video summary row skipped: PySceneDetect is not installed (pip install 'mmfuse[summarize]')")
        return {"skipped": "PySceneDetect is not installed"}
    data = out / "summary_videos"
    if not (data / "shots.csv").exists():
        make_summary_videos(data, videos=1, seed=seed)
    reference = pd.read_csv(data / "shots.csv")
    video = data / str(reference["video"].iloc[0])
    summary = summarize_video(video, out / "summary", SummaryOptions(ratio=0.15), verbose=False)
    kept = pd.read_csv(out / "summary" / "shots.csv")
    frames = int(round(summary["duration_seconds"] * FPS))
    selected = frame_selection(_frames(kept), kept["selected"].to_numpy(), frames)
    moments = reference[reference["kind"] != "filler"]
    events = frame_selection(_frames(reference), (reference["kind"] == "event").to_numpy(), frames)
    share = {kind: [float(selected[a:b].mean()) for a, b in _frames(part)] for kind, part in moments.groupby("kind")}
    result = {
        "video": str(video), "folder": str(out / "summary"), "duration_seconds": summary["duration_seconds"],
        "summary_seconds": summary["summary_seconds"], "fscore": round(summary_fscore(selected, events[None]), 4),
        "events_kept": sum(s >= 0.5 for s in share.get("event", [])), "events": len(share.get("event", [])),
        "decoys_kept": sum(s >= 0.5 for s in share.get("decoy", [])), "decoys": len(share.get("decoy", [])),
    }  # fmt: skip
    log(f"video summary: {result['summary_seconds']:.1f} s of {result['duration_seconds']:.1f} s, "
        f"{result['events_kept']}/{result['events']} events and {result['decoys_kept']}/{result['decoys']} silent "
        f"decoys kept, F-score {result['fscore']:.3f} -> {result['folder']}")
    return result


def _frames(shots: pd.DataFrame) -> np.ndarray:
    return np.round(shots[["start", "end"]].to_numpy() * FPS).astype(int)
