"""The modelling commands: fit, evaluate, explain, predict, compare.

Their model and run options are generated from ``mmfuse.params`` (``mmfuse.cli.flags``), so a
flag has the name, default and help of the Python parameter it sets.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mmfuse.cli.flags import add_params, given, refuse_foreign
from mmfuse.errors import MmfuseError
from mmfuse.params import (
    INPUT_HANDLING, RUN_TIME, CompareParams, EstimatorParams, PresetParams, RecommenderParams,
    RetrieverParams, defaults, names,
)  # fmt: skip

FIT_VARIANTS = {"": EstimatorParams, "retrieval": RetrieverParams, "recommendation": RecommenderParams}
RUN_PARAMS = (*RUN_TIME, *INPUT_HANDLING, "allow_missing_columns")
"""What a command that uses a saved model may change: how it runs, not what was learned."""
RESET_AT_LOAD = {n: v for n, v in defaults(RetrieverParams).items()
                 if n in (*INPUT_HANDLING, "num_threads", "device")}
"""How a saved model runs unless told otherwise: the declared defaults, not the training run's."""


def _out(text: str = "") -> None:
    print(text, flush=True)


# -------------------------------------------------------------------------- fit
def fit_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", help="training data: CSV, Parquet or JSONL file, or a folder with data.csv")
    p.add_argument("--target", help="column to predict (not with --task retrieval)")
    p.add_argument("--out", required=True, help="model directory to write")
    p.add_argument("--valid", help="validation data (default: hold out --valid-fraction of DATA)")
    p.add_argument("--task", default="auto",
                   choices=("auto", "classification", "regression", "retrieval", "recommendation",
                            "summarization"),
                   help="what to learn (default: auto, from the target column; retrieval with --pair; "
                        "recommendation with --user and --item; summarization: DATA lists video, start, "
                        "end and the --target score)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted fit in --out")
    add_params(p, FIT_VARIANTS)


def fit(a: argparse.Namespace) -> int:
    from mmfuse.estimators.output_dir import directory_lock, finished_model
    from mmfuse.training import distributed

    if not distributed.is_main():  # under torchrun the first process locks, prints and writes
        if a.resume and finished_model(a.out):
            return 0
        with contextlib.redirect_stdout(io.StringIO()):
            return _fit_locked(a)
    with directory_lock(a.out):  # checked before any work; a second fit into it is refused
        if a.resume and finished_model(a.out):
            _out(f"{a.out} already holds a finished model: nothing to resume. "
                 "Fit without --resume to train it again.")
            return 0
        return _fit_locked(a)


def _fit_locked(a: argparse.Namespace) -> int:
    from mmfuse.cli.report import format_metrics
    from mmfuse.estimators import MultimodalClassifier, MultimodalRegressor

    task = a.task
    if task == "recommendation" or (hasattr(a, "user") and hasattr(a, "item") and task == "auto"):
        from mmfuse.cli.recommendation import fit_recommendation

        _one_process("recommendation")
        refuse_foreign(a, FIT_VARIANTS, RecommenderParams, "--task recommendation")
        return fit_recommendation(a, given(a, RecommenderParams))
    if task == "retrieval" or (hasattr(a, "pair") and task == "auto"):
        from mmfuse.cli.retrieval import fit_retrieval

        _one_process("retrieval")
        refuse_foreign(a, FIT_VARIANTS, RetrieverParams, "--task retrieval")
        return fit_retrieval(a, given(a, RetrieverParams))
    if task == "summarization":
        from mmfuse.cli.summarize import fit_summarization

        _one_process("summarization")
        refuse_foreign(a, FIT_VARIANTS, EstimatorParams, "--task summarization")
        return fit_summarization(a, given(a, EstimatorParams))
    if not a.target:
        raise MmfuseError("--target is required (or --task retrieval --pair COL_A,COL_B)")
    refuse_foreign(a, FIT_VARIANTS, EstimatorParams, "classification or regression (it belongs to --task retrieval)")
    if task == "auto":
        task = _infer_task(a)
    cls = MultimodalClassifier if task == "classification" else MultimodalRegressor
    est = cls(**given(a, EstimatorParams))
    est.fit(a.data, target=a.target, valid=a.valid, out_dir=a.out, resume=a.resume)
    _out(format_metrics(est.metrics_, f"validation metrics ({est.n_valid_} records)"))
    if est.rejected_:
        _out(f"skipped {len({r.row for r in est.rejected_})} bad record(s): see {Path(a.out) / 'rejected.csv'}")
    _out(f"model written to {a.out}")
    return 0


