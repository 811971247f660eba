"""Sub-commands of ``mmfuse``: each is (name, help, examples, arguments, run)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any
from dataclasses import dataclass
from pathlib import Path

from mmfuse.errors import MmfuseError


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    examples: tuple[str, ...]
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def _out(text: str = "") -> None:
    print(text, flush=True)


# ------------------------------------------------------------------------- demo
DEMO_MIN_ROWS = 60
def _demo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    p.add_argument("--rows", type=int, default=1000, help="records to generate (default: 1000)")
    p.add_argument("--epochs", type=int, default=25, help="maximum epochs per model (default: 25)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores)")


def _demo(a: argparse.Namespace) -> int:
    from mmfuse.estimators.demo import format_table, run_demo
    from mmfuse.estimators.output_dir import check_output_dir

    if a.rows < DEMO_MIN_ROWS:
        raise MmfuseError(f"--rows must be at least {DEMO_MIN_ROWS} (every class needs records on "
                          f"both sides of the train/test split), got {a.rows}")
    check_output_dir(a.out)
    summary = run_demo(Path(a.out), rows=a.rows, epochs=a.epochs, seed=a.seed, num_threads=a.threads)
    _out(format_table(summary["results"]))
    _out(f"\nwrote {Path(a.out) / 'summary.json'}")
    return 0


# ------------------------------------------------------------------------- info
def _info_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", help="CSV, Parquet or JSONL file, or a folder with data.csv")
    p.add_argument("--target", help="target column (shows its balance and the task)")
    p.add_argument("--kinds", help="kind overrides, e.g. zip=categorical,notes=text")


def _info(a: argparse.Namespace) -> int:
    from mmfuse.cli.report import describe_table

    _out(describe_table(a.data, a.target, a.kinds))
    return 0


# -------------------------------------------------------------------------- fit
def _fit_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", help="training data: CSV, Parquet or JSONL file, or a folder with data.csv")
    p.add_argument("--target", help="column to predict (not with --task retrieval)")
    p.add_argument("--out", required=True, help="model directory to write")
    p.add_argument("--valid", help="validation data (default: hold out 20%% of DATA)")
    p.add_argument("--task", default="auto", choices=("auto", "classification", "regression", "retrieval"))
    p.add_argument("--pair", metavar="COL_A,COL_B",
                   help="retrieval: the two columns to map into one space, e.g. image,caption")
    p.add_argument("--projection", default="auto", choices=("auto", "linear", "mlp"),
                   help="retrieval: how pretrained towers reach the shared space (default auto: "
                        "with frozen networks both are trained and validation keeps the better)")
    p.add_argument("--level", choices=("early", "feature", "late"), help="fusion level (default: from --fusion, else feature)")
    p.add_argument("--fusion", help="fusion operator (see `mmfuse list fusions`)")
    p.add_argument("--features", help="comma-separated columns to use (default: all but the target)")
    p.add_argument("--kinds", help="kind overrides, e.g. zip=categorical,notes=text")
    p.add_argument("--encoder", help="encoders per kind or column, e.g. text=transformer,audio=gru")
    _pretrained_args(p)
    p.add_argument("--epochs", type=int, default=30, help="maximum epochs (default: 30)")
    p.add_argument("--batch-size", type=int, default=64, help="records per step (default: 64)")
    p.add_argument("--lr", type=float, default=2e-3, help="learning rate (default: 0.002)")
    p.add_argument("--patience", type=int, default=6, help="early-stopping patience (default: 6)")
    p.add_argument("--dim", type=int, default=128, help="embedding width (default: 128)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    p.add_argument("--augment", default="light", choices=("none", "light", "strong"))
    p.add_argument("--modality-dropout", type=float, default=0.0, help="train for missing modalities")
    p.add_argument("--image-size", type=int, default=32, help="image side in pixels (default: 32)")
    _bad_record_args(p)
    p.add_argument("--resume", action="store_true", help="continue an interrupted fit in --out")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores)")
    p.add_argument("--quiet", action="store_true", help="print only the final metrics")


def _pretrained_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-pretrained", action="store_true",
                   help="default to from-scratch encoders even where pretrained ones are installed")
    p.add_argument("--finetune", metavar="KIND[,KIND]",
                   help="train these pretrained encoders too, at a lower learning rate (default: frozen)")
    p.add_argument("--cache-dir", help="feature cache of frozen encoders (default: $MMFUSE_CACHE_DIR or ~/.cache/mmfuse)")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the feature cache")


def _pretrained_params(a: argparse.Namespace) -> dict[str, object]:
    return {"pretrained": not a.no_pretrained, "finetune": a.finetune,
            "cache_dir": a.cache_dir, "use_cache": not a.no_cache}


def _bad_record_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--on-bad-record", default="raise", choices=("raise", "skip"),
                   help="stop on a bad value (raise, default) or skip the record (listed in rejected.csv)")
    p.add_argument("--missing-files", default="error", choices=("error", "missing"),
                   help="a media file that does not exist is an error (default) or a missing modality")
    p.add_argument("--allow-missing-columns", action="store_true",
                   help="a feature column absent from the data counts as a missing modality "
                        "instead of an error")


def _fit(a: argparse.Namespace) -> int:
    from mmfuse.estimators.output_dir import directory_lock, finished_model

    with directory_lock(a.out):  # checked before any work; a second fit into it is refused
        if a.resume and finished_model(a.out):
            _out(f"{a.out} already holds a finished model: nothing to resume. "
                 "Fit without --resume to train it again.")
            return 0
        return _fit_locked(a)


def _fit_locked(a: argparse.Namespace) -> int:
    from mmfuse.cli.report import format_metrics
    from mmfuse.data.readers import read_table
    from mmfuse.data.target import infer_task
    from mmfuse.estimators import MultimodalClassifier, MultimodalRegressor

    task = a.task
    if task == "retrieval" or (a.pair and task == "auto"):
        from mmfuse.cli.retrieval import fit_retrieval

        return fit_retrieval(a, _pretrained_params(a))
    if not a.target:
        raise MmfuseError("--target is required (or --task retrieval --pair COL_A,COL_B)")
    if a.pair:
        raise MmfuseError("--pair belongs to --task retrieval")
    if task == "auto":
        table = read_table(a.data)
        if a.target not in table.df.columns:
            raise MmfuseError(
                f"{table.name}: unknown target column {a.target!r}; "
                f"the columns are: {', '.join(table.df.columns)}"
            )
        task = infer_task(table.df[a.target])
        if not a.quiet:
            print(f"task: {task} (inferred from column {a.target!r}; override with --task)", file=sys.stderr)
    cls = MultimodalClassifier if task == "classification" else MultimodalRegressor
    est = cls(
        fusion=a.fusion, level=a.level, encoders=a.encoder, epochs=a.epochs,
        batch_size=a.batch_size, lr=a.lr, patience=a.patience, dim=a.dim, seed=a.seed,
        device=a.device, augment=a.augment, modality_dropout=a.modality_dropout,
        on_bad_record=a.on_bad_record, missing_files=a.missing_files, kinds=a.kinds,
        features=_columns(a.features), image_size=a.image_size, num_threads=a.threads,
        verbose=not a.quiet, allow_missing_columns=a.allow_missing_columns, **_pretrained_params(a),
    )
    est.fit(a.data, target=a.target, valid=a.valid, out_dir=a.out, resume=a.resume)
    _out(format_metrics(est.metrics_, f"validation metrics ({est.n_valid_} records)"))
    if est.rejected_:
        _out(f"skipped {len({r.row for r in est.rejected_})} bad record(s): see {Path(a.out) / 'rejected.csv'}")
    _out(f"model written to {a.out}")
    return 0


def _columns(text: str | None) -> list[str] | None:
    return [c.strip() for c in text.split(",") if c.strip()] if text else None


# --------------------------------------------------------------------- evaluate
def _evaluate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="model directory written by `mmfuse fit`")
    p.add_argument("data", help="labelled data (must contain the target column)")
    p.add_argument("--json", help="also write {\"metrics\": {...}} to this file")
    p.add_argument("--correlation", action="store_true",
                   help="linear CKA and CCA between every pair of modality embeddings")
    p.add_argument("--robustness", action="store_true",
                   help="the metric as each modality is corrupted or dropped at increasing severity")
    p.add_argument("--out", help="folder for the correlation / robustness tables and plots")
    _bad_record_args(p)


def _evaluate(a: argparse.Namespace) -> int:
    from mmfuse._io import write_json
    from mmfuse.cli.analysis import correlation_section, robustness_section
    from mmfuse.cli.report import format_metrics
    from mmfuse.estimators.io import load

    from mmfuse.data.readers import read_table

    from mmfuse.estimators.output_dir import check_output_dir, check_output_file

    if a.json:
        check_output_file(a.json, "--json")
    if a.out:
        check_output_dir(a.out)
    est = _load(a, load)
    if type(est).__name__ == "MultimodalRetriever":
        from mmfuse.cli.retrieval import evaluate_retrieval

        return evaluate_retrieval(est, a)
    table = read_table(a.data)
    enc = est._encode(est.preprocessor_, table, with_target=True)  # decoded once for every section
    metrics = est._evaluate_encoded(enc)
    total = len(table.df) + len(table.bad_lines)
    _out(format_metrics(metrics, f"metrics on {a.data} ({len(enc)} of {total} records)"))
    out = Path(a.out) if a.out else None
    if enc.rejected:
        _report_skipped(enc.rejected, total - len(enc), out, a.json)
    if a.correlation:
        _out("\n" + correlation_section(est, enc, out))
    if a.robustness:
        _out("\n" + robustness_section(est, table, out, clean=enc))
    if out is not None and (a.correlation or a.robustness):
        _out(f"\nwrote tables and plots to {out}")
    if a.json:
        rejected = [{"row": r.row, "column": r.column, "reason": r.reason} for r in enc.rejected]
        write_json(a.json, {"metrics": metrics, "n_records": total, "n_scored": len(enc),
                            "n_rejected": total - len(enc), "rejected": rejected})
    return 0


def _report_skipped(rejected: list[Any], skipped: int, out: Path | None, json_file: str | None) -> None:
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
def _explain_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="model directory written by `mmfuse fit`")
    p.add_argument("data", help="records to explain (with the target column, ablation is added)")
    p.add_argument("--out", required=True, help="folder for contributions.json/png, samples/, correlation")
    p.add_argument("--sample", type=int, help="also explain this data row at the input level")
    p.add_argument("--max-records", type=int, default=2000,
                   help="explain a seeded random subset of at most this many records (default: 2000)")
    _bad_record_args(p)


def _explain(a: argparse.Namespace) -> int:
    from mmfuse.cli.analysis import correlation_section
    from mmfuse.cli.report import table
    from mmfuse.estimators.explain import explain
    from mmfuse.estimators.io import load

    from mmfuse.estimators.output_dir import check_output_dir

    out = check_output_dir(a.out)
    est = _load(a, load)
    result = explain(est, a.data, out, sample=a.sample, max_records=a.max_records)
    summary = result["summary"]
    _out(_contribution_table(summary, table))
    _out("\n" + correlation_section(est, result["encoded"], out))
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
    return "modality contributions (Shapley values over presence masks)\n" + table(rows, head)


def _load(a: argparse.Namespace, load: Callable[[str], object]):  # type: ignore[no-untyped-def]
    est = load(a.model)
    est.set_params(on_bad_record=a.on_bad_record, missing_files=a.missing_files, verbose=False)
    if "allow_missing_columns" in est.get_params():  # classifiers and regressors
        est.set_params(allow_missing_columns=a.allow_missing_columns)
    return est


# ---------------------------------------------------------------------- predict
def _predict_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="model directory written by `mmfuse fit`")
    p.add_argument("data", help="records to predict (the target column is not needed)")
    p.add_argument("--out", required=True, help="CSV to write: one row per input row, same order")
    p.add_argument("--labels", help="retrieval models: zero-shot labels, e.g. cat,dog,car")
    p.add_argument("--prompt", default="{}", help="retrieval models: label prompt, e.g. 'a photo of a {}'")
    _bad_record_args(p)


def _predict(a: argparse.Namespace) -> int:
    from mmfuse.cli.report import write_predictions
    from mmfuse.data.readers import read_table
    from mmfuse.estimators.io import load
    from mmfuse.estimators.output_dir import check_output_file

    check_output_file(a.out)
    est = _load(a, load)
    if type(est).__name__ == "MultimodalRetriever":
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
def _compare_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", help="labelled data: CSV, Parquet or JSONL file, or a folder with data.csv")
    p.add_argument("--target", required=True, help="column to predict")
    p.add_argument("--out", required=True, help="folder for leaderboard.csv, folds.csv and report.html")
    p.add_argument("--fusions", default="all", help="comma-separated fusion names or 'all' (default: all)")
    p.add_argument("--folds", type=int, default=3, help="number of folds (default: 3)")
    p.add_argument("--task", default="auto", choices=("auto", "classification", "regression"))
    p.add_argument("--no-unimodal", action="store_true", help="skip the single-modality baselines")
    p.add_argument("--explain", action="store_true",
                   help="add modality contributions, inter-modal correlation and robustness to the report")
    p.add_argument("--features", help="comma-separated columns to use (default: all but the target)")
    p.add_argument("--kinds", help="kind overrides, e.g. zip=categorical,score=ignore")
    p.add_argument("--encoder", help="encoders per kind or column, e.g. text=transformer")
    _pretrained_args(p)
    p.add_argument("--epochs", type=int, default=20, help="maximum epochs per model (default: 20)")
    p.add_argument("--batch-size", type=int, default=64, help="records per step (default: 64)")
    p.add_argument("--patience", type=int, default=6, help="early-stopping patience (default: 6)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    p.add_argument("--modality-dropout", type=float, default=0.0, help="train for missing modalities")
    _bad_record_args(p)
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores)")
    p.add_argument("--quiet", action="store_true", help="print only the leaderboard")


def _compare(a: argparse.Namespace) -> int:
    from mmfuse.cli.report import table
    from mmfuse.estimators.compare import compare
    from mmfuse.estimators.compare_report import recommend, recommendation_text

    board = compare(
        a.data, a.target, fusions=a.fusions, folds=a.folds, out_dir=a.out, task=a.task,
        unimodal=not a.no_unimodal, verbose=not a.quiet, explain=a.explain, features=_columns(a.features),
        kinds=a.kinds, encoders=a.encoder, epochs=a.epochs, batch_size=a.batch_size,
        patience=a.patience, seed=a.seed, device=a.device, modality_dropout=a.modality_dropout,
        on_bad_record=a.on_bad_record, missing_files=a.missing_files, num_threads=a.threads,
        **_pretrained_params(a),
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


# ------------------------------------------------------------------------- list
def _list_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("what", choices=("fusions", "encoders"), help="what to list")


def _list(a: argparse.Namespace) -> int:
    from mmfuse.cli.report import list_encoders_table, list_fusions_table

    _out(list_fusions_table() if a.what == "fusions" else list_encoders_table())
    return 0


def _retrieval(name: str) -> Callable[..., int]:
    """A function of ``mmfuse.cli.retrieval``, imported when the command runs."""

    def call(arg: Any) -> Any:
        from mmfuse.cli import retrieval

        return getattr(retrieval, name)(arg)

    return call


# ------------------------------------------------------------------------ cache
def _cache_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=("info", "clear", "prune"),
                   help="show, empty, or shrink to --max-gb (deletes only mmfuse's own entries)")
    p.add_argument("--cache-dir", help="cache folder (default: $MMFUSE_CACHE_DIR or ~/.cache/mmfuse)")
    p.add_argument("--max-gb", type=float, default=None, help="size limit for prune (default: 20)")
    p.add_argument("--json", action="store_true", help="print info as JSON")


def _cache(a: argparse.Namespace) -> int:
    """``mmfuse cache``: clear and prune refuse (exit 2) a folder that is not mmfuse's cache and
    delete only entries of mmfuse's layout; a user's file inside the cache folder stays."""
    import json

    from mmfuse.cli.report import table
    from mmfuse.data.cache import FeatureCache

    cache = FeatureCache(a.cache_dir, None if a.max_gb is None else a.max_gb * 1024**3)
    if a.action == "clear":
        freed = cache.clear()
        kept = cache.info()["other_files"]
        _out(f"cleared {cache.root}: freed {freed / 1024**2:.1f} MB"
             + (f"; kept {kept} file(s) or folder(s) mmfuse did not write" if kept else ""))
        return 0
    if a.action == "prune":
        _out(f"pruned {cache.prune()} least recently used entries from {cache.root}")
        return 0
    info = cache.info()
    if a.json:
        _out(json.dumps(info, indent=2))
        return 0
    exists = cache.root.is_dir()
    _out(f"feature cache {info['root']}: {info['entries']} entries, "
         f"{int(info['bytes']) / 1024**2:.1f} MB of {int(info['max_bytes']) / 1024**3:.0f} GB"  # type: ignore[call-overload]
         + ("" if exists else " (the folder does not exist yet)"))
    rows = [(e["fingerprint"], e["entries"], f"{e['bytes'] / 1024**2:.1f}") for e in info["encoders"]]  # type: ignore[attr-defined]
    if rows:
        _out(table(rows, ("encoder and packages", "entries", "MB")))
    if info["temporary_files"]:
        _out(f"{info['temporary_files']} leftover temporary file(s) from interrupted writes; "
             "`mmfuse cache clear` removes them")
    if exists and not info["tagged"] and info["other_files"]:
        _out(f"note: {cache.root} is not an mmfuse cache (no CACHEDIR.TAG of mmfuse; "
             f"{info['other_files']} file(s) or folder(s) mmfuse did not write): mmfuse will not "
             "write to, clear or prune it")
    elif exists and not info["tagged"]:
        _out(f"note: {cache.root} has no CACHEDIR.TAG yet; mmfuse adds it on the next write, "
             "clear or prune")
    return 0


COMMANDS = (
    Command("demo", "generate the built-in dataset, train unimodal and fused models, compare them",
            ("mmfuse demo", "mmfuse demo --out /tmp/demo --epochs 10"), _demo_args, _demo),
    Command("info", "show the inferred schema, missing values and target balance",
            ("mmfuse info data.csv", "mmfuse info data.csv --target label --kinds zip=categorical"),
            _info_args, _info),
    Command("fit", "train a fused model and write a model directory",
            ("mmfuse fit data.csv --target label --out model",
             "mmfuse fit data.csv --target price --task regression --out model --fusion concat",
             "mmfuse fit data.csv --target label --out model --level late --on-bad-record skip",
             "mmfuse fit data.csv --target label --out model --resume",
             "mmfuse fit data.csv --target label --out model --encoder image=cnn,text=gru",
             "mmfuse fit data.csv --target label --out model --finetune image --device cuda",
             "mmfuse fit pairs.csv --task retrieval --pair image,caption --out retriever"),
            _fit_args, _fit),
    Command("evaluate", "compute metrics of a trained model on labelled data",
            ("mmfuse evaluate model test.csv", "mmfuse evaluate model test.csv --json metrics.json",
             "mmfuse evaluate model test.csv --correlation --robustness --out report"),
            _evaluate_args, _evaluate),
    Command("explain", "which modality drove the decisions: Shapley values, ablation, attention, plots",
            ("mmfuse explain model test.csv --out explained",
             "mmfuse explain model test.csv --out explained --sample 12"),
            _explain_args, _explain),
    Command("predict", "predict with a trained model; writes one CSV row per input row",
            ("mmfuse predict model new.csv --out predictions.csv",), _predict_args, _predict),
    Command("compare", "compare unimodal baselines and fusion operators under one protocol",
            ("mmfuse compare data.csv --target label --out cmp",
             "mmfuse compare data.csv --target label --out cmp --fusions concat,attention,mean --folds 5"),
            _compare_args, _compare),
    Command("index", "embed a collection with a retrieval model and store a vector index",
            ("mmfuse index model photos.csv --column image --out photo_index",
             "mmfuse index model photos.csv --column image --out photo_index --approximate",
             "mmfuse index model more.csv --column image --out photo_index --append"),
            _retrieval("index_args"), _retrieval("index_command")),
    Command("search", "rank an index against a text or an image / audio file",
            ("mmfuse search photo_index 'a red circle on a dark background'",
             "mmfuse search photo_index query.jpg -k 5 --json"),
            _retrieval("search_args"), _retrieval("search_command")),
    Command("cache", "show, empty or shrink the feature cache of frozen pretrained encoders",
            ("mmfuse cache info", "mmfuse cache clear --cache-dir /data/mmfuse-cache",
             "mmfuse cache prune --max-gb 5"), _cache_args, _cache),
    Command("list", "list the registered fusion operators or encoders",
            ("mmfuse list fusions", "mmfuse list encoders"), _list_args, _list),
)
