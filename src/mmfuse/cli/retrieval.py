"""CLI of retrieval models: fit --task retrieval, evaluate, index, search, predict --labels."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from mmfuse.cli.flags import add_params
from mmfuse.errors import MmfuseError
from mmfuse.params import INPUT_HANDLING, RUN_TIME, RetrieverParams

INDEX_PARAMS = (*RUN_TIME, *INPUT_HANDLING)
"""What `index` and `search` (``RUN_TIME`` only) may change in the saved retriever."""


def _out(text: str = "") -> None:
    print(text, flush=True)


def fit_retrieval(a: argparse.Namespace, params: dict[str, Any]) -> int:
    """``mmfuse fit DATA --task retrieval --pair A,B --out DIR`` (``params``: the options given)."""
    from mmfuse.estimators.retriever import MultimodalRetriever

    if not params.get("pair"):
        raise MmfuseError("--task retrieval needs --pair COL_A,COL_B (e.g. --pair image,caption)")
    if a.target:
        raise MmfuseError("--task retrieval learns from --pair and takes no --target")
    est = MultimodalRetriever(**params)
    est.fit(a.data, valid=a.valid, out_dir=a.out, resume=a.resume)
    _out(format_retrieval(est.metrics_, f"validation retrieval ({est.n_valid_} pairs)"))
    _out(f"model written to {a.out}")
    return 0


def format_retrieval(
    metrics: dict[str, dict[str, float]],
    title: str,
    ranked: dict[str, dict[str, int]] | None = None,
) -> str:
    """Both directions side by side; with ``ranked``, how many queries and gallery items each
    direction ranked (see ``ranked_sizes``)."""
    from mmfuse.cli.report import table

    names = ("R@1", "R@5", "R@10", "MedR", "mAP")
    counts = ranked or {}
    sizes = ("queries", "gallery") if counts else ()
    rows = [(d, *(counts[d][n] for n in sizes), *(_metric(m[n], n) for n in names))
            for d, m in metrics.items()]
    return f"{title}\n" + table(rows, ("direction", *sizes, *names))


def _metric(value: float, name: str) -> str:
    return f"{value:g}" if name == "MedR" else f"{value:.4f}"


def ranked_sizes(df: Any, pair: tuple[str, str]) -> tuple[int, dict[str, dict[str, int]]]:
    """(pairs, {"A->B": {"queries", "gallery"}, "B->A": ...}) of a table's pairs, counted as
    retrieval evaluation ranks them: rows with both sides present are the pairs; each distinct
    value of a side is one item, a query of its direction and an entry of the other's gallery."""
    from mmfuse.data.cells import is_empty

    a, b = pair
    both = df[[a, b]][~df[[a, b]].map(is_empty).any(axis=1)]
    items = {side: int(both[side].astype(str).nunique()) for side in pair}
    return len(both), {f"{a}->{b}": {"queries": items[a], "gallery": items[b]},
                       f"{b}->{a}": {"queries": items[b], "gallery": items[a]}}


def evaluate_retrieval(est: Any, a: argparse.Namespace) -> int:
    from mmfuse._io import write_json
    from mmfuse.data.readers import read_table

    metrics = est.evaluate(a.data)
    table = read_table(a.data)  # again, to count what was ranked (cheap next to the embedding)
    pairs, ranked = ranked_sizes(table.df, est.model_config_.pair)
    _out(format_retrieval(metrics, f"retrieval on {a.data}: {pairs} pairs", ranked))
    if a.json:
        write_json(a.json, {"metrics": metrics, "n_pairs": pairs, "ranked": ranked})
    return 0


def predict_labels(est: Any, a: argparse.Namespace) -> int:
    """Zero-shot classification: ``mmfuse predict DIR DATA --labels cat,dog --out F.csv``."""
    from mmfuse._io import atomic_open
    from mmfuse.data.readers import read_table

    if not a.labels:
        raise MmfuseError("a retrieval model predicts only zero-shot: pass --labels a,b,c")
    scored = est.zero_shot(a.data, a.labels.split(","), a.prompt)
    frame = with_input_columns(read_table(a.data).df, scored)
    with atomic_open(a.out) as handle:
        frame.to_csv(handle, index=False)
    unscored = len(frame) - len(scored)
    note = f" ({unscored} row(s) had nothing to embed and have no prediction)" if unscored else ""
    _out(f"wrote {len(scored)} zero-shot predictions to {a.out}{note}")
    return 0


