"""``mmfuse demo``: the built-in dataset, every modality alone, and fused models at 3 levels.

All models share one preprocessing pass and one split (60 % train, 20 % validation for early
stopping, 20 % test); accuracy is measured on the test records. The best fused model is saved
to ``OUT/model``; a text-image retrieval model trained on generated captioned shapes goes to
``OUT/retrieval`` with an index of its images in ``OUT/image_index``, so that
``mmfuse serve OUT/model --index OUT/image_index`` has something to serve. A recommender
(behaviour + item text and images + friends) is fitted on a generated catalogue, saved to
``OUT/recommender`` and compared with the most-popular baseline on held-out interactions. The
tone row (``demo_tone``) tells emotions that need the words and the voice's tone apart, on
speakers never heard in training; the video-summary row (``demo_summary``) shortens a generated
video to 15 % of its length, keeping the moments that have both a picture and a sound.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmfuse._io import write_json
from mmfuse._progress import log
from mmfuse.data.readers import Table, read_table
from mmfuse.estimators.demo_summary import summary_run
from mmfuse.estimators.demo_tone import tone_run
from mmfuse.estimators.pipeline import Pipeline

DEMO_FEATURES = ["image", "review", "audio", "video", "income", "age", "region", "channel"]
FUSED = (  # (name, level, fusion)
    ("feature/attention", "feature", "attention"),
    ("feature/weighted_sum", "feature", "weighted_sum"),
    ("feature/concat", "feature", "concat"),
    ("early/early_concat", "early", "early_concat"),
    ("late/mean", "late", "mean"),
)


def run_demo(
    out: Path, rows: int = 1000, epochs: int = 25, seed: int = 0, num_threads: int | None = None
) -> dict[str, Any]:
    """Generates the demo data (if needed), trains every model and writes summary.json."""
    from mmfuse.datasets import make_demo_dataset
    from mmfuse.estimators.classifier import MultimodalClassifier
    from mmfuse.training.device import set_threads

    started = time.perf_counter()
    threads = set_threads(num_threads)
    data_dir = out / "data"
    if not (data_dir / "data.csv").exists() or len(read_table(data_dir).df) != rows:
        log(f"generating {rows} demo records in {data_dir}")
        make_demo_dataset(data_dir, n=rows, seed=seed)
    table = read_table(data_dir)
    parts = demo_split(table, seed)
    # From-scratch encoders first; the clips' audio tracks carry no information in the demo
    # story, so they are left out.
    scratch = MultimodalClassifier(pretrained=False, num_threads=threads)
    pipeline = Pipeline.plan(table, "label", "classification", scratch, DEMO_FEATURES, use_audio_tracks=False)
    pipeline.fit(parts[0])
    pre, schema = pipeline.preprocessor, pipeline.schema
    encoded = [pipeline.prepare(p) for p in parts]
    runs = [(f"{m} only", "feature", "concat", [m]) for m in pre.modalities]
    runs += [(name, level, fusion, list(pre.modalities)) for name, level, fusion in FUSED]
    results, fitted = [], {}
    for name, level, fusion, mods in runs:
        clf = MultimodalClassifier(fusion=fusion, level=level, epochs=epochs, seed=seed, verbose=False)
        clf.fit_encoded(pre.restrict(mods), encoded[0].select(mods), encoded[1].select(mods))
        results.append(_result(name, clf, encoded[2].select(mods), mods))
        fitted[name] = clf
    pretrained = _pretrained_run(schema, parts, epochs, seed, threads)
    if pretrained is not None:
        results.append(pretrained[0])
        fitted[pretrained[0]["name"]] = pretrained[1]
    best = max((r for r in results if len(r["modalities"]) > 1), key=lambda r: r["accuracy"])
    fitted[best["name"]].save(out / "model")
    log(f"saved the best fused model ({best['name']}) to {out / 'model'}")
    serving = {"model": str(out / "model"), **_retrieval_run(out, seed, threads)}
    recommendation = _recommendation_run(out, seed, threads)
    serving["recommender"] = recommendation["model"]
    tone = tone_run(out, seed, threads)
    video_summary = summary_run(out, seed)
    summary = {
        "dataset": str(data_dir / "data.csv"), "rows": rows, "seed": seed,
        "n_train": len(encoded[0]), "n_valid": len(encoded[1]), "n_test": len(encoded[2]),
        "seconds": round(time.perf_counter() - started, 1), "results": results, "serving": serving,
        "recommendation": recommendation, "tone": tone, "video_summary": video_summary,
    }
    write_json(out / "summary.json", summary)
    return summary


def demo_split(table: Table, seed: int) -> list[Table]:
    """Train / valid / test tables, 60/20/20, stratified by label (shared with the benchmarks)."""
    from sklearn.model_selection import train_test_split

    index = np.arange(len(table.df))
    labels = table.df["label"].astype(str).to_numpy()
    train, rest = train_test_split(index, test_size=0.4, random_state=seed, stratify=labels)
    valid, test = train_test_split(rest, test_size=0.5, random_state=seed, stratify=labels[rest])
    return [Table(table.df.iloc[np.sort(i)], table.base_dir, table.name) for i in (train, valid, test)]


def _result(name: str, clf: Any, test: Any, mods: list[str]) -> dict[str, Any]:
    metrics = clf.score_prepared(test)
    cfg = clf.model_config_
    log(f"{name:<24} accuracy {metrics['accuracy']:.3f}  ({clf.train_seconds_:.1f}s)")
    return {
        "name": name, "level": cfg.level, "fusion": cfg.fusion, "modalities": mods,
        "encoders": dict(cfg.encoders),
        "accuracy": round(metrics["accuracy"], 4), "f1_macro": round(metrics["f1_macro"], 4),
        "epochs": len(clf.history_), "train_seconds": round(clf.train_seconds_, 2),
        "parameters": clf.model_.num_parameters(),
    }  # fmt: skip


def _pretrained_run(
    schema: Any, parts: list[Table], epochs: int, seed: int, threads: int
) -> tuple[dict[str, Any], Any] | None:
    """The attention model once more with the pretrained image and text encoders (frozen,
    features cached), where their packages are installed and MMFUSE_PRETRAINED is not 0."""
    from mmfuse.estimators.classifier import MultimodalClassifier

    clf = MultimodalClassifier(fusion="attention", epochs=epochs, seed=seed, verbose=False,
                               num_threads=threads)
    pipeline = Pipeline.for_schema(schema, "classification", clf)
    pre = pipeline.preprocessor
    if not pre.pretrained:
        return None
    pipeline.verbose = True  # progress while the networks encode
    pipeline.fit(parts[0])
    encoded = [pipeline.prepare(p) for p in parts]
    clf.fit_encoded(pre, encoded[0], encoded[1])
    names = ", ".join(sorted({p.backbone for p in pre.pretrained.values()}))
    return _result(f"feature/attention + {names}", clf, encoded[2], list(pre.modalities)), clf


RETRIEVAL_ITEMS = 150
RETRIEVAL_EPOCHS = 15


def _retrieval_run(out: Path, seed: int, threads: int) -> dict[str, Any]:
    """A text-image retrieval model on generated captioned shapes, and an index of the images."""
    from mmfuse.datasets import make_paired_dataset
    from mmfuse.estimators.io import load
    from mmfuse.estimators.retriever import MultimodalRetriever

    pairs = out / "pairs" / "data.csv"
    if not pairs.exists():
        make_paired_dataset(pairs.parent, n_items=RETRIEVAL_ITEMS, captions_per_item=3, seed=seed)
    log(f"training a text-image retrieval model on {pairs}")
    retriever = MultimodalRetriever(seed=seed, num_threads=threads, verbose=False, epochs=RETRIEVAL_EPOCHS)
    retriever.fit(pairs, pair="image,caption", out_dir=out / "retrieval")
    load(out / "retrieval", verbose=False).index(pairs, "image", out / "image_index")
    metrics = retriever.metrics_
    log(f"retrieval (validation pairs): R@5 caption->image {metrics['caption->image']['R@5']:.3f}; "
        f"index of {RETRIEVAL_ITEMS} images in {out / 'image_index'}")
    return {"retrieval": str(out / "retrieval"), "index": str(out / "image_index"),
            "retrieval_metrics": metrics}


def format_table(results: list[dict[str, Any]]) -> str:
    """The demo's results as a text table, best first, single-modality rows marked."""
    from mmfuse.cli.report import table

    ordered = sorted(results, key=lambda r: -r["accuracy"])
    rows = [
        (r["name"], r["level"], "+".join(r["modalities"]), f"{r['accuracy']:.3f}", f"{r['f1_macro']:.3f}",
         r["train_seconds"])
        for r in ordered
    ]
    best_single = max((r for r in results if len(r["modalities"]) == 1), key=lambda r: r["accuracy"])
    best_fused = max((r for r in results if len(r["modalities"]) > 1), key=lambda r: r["accuracy"])
    gain = 100 * (best_fused["accuracy"] - best_single["accuracy"])
    footer = (
        f"\nbest fused: {best_fused['name']} {best_fused['accuracy']:.3f}; best single modality: "
        f"{best_single['name']} {best_single['accuracy']:.3f}; gain {gain:+.1f} points"
    )
    return table(rows, ("model", "level", "modalities", "accuracy", "f1_macro", "seconds")) + footer


