"""CLI of retrieval models: fit --task retrieval, evaluate, index, search, predict --labels."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from mmfuse.cli.commands import _bad_record_args, _out
from mmfuse.errors import MmfuseError


def fit_retrieval(a: argparse.Namespace, common: dict[str, Any]) -> int:
    """``mmfuse fit DATA --task retrieval --pair A,B --out DIR``."""
    from mmfuse.estimators.retriever import MultimodalRetriever

    if not a.pair:
        raise MmfuseError("--task retrieval needs --pair COL_A,COL_B (e.g. --pair image,caption)")
    if a.target:
        raise MmfuseError("--task retrieval learns from --pair and takes no --target")
    est = MultimodalRetriever(
        pair=a.pair, encoders=a.encoder, epochs=a.epochs, batch_size=a.batch_size, lr=a.lr,
        patience=a.patience, dim=a.dim, projection=a.projection, seed=a.seed, device=a.device,
        augment=a.augment,
        on_bad_record=a.on_bad_record, missing_files=a.missing_files, kinds=a.kinds,
        image_size=a.image_size, num_threads=a.threads, verbose=not a.quiet, **common,
    )  # fmt: skip
    est.fit(a.data, valid=a.valid, out_dir=a.out, resume=a.resume)
    _out(format_retrieval(est.metrics_, f"validation retrieval ({est.n_valid_} pairs)"))
    _out(f"model written to {a.out}")
    return 0


def format_retrieval(metrics: dict[str, dict[str, float]], title: str) -> str:
    """Both directions side by side."""
    from mmfuse.cli.report import table

    names = ("R@1", "R@5", "R@10", "MedR", "mAP")
    rows = [(d, *(f"{m[n]:.4f}" if n != "MedR" else f"{m[n]:g}" for n in names)) for d, m in metrics.items()]
    return f"{title}\n" + table(rows, ("direction", *names))


def evaluate_retrieval(est: Any, a: argparse.Namespace) -> int:
    from mmfuse._io import write_json

    metrics = est.evaluate(a.data)
    _out(format_retrieval(metrics, f"retrieval on {a.data}"))
    if a.json:
        write_json(a.json, {"metrics": metrics})
    return 0


def predict_labels(est: Any, a: argparse.Namespace) -> int:
    """Zero-shot classification: ``mmfuse predict DIR DATA --labels cat,dog --out F.csv``."""
    from mmfuse._io import atomic_open

    if not a.labels:
        raise MmfuseError("a retrieval model predicts only zero-shot: pass --labels a,b,c")
    frame = est.zero_shot(a.data, a.labels.split(","), a.prompt)
    with atomic_open(a.out) as handle:
        frame.to_csv(handle, index=False)
    _out(f"wrote {len(frame)} zero-shot predictions to {a.out}")
    return 0


# ------------------------------------------------------------------------ index
def index_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="retrieval model directory (`mmfuse fit --task retrieval`)")
    p.add_argument("data", help="the collection: CSV, Parquet or JSONL file, or a folder with data.csv")
    p.add_argument("--column", required=True, help="column to embed (a tower of the model, or one of its kind)")
    p.add_argument("--out", required=True, help="index directory to write")
    p.add_argument("--approximate", nargs="?", const="hnsw", choices=("hnsw", "ivf"),
                   help="approximate index (default hnsw); recall@10 vs exact search is measured")
    p.add_argument("--append", action="store_true", help="add the rows to the index in --out")
    _bad_record_args(p)
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores)")
    p.add_argument("--quiet", action="store_true")


def index_command(a: argparse.Namespace) -> int:
    from mmfuse.training.device import set_threads

    est = _retriever(a.model)
    set_threads(a.threads)
    est.set_params(on_bad_record=a.on_bad_record, missing_files=a.missing_files, verbose=not a.quiet)
    index = est.index(a.data, a.column, a.out, a.approximate, a.append)
    _out(f"wrote {len(index)} vectors ({index.kind} index) to {a.out}")
    note = recall_note(index.kind, index.parameters)
    if note:
        _out(note)
    return 0


def recall_note(kind: str, parameters: dict[str, Any]) -> str | None:
    """What the index says about approximate search: its measured recall@10, or why it is exact."""
    if "fallback_reason" in parameters:
        return f"note: --approximate {parameters.get('requested_kind')}: {parameters['fallback_reason']}"
    recall = parameters.get("recall_at_10")
    if kind == "exact" or recall is None:
        return None
    from mmfuse.retrieval.ann import SEARCH_PARAMETER

    name = SEARCH_PARAMETER[kind]
    target = parameters.get("target_recall")
    met = "" if parameters.get("target_met") else f"; below the target {target}, the best setting tried"
    return (
        f"recall@10 vs exact search: {recall:.3f} on {parameters.get('recall_queries')} "
        f"{parameters.get('recall_query_source', 'queries')} ({name}={parameters.get(name)}{met})"
    )


# ----------------------------------------------------------------------- search
def search_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("index", help="index directory written by `mmfuse index`")
    p.add_argument("query", help="a text, or the path of an image / audio / video file")
    p.add_argument("-k", type=int, default=10, help="results (default: 10)")
    p.add_argument("--modality", choices=("text", "image", "audio", "video"),
                   help="what the query is (default: detected from the file extension, else text)")
    p.add_argument("--model", help="model directory (default: the one that built the index)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")


def search_command(a: argparse.Namespace) -> int:
    from mmfuse.cli.report import table
    from mmfuse.retrieval.index import VectorIndex

    index = VectorIndex.load(a.index)
    model_dir = a.model or index.info.get("model")
    if not model_dir or not isinstance(model_dir, str):
        raise MmfuseError(f"{a.index} does not record its model; pass --model DIR")
    est = _retriever(model_dir)
    est.set_params(verbose=False)
    hits = est.search(index, a.query, a.k, a.modality)
    if a.json:
        _out(json.dumps({"query": a.query, "results": json.loads(hits.to_json(orient="records"))}, indent=2))
        return 0
    shown = [c for c in ("rank", "score", "row", "value") if c in hits.columns]
    rows = [tuple(f"{v:.4f}" if c == "score" else v for c, v in zip(shown, r)) for r in hits[shown].itertuples(index=False)]
    _out(table(rows, tuple(shown)))
    return 0


def _retriever(model_dir: str) -> Any:
    from mmfuse.estimators.io import load

    if not Path(model_dir).is_dir():
        raise MmfuseError(f"model directory not found: {model_dir}")
    est = load(model_dir)
    if type(est).__name__ != "MultimodalRetriever":
        raise MmfuseError(f"{model_dir} is a {type(est).__name__}, not a retrieval model "
                          "(train one with `mmfuse fit DATA --task retrieval --pair A,B`)")
    return est