def _one_process(task: str) -> None:
    """Refuses torchrun for the tasks that train in one process only."""
    from mmfuse.training.distributed import is_distributed

    if is_distributed():
        raise MmfuseError(f"training on several processes (torchrun) covers classification and "
                          f"regression; run --task {task} as one process")


def _infer_task(a: argparse.Namespace) -> str:
    from mmfuse.data.readers import read_table
    from mmfuse.data.target import infer_task

    table = read_table(a.data)
    if a.target not in table.df.columns:
        raise MmfuseError(
            f"{table.name}: unknown target column {a.target!r}; "
            f"the columns are: {', '.join(table.df.columns)}"
        )
    task = infer_task(table.df[a.target])
    if getattr(a, "verbose", True):
        print(f"task: {task} (inferred from column {a.target!r}; override with --task)", file=sys.stderr)
    return task


# --------------------------------------------------------------------- evaluate
def evaluate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="model directory written by `mmfuse fit`")
    p.add_argument("data", help="labelled data (must contain the target column)")
    p.add_argument("--json", help="also write {\"metrics\": {...}} to this file")
    p.add_argument("--correlation", action="store_true",
                   help="linear CKA and CCA between every pair of modality embeddings")
    p.add_argument("--robustness", action="store_true",
                   help="the metric as each modality is corrupted or dropped at increasing severity")
    p.add_argument("--out", help="folder for rejected.csv and the correlation / robustness tables and plots")
    p.add_argument("--k", help="recommendation models: cut-offs of the ranking metrics (default: 10,20)")
    p.add_argument("--candidates", help="recommendation models: rank only the item ids in this table")
    p.add_argument("--relevant-min", type=float,
                   help="recommendation models: only test interactions rated at least this are relevant")
    add_params(p, FIT_VARIANTS, only=RUN_PARAMS)


def evaluate(a: argparse.Namespace) -> int:
    from mmfuse._io import write_json
    from mmfuse.cli.analysis import correlation_section, robustness_section
    from mmfuse.cli.report import format_metrics
    from mmfuse.data.readers import read_table
    from mmfuse.evaluation.scoring import score

    from mmfuse.estimators.output_dir import check_output_dir, check_output_file

    if a.json:
        check_output_file(a.json, "--json", data=a.data, model=a.model)
    if a.out:
        check_output_dir(a.out, model=a.model)
    from mmfuse.summarize.supervised import is_summarizer

    if is_summarizer(a.model):
        from mmfuse.cli.summarize import evaluate_summarization

        return evaluate_summarization(a)
    est = load_model(a)
    if est.task_ == "recommendation":
        from mmfuse.cli.recommendation import evaluate_recommendation

        return evaluate_recommendation(est, a)
    if a.k or a.candidates or a.relevant_min is not None:
        raise MmfuseError("--k, --candidates and --relevant-min are for recommendation models")
    if est.task_ == "retrieval":
        from mmfuse.cli.retrieval import evaluate_retrieval

        if a.correlation or a.robustness:
            raise MmfuseError(f"{a.model} is a retrieval model; --correlation and --robustness are for "
                              "classifiers and regressors: drop them to measure its recall")
        return evaluate_retrieval(est, a)
    table = read_table(a.data)
    enc = est.pipeline_.prepare(table, with_target=True)  # decoded once for every section
    outputs, distrusted = est.fitted_model.run(enc)
    metrics = score(est.fitted_model, enc, outputs)
    total = len(table.df) + len(table.bad_lines)
    _out(format_metrics(metrics, f"metrics on {a.data} ({len(enc)} of {total} records)"))
    counts = {m: int(v.sum()) for m, v in distrusted.items() if v.any()}
    if counts:
        parts = ", ".join(f"{m} in {n} of {len(enc)} records" for m, n in counts.items())
        _out(f"guard: treated as missing, its input lying far outside the training data: {parts}")
    out = Path(a.out) if a.out else None
    if enc.rejected:
        report_skipped(enc.rejected, total - len(enc), out, a.json)
    if a.correlation:
        _out("\n" + correlation_section(est.fitted_model, enc, out))
    if a.robustness:
        _out("\n" + robustness_section(est.fitted_model, table, out, clean=enc, verbose=est.verbose))
    if out is not None and (a.correlation or a.robustness):
        _out(f"\nwrote tables and plots to {out}")
    if a.json:
        rejected = [{"row": r.row, "column": r.column, "reason": r.reason} for r in enc.rejected]
        write_json(a.json, {"metrics": metrics, "n_records": total, "n_scored": len(enc),
                            "n_rejected": total - len(enc), "rejected": rejected,
                            "distrusted": {m: int(v.sum()) for m, v in distrusted.items()}})
    return 0