def with_input_columns(df: Any, scored: Any) -> Any:
    """One row per input row: ``row``, every input column, then the prediction and scores
    (empty where the row had nothing to score). An input column named like an output column
    is kept as ``input_<name>``."""
    inputs = df.rename(columns={c: f"input_{c}" for c in df.columns if c in scored.columns})
    inputs = inputs.rename_axis(None).reset_index(names="row")
    return inputs.merge(scored, on="row", how="left")


# ------------------------------------------------------------------------ index
def index_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="retrieval model directory (`mmfuse fit --task retrieval`)")
    p.add_argument("data", help="the collection: CSV, Parquet or JSONL file, or a folder with data.csv")
    p.add_argument("--column", required=True, help="column to embed (a tower of the model, or one of its kind)")
    p.add_argument("--out", required=True, help="index directory to write")
    p.add_argument("--approximate", nargs="?", const="hnsw", choices=("hnsw", "ivf", "ivfpq"),
                   help="approximate index (default hnsw); recall@10 vs exact search is measured. "
                        "ivfpq is for collections larger than memory: about D/8+8 bytes a vector "
                        "in memory, candidates re-ranked exactly from vectors.npy on disk")
    p.add_argument("--append", action="store_true", help="add the rows to the index in --out")
    from mmfuse.cli.encode import add_engine_options

    add_engine_options(p)  # --engine, --address
    add_params(p, {"": RetrieverParams}, only=INDEX_PARAMS)


def index_command(a: argparse.Namespace) -> int:
    from mmfuse.cli.encode import ray_settings
    from mmfuse.cli.flags import given
    from mmfuse.training.device import set_threads

    settings = ray_settings(a, given(a, RetrieverParams))  # checks that Ray is installed
    est = _retriever(a.model, a)
    set_threads(est.num_threads)
    if settings is None:
        index = est.index(a.data, a.column, a.out, a.approximate, a.append)
    else:
        from mmfuse.cli.modeling import RESET_AT_LOAD
        from mmfuse.distributed.ray_index import index_with_ray

        load_options = {**RESET_AT_LOAD, **given(a, RetrieverParams)}  # what _retriever loaded it with
        index = index_with_ray(est, a.data, a.column, a.out, a.approximate, a.append, load_options, settings)
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
    add_params(p, {"": RetrieverParams}, only=RUN_TIME)


def search_command(a: argparse.Namespace) -> int:
    from mmfuse.cli.report import table
    from mmfuse.retrieval.index import VectorIndex

    index = VectorIndex.load(a.index)
    model_dir = a.model or index.info.get("model")
    if not model_dir or not isinstance(model_dir, str):
        raise MmfuseError(f"{a.index} does not record its model; pass --model DIR")
    est = _retriever(model_dir, a, verbose=False)
    hits = est.search(index, a.query, a.k, a.modality)
    if a.json:
        _out(json.dumps({"query": a.query, "results": json.loads(hits.to_json(orient="records"))}, indent=2))
        return 0
    shown = [c for c in ("rank", "score", "source", "row", "value") if c in hits.columns]
    rows = [tuple(f"{v:.4f}" if c == "score" else v for c, v in zip(shown, r)) for r in hits[shown].itertuples(index=False)]
    _out(table(rows, tuple(shown)))
    return 0


def _retriever(model_dir: str, a: argparse.Namespace, **fixed: Any) -> Any:
    from mmfuse.cli.modeling import open_model

    if not Path(model_dir).is_dir():
        raise MmfuseError(f"model directory not found: {model_dir}")
    est = open_model(model_dir, a, **fixed)
    if est.task_ != "retrieval":
        raise MmfuseError(f"{model_dir} is a {type(est).__name__}, not a retrieval model "
                          "(train one with `mmfuse fit DATA --task retrieval --pair A,B`)")
    return est