def _recommendation_run(out: Path, seed: int, threads: int) -> dict[str, Any]:
    """A recommender on the generated recommendation data: NDCG@20 and recall@20 on the test
    interactions (all items, and the cold items alone) against the most-popular baseline."""
    from mmfuse.datasets import make_recommendation_dataset
    from mmfuse.estimators.recommender import MultimodalRecommender

    data = out / "recommendation"
    if not (data / "train.csv").exists():
        make_recommendation_dataset(data, seed=seed)
    log(f"training a recommender on {data / 'train.csv'} (item titles and images, users, friends)")
    rec = MultimodalRecommender(user="user", item="item", items=str(data / "items.csv"),
                                users=str(data / "users.csv"), social=str(data / "friends.csv"),
                                seed=seed, num_threads=threads, verbose=False)
    rec.fit(data / "train.csv", out_dir=out / "recommender")
    cold = sorted(set(rec.items_.ids) - {rec.items_.ids[i] for i in np.flatnonzero(rec.data_.known)})
    parts = {"all items": rec.evaluate(data / "test.csv", (20,))}
    if cold:
        parts["cold items"] = rec.evaluate(data / "test.csv", (20,), pd.DataFrame({"item": cold}))
    result: dict[str, Any] = {"model": str(out / "recommender")}
    for name, part in parts.items():
        result[name] = {"mmfuse": {k: round(v, 4) for k, v in part["metrics"].items() if k in KEPT},
                        "most popular": {k: round(v, 4) for k, v in part["most_popular"].items() if k in KEPT},
                        "users": part["n_users"], "items ranked": part["n_items_ranked"]}
        log(f"recommendation, {name}: NDCG@20 {part['metrics']['ndcg@20']:.3f} "
            f"(most popular {part['most_popular']['ndcg@20']:.3f})")
    return result


KEPT = ("ndcg@20", "recall@20")
