"""One video's summary, end to end: shots, their picture and sound, importance, the knapsack
within ``ratio`` of the duration, and the files (``mmfuse summarize``)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmfuse._progress import log
from mmfuse.errors import MmfuseError
from mmfuse.summarize.features import ShotFeatures, shot_features
from mmfuse.summarize.scoring import MODES, importance
from mmfuse.summarize.shots import Shots, detect_shots
from mmfuse.summarize.writer import write_clip, write_contact_sheet, write_tables


@dataclass(frozen=True)
class SummaryOptions:
    """How summaries are made (the ``mmfuse summarize`` flags).

    Attributes:
        ratio: Share of the video's duration the summary may take, in (0, 1).
        scoring: "fused" (picture and sound), "picture" or "sound".
        max_shot_seconds: Longer shots are split into segments at most this long.
        threshold: PySceneDetect's content threshold (higher: fewer cuts).
        write_video: Write summary.mp4 (off: only the tables and the contact sheet).
    """

    ratio: float = 0.15
    scoring: str = "fused"
    max_shot_seconds: float = 5.0
    threshold: float = 27.0
    write_video: bool = True

    def __post_init__(self) -> None:
        if not 0 < self.ratio < 1:
            raise MmfuseError(f"--ratio must be between 0 and 1 (the share of the video to keep), got {self.ratio}")
        if self.scoring not in MODES:
            raise MmfuseError(f"unknown --scoring {self.scoring!r}; choose one of: {', '.join(MODES)}")
        if self.max_shot_seconds <= 0:
            raise MmfuseError(f"--max-shot-seconds must be positive, got {self.max_shot_seconds}")


def summarize_video(video: Path, out_dir: Path, options: SummaryOptions, verbose: bool = True,
                    model: tuple[Any, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Summarises ``video`` into ``out_dir``; returns what summary.json holds. With ``model``
    (a fitted summarizer and its spec, ``supervised.load_summarizer``), the model scores the
    segments, cut as it was trained."""
    began = time.perf_counter()
    if not video.is_file():
        raise MmfuseError(f"video not found: {video}")
    shots, features, scores, mode = scored_segments(video, options, model, verbose)
    log(f"{video}: {shots.duration:.1f} s, {int(shots.cuts.sum())} shot(s) -> {len(shots)} segment(s)", verbose)
    if features.sound is None:
        log(f"{video}: no audio track: scored on the picture only", verbose)
    budget = options.ratio * shots.duration
    selected = shots.select(scores, options.ratio)
    kept = shots.bounds[selected]
    trimmed = not selected.any()
    if trimmed:  # every segment is longer than the budget (a short clip): the best one, cut to fit
        selected[int(np.argmax(scores))] = True
        start = float(shots.bounds[selected][0, 0])
        kept = np.array([[start, start + budget]])
        log(f"{video}: every segment is longer than {budget:.1f} s; keeping the start of the best one", verbose)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {"shots": "shots.csv", "keyframes": "keyframes.png"}
    write_contact_sheet(features.thumbnails[selected], kept, out_dir / files["keyframes"])
    summary_seconds = float((kept[:, 1] - kept[:, 0]).sum())
    if options.write_video:
        files["video"] = "summary.mp4"
        summary_seconds = write_clip(video, kept, out_dir / files["video"], shots.origin)
    summary = {
        "video": str(video), "duration_seconds": round(shots.duration, 3), "fps": round(shots.fps, 3),
        "ratio": options.ratio, "budget_seconds": round(budget, 3), "summary_seconds": round(summary_seconds, 3),
        "shots": int(shots.cuts.sum()), "segments": len(shots), "selected": int(selected.sum()), "trimmed": trimmed,
        "scoring": mode, "sound": features.sound is not None, "picture_encoder": features.picture_encoder,
        "seconds": round(time.perf_counter() - began, 2), "files": files,
    }  # fmt: skip
    write_tables(out_dir, shots.bounds, scores, selected, summary)
    log(f"{video}: kept {int(selected.sum())} segment(s), {summary_seconds:.1f} s of {shots.duration:.1f} s "
        f"-> {out_dir}", verbose)
    return summary


def video_path(base_dir: Path, cell: object) -> Path:
    """A table cell's video path, relative ones taken from ``base_dir`` (the table's folder)."""
    path = Path(str(cell))
    return path if path.is_absolute() else base_dir / path


def scored_segments(video: Path, options: SummaryOptions, model: tuple[Any, dict[str, Any]] | None = None,
                    verbose: bool = False) -> tuple[Shots, ShotFeatures, np.ndarray, str]:
    """The video's segments, their features, each one's importance and how it was scored: by
    ``model`` (segments cut as it was trained), else ``options.scoring`` (the picture alone
    when there is no sound)."""
    if model is not None:
        from mmfuse.summarize.supervised import predicted_importance

        shots, features, scores = predicted_importance(model[0], model[1], video)
        return shots, features, scores, "model"
    shots = detect_shots(video, options.threshold, options.max_shot_seconds)
    features = shot_features(video, shots, verbose=verbose)
    mode = options.scoring if features.sound is not None else "picture"
    return shots, features, importance(features, shots.lengths, mode), mode


def shot_scores(video: Path, options: SummaryOptions, model: tuple[Any, dict[str, Any]] | None = None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(bounds (S, 2) s, importance (S,), selected (S,), duration) without writing files (the
    benchmark's and the tests' view)."""
    shots, _, scores, _ = scored_segments(video, options, model)
    return shots.bounds, scores, shots.select(scores, options.ratio), shots.duration