def report_skipped(rejected: list[Any], skipped: int, out: Path | None, json_file: str | None) -> None:
    """Says which records were left out of the metrics: listed in --out/rejected.csv, in the
    --json file, or else printed."""
    from mmfuse.cli.report import rejection_lines
    from mmfuse.estimators.io import write_rejected

    print(f"warning: {skipped} bad record(s) were left out of these metrics:", file=sys.stderr)
    if out is not None:
        write_rejected(out / "rejected.csv", rejected)
        print(f"  listed in {out / 'rejected.csv'}", file=sys.stderr)
    elif json_file:
        print(f"  listed under \"rejected\" in {json_file}", file=sys.stderr)
    else:
        print(rejection_lines(rejected) + "\n  (pass --out DIR to keep the list in DIR/rejected.csv)",
              file=sys.stderr)


# ---------------------------------------------------------------------- explain
def explain_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="model directory written by `mmfuse fit`")
    p.add_argument("data", help="records to explain (with the target column, ablation is added)")
    p.add_argument("--out", required=True, help="folder for contributions.json/png, samples/, correlation")
    p.add_argument("--sample", type=int, help="also explain this data row at the input level")
    p.add_argument("--max-records", type=int, default=2000,
                   help="explain a seeded random subset of at most this many records (default: 2000)")
    add_params(p, FIT_VARIANTS, only=RUN_PARAMS)


def explain(a: argparse.Namespace) -> int:
    from mmfuse.cli.analysis import correlation_section
    from mmfuse.cli.report import table
    from mmfuse.estimators.explain import explain
    from mmfuse.estimators.output_dir import check_output_dir

    out = check_output_dir(a.out, model=a.model)
    from mmfuse.summarize.supervised import is_summarizer

    if is_summarizer(a.model):
        raise MmfuseError(f"{a.model} is a summarization model: `mmfuse summarize VIDEO --model {a.model}` writes "
                          "each segment's score to shots.csv")
    est = load_model(a)
    if est.task_ == "recommendation":
        from mmfuse.cli.recommendation import explain_recommendation

        return explain_recommendation(est, a, out)
    if est.task_ == "retrieval":
        raise MmfuseError(f"{a.model} is a retrieval model; explain works on classifiers and regressors "
                          "(`mmfuse evaluate MODEL DATA` measures a retrieval model's recall)")
    result = explain(est.fitted_model, est.pipeline_, a.data, out, sample=a.sample,
                     max_records=a.max_records, seed=est.seed)
    summary = result["summary"]
    _out(_contribution_table(summary, table))
    _out("\n" + correlation_section(est.fitted_model, result["encoded"], out))
    _out(f"\nwrote {out / 'contributions.json'}, {out / 'contributions.png'}"
         + (f" and {out / 'samples'}" if a.sample is not None else "") + f", {out / 'correlation.csv'}")
    return 0


def _contribution_table(summary: dict, table: Callable[..., str]) -> str:
    mean_abs, mean = summary["mean_abs"], summary["mean"]
    ablation = (summary.get("ablation") or {}).get("deltas", {})
    weights = summary.get("fusion_weights") or {}
    nan = float("nan")
    rows = [(m, mean_abs[m], mean[m], ablation.get(m, nan), weights.get(m, nan))
            for m in sorted(summary["modalities"], key=lambda m: -mean_abs[m])]
    head = ("modality", "mean |Shapley|", "mean Shapley", "ablation delta", "fusion weight")
    hidden = ("a hidden modality replaced by its training-mean embedding" if summary.get("baseline") == "training_mean"
              else "a hidden modality masked")
    return f"modality contributions (Shapley values; {hidden})\n" + table(rows, head)


