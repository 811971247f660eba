"""``mmfuse summarize``: a short video from a long one, or one per row of a table's video column."""

from __future__ import annotations

import argparse
from pathlib import Path

from mmfuse.errors import MmfuseError


def summarize_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", help="a video file, or a table (CSV, Parquet, JSONL) with a video column")
    p.add_argument("--out", required=True, help="folder for summary.mp4, keyframes.png, shots.csv, summary.json "
                   "(a table: one sub-folder per row, and summaries.csv)")
    p.add_argument("--ratio", type=float, default=0.15, help="share of the duration to keep (default: 0.15)")
    p.add_argument("--scoring", default="fused", choices=("fused", "picture", "sound"),
                   help="what decides a shot's importance (default: fused picture and sound)")
    p.add_argument("--max-shot-seconds", type=float, default=5.0,
                   help="split longer shots into segments at most this long (default: 5)")
    p.add_argument("--threshold", type=float, default=27.0,
                   help="PySceneDetect content threshold; higher finds fewer cuts (default: 27)")
    p.add_argument("--column", help="the table's video column (default: the one video column)")
    p.add_argument("--model", help="a summarization model (`mmfuse fit --task summarization`) to score the "
                   "segments instead of the unsupervised picture + sound importance")
    p.add_argument("--no-video", action="store_true", help="write the tables and the contact sheet only")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores)")
    p.add_argument("--quiet", action="store_true", help="no progress")


def summarize(a: argparse.Namespace) -> int:
    from mmfuse.data.video import VIDEO_EXTENSIONS
    from mmfuse.estimators.output_dir import check_output_dir
    from mmfuse.summarize.video import SummaryOptions, summarize_video
    from mmfuse.training.device import set_threads

    options = SummaryOptions(a.ratio, a.scoring, a.max_shot_seconds, a.threshold, not a.no_video)
    out = check_output_dir(a.out, model=a.model)
    set_threads(a.threads)
    model = _model(a.model, a.threads) if a.model else None
    source = Path(a.data)
    if source.suffix.lower() in VIDEO_EXTENSIONS:
        s = summarize_video(source, out, options, verbose=not a.quiet, model=model)
        print(f"kept {s['selected']} of {s['segments']} segments: {s['summary_seconds']:.1f} s of "
              f"{s['duration_seconds']:.1f} s ({s['scoring']} scoring) -> {out}")
        return 0
    return _summarize_table(source, a.column, out, options, not a.quiet, model)


def _model(folder: str, threads: int | None) -> tuple[object, dict]:
    from mmfuse.summarize.supervised import is_summarizer, load_summarizer

    if not is_summarizer(folder):
        raise MmfuseError(f"--model {folder} is not a summarization model (`mmfuse fit --task summarization`)")
    return load_summarizer(folder, verbose=False, num_threads=threads)


def _summarize_table(source: Path, column: str | None, out: Path, options: object, verbose: bool,
                     model: tuple[object, dict] | None) -> int:
    import pandas as pd

    from mmfuse.cli.report import table as text_table
    from mmfuse.data.preprocess import Rejection
    from mmfuse.data.readers import read_table
    from mmfuse.data.schema import infer_schema
    from mmfuse.estimators.io import write_rejected
    from mmfuse.summarize.video import summarize_video, video_path

    table = read_table(source)
    if column is None:
        kinds = infer_schema(table.df, base_dir=table.base_dir, use_audio_tracks=False).kinds
        videos = [c for c, k in kinds.items() if k == "video"]
        if len(videos) != 1:
            found = ", ".join(videos) or "none"
            raise MmfuseError(f"{source}: name the video column with --column (video columns found: {found})")
        column = videos[0]
    if column not in table.df.columns:
        raise MmfuseError(f"{source}: no column {column!r}; columns: {', '.join(map(str, table.df.columns))}")
    rows, rejected = [], []
    for row, cell in table.df[column].items():
        if pd.isna(cell) or not str(cell).strip():
            rejected.append(Rejection(int(row), column, "no video in this row", table.name))
            continue
        video = video_path(table.base_dir, cell)
        target = out / f"row{int(row)}_{video.stem}"
        try:
            s = summarize_video(video, target, options, verbose, model)  # type: ignore[arg-type]
        except MmfuseError as err:
            rejected.append(Rejection(int(row), column, str(err), table.name))
            continue
        rows.append({"row": int(row), "video": str(cell), "folder": str(target), "duration_seconds": s["duration_seconds"],
                     "summary_seconds": s["summary_seconds"], "selected": s["selected"], "segments": s["segments"],
                     "sound": s["sound"]})
    out.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=["row", "video", "folder", "duration_seconds", "summary_seconds", "selected",
                                "segments", "sound"]).to_csv(out / "summaries.csv", index=False)
    if rejected:
        write_rejected(out / "rejected.csv", rejected)
    if rows:
        print(text_table([[r["row"], r["video"], f"{r['summary_seconds']:.1f}", f"{r['duration_seconds']:.1f}"]
                          for r in rows], ["row", "video", "kept s", "of s"]))
    print(f"summarised {len(rows)} video(s) into {out} (summaries.csv)"
          + (f"; left out {len(rejected)} row(s): see {out / 'rejected.csv'}" if rejected else ""))
    return 0 if rows else 2


def fit_summarization(a: argparse.Namespace, params: dict) -> int:
    """``mmfuse fit LABELS --task summarization --target SCORE --out DIR``."""
    from mmfuse.cli.report import format_metrics
    from mmfuse.summarize.supervised import fit_summarizer

    if not a.target:
        raise MmfuseError("--task summarization needs --target: the column of importance scores")
    if a.valid or a.resume:
        raise MmfuseError("--task summarization holds out whole videos itself; --valid and --resume do not apply")
    est = fit_summarizer(a.data, a.target, a.out, params)
    print(format_metrics(est.metrics_, f"validation metrics ({est.n_valid_} segments)"))
    print(f"model written to {a.out}")
    return 0


def evaluate_summarization(a: argparse.Namespace) -> int:
    """``mmfuse evaluate DIR LABELS``: F-score and rank correlations per video and overall."""
    from mmfuse._io import write_json
    from mmfuse.cli.report import format_metrics, table
    from mmfuse.summarize.supervised import evaluate_summarizer, load_summarizer

    if a.correlation or a.robustness or a.k or a.candidates or a.relevant_min is not None:
        raise MmfuseError("--correlation, --robustness, --k, --candidates and --relevant-min do not apply to "
                          "summarization models")
    model, spec = load_summarizer(a.model, verbose=False, num_threads=getattr(a, "num_threads", None))
    result = evaluate_summarizer(model, spec, a.data)
    print(table([[r["video"], f"{r['fscore']:.3f}", f"{r['kendall_tau']:.3f}", f"{r['spearman_rho']:.3f}"]
                 for r in result["videos"]], ["video", "fscore", "kendall_tau", "spearman_rho"]))
    print(format_metrics(result["metrics"], f"summaries at 15 % ({len(result['videos'])} videos)"))
    if a.json:
        write_json(a.json, result)
    return 0
