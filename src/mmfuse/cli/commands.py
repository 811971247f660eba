"""Sub-commands of ``mmfuse``: each is (name, help, examples, arguments, run)."""

from __future__ import annotations

import argparse
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
    for name, part in summary["recommendation"].items():
        if name != "model":
            _out(f"recommendation, {name} ({part['users']} users, {part['items ranked']} items ranked): "
                 f"NDCG@20 {part['mmfuse']['ndcg@20']:.3f}, recall@20 {part['mmfuse']['recall@20']:.3f}; "
                 f"most popular {part['most popular']['ndcg@20']:.3f} / {part['most popular']['recall@20']:.3f}")
    tone = summary["tone"]
    if "skipped" in tone:
        _out(f"tone row skipped: {tone['skipped']}")
    else:
        scores = ", ".join(f"{name} {m['accuracy']:.3f}" for name, m in tone["emotion"].items())
        s = tone["sentiment"]
        _out(f"tone (emotion from the words and how they are said, speakers never heard): {scores}; "
             f"sentiment score acc2 {s['acc2']:.3f}, acc7 {s['acc7']:.3f}, mae {s['mae']:.3f}")
    video = summary["video_summary"]
    if "skipped" in video:
        _out(f"video summary row skipped: {video['skipped']}")
    else:
        _out(f"video summary ({video['folder']}): {video['summary_seconds']:.1f} s of {video['duration_seconds']:.1f} s, "
             f"{video['events_kept']}/{video['events']} events and {video['decoys_kept']}/{video['decoys']} silent "
             f"decoys kept, F-score {video['fscore']:.3f}")
    serving = summary["serving"]
    _out(f"\nserve the best fused model, the image index and the recommender, then open "
         f"http://127.0.0.1:8000/ :\n"
         f"  mmfuse serve {serving['model']} {serving['recommender']} --index {serving['index']}")
    return 0


# ------------------------------------------------------------------------- info
def _info_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", help="CSV, Parquet or JSONL file, or a folder with data.csv; or a model "
                                "directory (its model, validation metrics and a preset's leaderboard)")
    p.add_argument("--target", help="target column (shows its balance and the task)")
    p.add_argument("--kinds", help="kind overrides, e.g. zip=categorical,notes=text")


def _info(a: argparse.Namespace) -> int:
    from mmfuse.cli.report import describe_model, describe_table

    folder = Path(a.data)
    if (folder / "config.json").is_file():
        _out(describe_model(folder))
        return 0
    _out(describe_table(a.data, a.target, a.kinds))
    return 0


# ------------------------------------------------------------------------- list
def _list_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("what", choices=("fusions", "encoders"), help="what to list")


def _list(a: argparse.Namespace) -> int:
    from mmfuse.cli.report import list_encoders_table, list_fusions_table

    _out(list_fusions_table() if a.what == "fusions" else list_encoders_table())
    return 0