def load_model(a: argparse.Namespace) -> Any:
    """The model directory ``a.model``, run as ``open_model`` says."""
    return open_model(a.model, a)


def open_model(path: str, a: argparse.Namespace, **fixed: Any) -> Any:
    """The model directory ``path`` with the run options given on the command line, the
    declared defaults for the others (progress is shown unless --quiet, whatever the model was
    trained with), and ``fixed`` where the command decides."""
    from mmfuse.estimators.io import load

    options = {**given(a, RetrieverParams), **given(a, EstimatorParams)}
    chosen = {k: v for k, v in options.items() if k in RUN_PARAMS}
    return load(path, **{**RESET_AT_LOAD, **fixed, **chosen})


# ---------------------------------------------------------------------- predict
def predict_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="model directory written by `mmfuse fit`")
    p.add_argument("data", help="records to predict (the target column is not needed)")
    p.add_argument("--out", required=True, help="CSV to write: one row per input row, same order")
    p.add_argument("--labels", help="retrieval models: zero-shot labels, e.g. cat,dog,car")
    p.add_argument("--prompt", default="{}", help="retrieval models: label prompt, e.g. 'a photo of a {}'")
    add_params(p, FIT_VARIANTS, only=RUN_PARAMS)


def predict(a: argparse.Namespace) -> int:
    from mmfuse.cli.report import write_predictions
    from mmfuse.data.readers import read_table
    from mmfuse.estimators.output_dir import check_output_file

    check_output_file(a.out, data=a.data, model=a.model)
    est = load_model(a)
    if est.task_ == "retrieval":
        from mmfuse.cli.retrieval import predict_labels

        return predict_labels(est, a)
    if a.labels:
        raise MmfuseError("--labels is for retrieval models (zero-shot); this is a classifier or regressor")
    table = read_table(a.data)
    if table.df.empty and not table.bad_lines:
        raise MmfuseError(f"{table.name}: no records to predict")
    frame, rejected = est.predict_frame(table)
    ids = [c for c, why in est.schema_.ignored.items()
           if why.startswith("identifier") and c in table.df.columns]
    n = write_predictions(a.out, table, frame, rejected, ids)
    _out(f"wrote {n} predictions to {a.out}" + (f" ({len(rejected)} bad value(s), see the error column)" if rejected else ""))
    return 0


# ---------------------------------------------------------------------- compare
def compare_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", help="labelled data: CSV, Parquet or JSONL file, or a folder with data.csv")
    p.add_argument("--target", required=True, help="column to predict")
    p.add_argument("--out", required=True, help="folder for leaderboard.csv, folds.csv and report.html")
    p.add_argument("--fusions", default="all", help="comma-separated fusion names or 'all' (default: all)")
    p.add_argument("--folds", type=int, default=3, help="number of folds (default: 3)")
    p.add_argument("--task", default="auto", choices=("auto", "classification", "regression"))
    p.add_argument("--no-unimodal", action="store_true", help="skip the single-modality baselines")
    p.add_argument("--explain", action="store_true",
                   help="add modality contributions, inter-modal correlation and robustness to the report")
    add_params(p, {"": CompareParams}, exclude=("fusion", "level", "allow_missing_columns", *names(PresetParams)))


def compare(a: argparse.Namespace) -> int:
    from mmfuse.cli.report import table
    from mmfuse.estimators.compare import compare as compare_models
    from mmfuse.estimators.compare_report import recommend, recommendation_text

    board = compare_models(
        a.data, a.target, fusions=a.fusions, folds=a.folds, out_dir=a.out, task=a.task,
        unimodal=not a.no_unimodal, explain=a.explain, **given(a, CompareParams),
    )
    metric = next(c for c in board.columns if c.endswith("_mean"))
    name = metric[: -len("_mean")]
    rows = [(r["name"], r["level"] if r["group"] == "fused" else "unimodal", f"{r[metric]:.4f}",
             f"{r[name + '_std']:.4f}", f"{r['train_seconds']:.1f}", int(r["parameters"]))
            for _, r in board.iterrows()]
    _out(table(rows, ("model", "level", f"{name} mean", "std", "seconds", "parameters")))
    task = "classification" if name == "accuracy" else "regression"
    _out("\n" + recommendation_text(recommend(board, task)))
    _out(f"\nwrote {Path(a.out) / 'leaderboard.csv'} and {Path(a.out) / 'report.html'}")
    return 0
