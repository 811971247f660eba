"""mmfuse's side of the recommendation benchmark: fitting ``MultimodalRecommender`` (with an
optional time cap), scoring it through the benchmark's protocol, and checking that protocol
against the recommender's own ``evaluate``."""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from _recommendation_data import Split
from _recommendation_measure import PeakRss, latency, log
from _recommendation_protocols import Protocols


class MmfuseScores:
    """(users, I) cosine scores of a fitted ``MultimodalRecommender`` in the split's indices:
    the inner products of the vectors its ``recommend`` searches (``rec.vectors()``)."""

    knows_unseen_items = True

    def __init__(self, rec: Any, split: Split) -> None:
        items, users = rec.vectors()  # (I, d), (U, d) in the model's orders
        position = np.asarray([rec.items_.index[i] for i in split.item_ids], dtype=np.int64)
        rows = np.asarray([rec.users_.index.get(u, -1) for u in split.user_ids], dtype=np.int64)
        if (rows < 0).any():
            raise ValueError(f"{int((rows < 0).sum())} users of the split are unknown to the model")
        self.items = items[position].double().numpy()  # (I, d) in the split's order
        self.users = users[rows].double().numpy()  # (U, d) in the split's order

    def __call__(self, users: np.ndarray) -> np.ndarray:
        return self.users[users] @ self.items.T


def fit_mmfuse(
    folder: Path, args: argparse.Namespace, seed: int, epochs: int
) -> tuple[Any, dict[str, Any]]:
    """The fitted recommender and what its fit cost (an empty feature cache: every fit pays for
    encoding the item and user tables)."""
    from mmfuse.estimators.recommender import MultimodalRecommender

    cache = tempfile.mkdtemp(prefix="feature-cache-", dir=folder)
    rec = MultimodalRecommender(
        user="user", item="item", items=str(folder / "items.csv"), users=str(folder / "users.csv"),
        social=str(folder / "friends.csv"), epochs=epochs, num_threads=args.threads, seed=seed,
        cache_dir=cache, verbose=False,
    )  # fmt: skip
    with PeakRss() as memory:
        rec.fit(str(folder / "train.csv"))
    epoch_seconds = [round(r["seconds"], 2) for r in rec.history_]
    return rec, {
        "train_seconds": round(rec.train_seconds_, 2),
        **memory.report(),
        "epochs_run": len(rec.history_),
        "kept_epoch": rec.kept_epoch_,
        "epoch_seconds": epoch_seconds,
        "validation_seconds": round(sum(r.get("valid_seconds", 0.0) for r in rec.history_), 2),
    }


def run_mmfuse(
    folder: Path,
    split: Split,
    protocols: Protocols,
    latency_users: np.ndarray,
    args: argparse.Namespace,
    seed: int,
    max_seconds: float,
) -> tuple[dict[str, Any], Any]:
    """mmfuse's report (its fit capped to ``max_seconds`` when that is set) and the model."""
    rec, out, epochs = None, {"capped": False}, args.epochs
    if max_seconds:
        rec, probe = fit_mmfuse(folder, args, seed, 1)
        per_epoch = probe["epoch_seconds"][0] + probe["validation_seconds"]
        setup = probe["train_seconds"] - per_epoch
        projected = setup + args.epochs * per_epoch
        out.update(
            probe={k: probe[k] for k in ("train_seconds", "epoch_seconds", "validation_seconds")},
            setup_seconds=round(setup, 2),
            projected_train_seconds=round(projected, 1),
        )
        if projected > max_seconds:
            epochs = max(1, min(args.epochs, math.floor((max_seconds - setup) / per_epoch)))
            out["capped"] = True
        log(
            f"mmfuse: setup {setup:.0f}s, {per_epoch:.1f}s an epoch with validation, "
            f"{args.epochs} epochs projected at {projected:.0f}s; fitting {epochs} epoch(s)"
        )
        if epochs == 1:
            out.update(probe)
    if epochs > 1 or rec is None:
        rec, fitted = fit_mmfuse(folder, args, seed, epochs)
        out.update(fitted)
    out["parameters"] = rec.model_.num_parameters()
    out["content_modalities"] = rec.model_.content_modalities
    started = time.perf_counter()
    scores = MmfuseScores(rec, split)
    out["vectors_seconds"] = round(time.perf_counter() - started, 2)  # once per fitted model
    started = time.perf_counter()
    out["metrics"] = protocols.evaluate(scores, scores.knows_unseen_items, seed)
    out["eval_seconds"] = round(time.perf_counter() - started, 2)
    ids = split.user_ids
    out["recommend_ms"] = latency(
        lambda users: rec.recommend(list(ids[users]), k=args.k), latency_users
    )
    return out, rec


def evaluate_check(
    rec: Any, folder: Path, split: Split, metrics: dict[str, Any], k: int
) -> dict[str, Any]:
    """mmfuse's own ``evaluate`` (all items, warm items, cold items as candidates) next to the
    benchmark's numbers for the same protocol (all users)."""
    warm = split.warm_items()
    pools = {
        "all_items": None,
        "warm_items": split.item_ids[warm],
        "cold_items": split.item_ids[~warm],
    }
    out: dict[str, Any] = {}
    for protocol, pool in pools.items():
        candidates = None
        if pool is not None:
            if not len(pool) or not metrics[protocol]["all_users"]["users"]:
                continue
            candidates = folder / f"candidates_{protocol}.csv"
            pd.DataFrame({"item": pool}).to_csv(candidates, index=False)
        found = rec.evaluate(
            str(folder / "test.csv"),
            ks=(k,),
            candidates=None if candidates is None else str(candidates),
        )
        ours = metrics[protocol]["all_users"]
        out[protocol] = {
            "evaluate": {m: round(found["metrics"][m], 4) for m in (f"ndcg@{k}", f"recall@{k}")},
            "benchmark": {m: ours[m] for m in (f"ndcg@{k}", f"recall@{k}")},
            "users": [found["n_users"], ours["users"]],
        }  # fmt: skip
    diffs = [abs(v["evaluate"][m] - v["benchmark"][m]) for v in out.values() for m in v["evaluate"]]
    return {"max_abs_diff": round(max(diffs, default=0.0), 4), "protocols": out}