def _lazy(module: str, name: str) -> Callable[..., Any]:
    """A function of ``mmfuse.cli.<module>``, imported when it is called."""

    def call(arg: Any) -> Any:
        import importlib

        return getattr(importlib.import_module(f"mmfuse.cli.{module}"), name)(arg)

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

    if a.max_gb is not None and not 0 <= a.max_gb < float("inf"):
        raise MmfuseError(f"--max-gb must be a finite size in GB, 0 or more, got {a.max_gb}; "
                          "0 empties the cache, like `mmfuse cache clear`")
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
             "mmfuse fit pairs.csv --task retrieval --pair image,caption --out retriever",
             "mmfuse fit plays.csv --task recommendation --user user --item item --items items.csv --out rec"),
            _lazy("modeling", "fit_args"), _lazy("modeling", "fit")),
    Command("evaluate", "compute metrics of a trained model on labelled data",
            ("mmfuse evaluate model test.csv", "mmfuse evaluate model test.csv --json metrics.json",
             "mmfuse evaluate rec test_plays.csv --k 10,20 --candidates cold_items.csv",
             "mmfuse evaluate model test.csv --correlation --robustness --out report"),
            _lazy("modeling", "evaluate_args"), _lazy("modeling", "evaluate")),
    Command("explain", "which modality drove the decisions: Shapley values, ablation, attention, plots",
            ("mmfuse explain model test.csv --out explained",
             "mmfuse explain model test.csv --out explained --sample 12"),
            _lazy("modeling", "explain_args"), _lazy("modeling", "explain")),
    Command("predict", "predict with a trained model; writes one CSV row per input row",
            ("mmfuse predict model new.csv --out predictions.csv",), _lazy("modeling", "predict_args"), _lazy("modeling", "predict")),
    Command("compare", "compare unimodal baselines and fusion operators under one protocol",
            ("mmfuse compare data.csv --target label --out cmp",
             "mmfuse compare data.csv --target label --out cmp --fusions concat,attention,mean --folds 5"),
            _lazy("modeling", "compare_args"), _lazy("modeling", "compare")),
    Command("encode", "fill the feature cache with the frozen pretrained networks a fit would run",
            ("mmfuse encode data.csv --target label",
             "mmfuse encode data.csv --features photo,review --cache-dir /data/mmfuse-cache",
             "mmfuse encode data.csv --engine ray --threads 8",
             "mmfuse encode data.csv --engine ray --address ray://head:10001 --json"),
            _lazy("encode", "encode_args"), _lazy("encode", "encode")),
    Command("index", "embed a collection with a retrieval model and store a vector index",
            ("mmfuse index model photos.csv --column image --out photo_index",
             "mmfuse index model photos.csv --column image --out photo_index --approximate",
             "mmfuse index model more.csv --column image --out photo_index --append",
             "mmfuse index model photos.csv --column image --out photo_index --engine ray --address auto"),
            _lazy("retrieval", "index_args"), _lazy("retrieval", "index_command")),
    Command("search", "rank an index against a text or an image / audio file",
            ("mmfuse search photo_index 'a red circle on a dark background'",
             "mmfuse search photo_index query.jpg -k 5 --json"),
            _lazy("retrieval", "search_args"), _lazy("retrieval", "search_command")),
    Command("recommend", "list each user's top items with a recommendation model",
            ("mmfuse recommend rec --user 42 -k 10", "mmfuse recommend rec users.csv --out recs.csv"),
            _lazy("recommendation", "recommend_args"), _lazy("recommendation", "recommend")),
    Command("summarize", "a short video of a long one: shots, picture + sound importance, a knapsack",
            ("mmfuse summarize talk.mp4 --out talk_summary", "mmfuse summarize talk.mp4 --out s --ratio 0.1",
             "mmfuse summarize videos.csv --out summaries --column clip"),
            _lazy("summarize", "summarize_args"), _lazy("summarize", "summarize")),
    Command("serve", "serve models and indexes over HTTP, with a web page, until interrupted",
            ("mmfuse serve model", "mmfuse serve demo_out/model demo_out/retrieval --index demo_out/image_index",
             "mmfuse serve model --host 0.0.0.0 --port 8080 --api-key-env MMFUSE_API_KEY"),
            _lazy("serve", "serve_args"), _lazy("serve", "serve")),
    Command("export", "write a fitted model as one ONNX graph, checked against PyTorch",
            ("mmfuse export model --format onnx --out model.onnx",),
            _lazy("export", "export_args"), _lazy("export", "export")),
    Command("cache", "show, empty or shrink the feature cache of frozen pretrained encoders",
            ("mmfuse cache info", "mmfuse cache clear --cache-dir /data/mmfuse-cache",
             "mmfuse cache prune --max-gb 5"), _cache_args, _cache),
    Command("list", "list the registered fusion operators or encoders",
            ("mmfuse list fusions", "mmfuse list encoders"), _list_args, _list),
)
