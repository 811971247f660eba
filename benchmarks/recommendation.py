#!/usr/bin/env python
"""mmfuse's recommender against the field's baselines on the same split, warm and cold.

Data (``--data``, comma-separated):

* ``generated``: ``make_recommendation_dataset`` with its defaults (300 users, 200 items, 6
  topics, 12 interactions per user, 15 % cold items, 10 % cold users), once per ``--seeds``
  seed (default 0 and 1).
* ``realistic``: the same story at 100k users, 50k items, 8 topics and 22 interactions per
  warm user (about 2.0M rows, 1.6M of them train), written by the sparse generator of
  ``_recommendation_data`` (no images: item content is the title, price and genre); first
  seed only. ``--users``, ``--items``, ``--topics`` and ``--interactions-per-user`` change
  either kind's sizes.

Methods, all on the same train.csv: ``random``, ``most_popular``, ``itemknn`` and the
``implicit`` library's ``als`` and ``bpr`` (see ``_recommendation_baselines``; ALS and BPR are
reported as skipped when ``implicit`` is not installed), and ``mmfuse``:
``MultimodalRecommender(user, item, items=items.csv, users=users.csv, social=friends.csv,
epochs=--epochs, num_threads=--threads, seed=SEED)`` with every other parameter at its default
(pretrained encoders when they are installed, unless ``MMFUSE_PRETRAINED=0``). Each baseline
picks its hyper-parameters (``GRIDS``) by recall@K on a validation split of train.csv (20 %
of the rows of each user with at least 2, at most ``--tune-users`` users; ``--tune-users 0``
keeps the defaults), then refits on all of it; mmfuse picks its epoch on its own validation
split the same way. ``oracle`` is a reference, not a competitor (``TopicOracle``): the ranking
by the hidden preference of the story with each cold item's popularity unknown, i.e. what the
data allows a method that learned everything learnable.

Every method is scored by one protocol (``_recommendation_protocols``): the ranking
``MultimodalRecommender.evaluate`` makes (every item the user has no train row with, the test
items relevant), viewed four ways (``all_items``, ``warm_items``, ``cold_items``,
``cold_among_all``) for all, warm and cold users, NDCG@K and recall@K by
``mmfuse.evaluation.ranking``. On the generated data, mmfuse's own ``evaluate`` (no
candidates, warm items, cold items) runs too, and ``evaluate_check`` gives the largest
difference from the benchmark's numbers (FAISS float32 against numpy float64 may swap near
ties; otherwise 0).

Costs, per method: ``train_seconds`` (the final fit, from reading train.csv for mmfuse, with
an empty feature cache so that encoding the tables counts, and the first fit of a process also
loading the pretrained networks; from the train matrix for the baselines, whose grid search is
``tune_seconds``),
``peak_rss_mib`` and ``rss_increase_mib`` (the process's resident memory sampled every 10 ms
during the fit, and its rise over the start of the fit), ``eval_seconds`` (the benchmark's
scoring of every test user) and ``recommend_ms``: top-K for one user per call (p50, p95 over
``--latency-users`` warm test users, after one warm-up call) and for all of them in one call
(ms per user), through each method's serving path: ``MultimodalRecommender.recommend``,
implicit's ``recommend``, the scores + top-K of the others. mmfuse's ``vectors_seconds`` is
the one-off computation of every item's and user's vector after a fit (``rec.vectors()``).

``--max-seconds`` (default: 900 for ``realistic``, none for ``generated``) caps mmfuse's
training: a first fit of one epoch measures the setup (reading, preparing, encoding), the
epoch and the validation pass (``valid_seconds`` in the model's history);
if ``--epochs`` epochs would pass the cap, the fit reported runs only the epochs that fit
(``capped``), and ``projected_train_seconds`` says what all of them would take (early stopping
may end sooner).

Goals (``goals``, per dataset and over all of them; see ``_recommendation_report``): mmfuse's
NDCG@K on ``cold_items`` and its NDCG@K and recall@K on ``cold_among_all`` at least 1.5x the
best other method's (random included); its NDCG@K and recall@K on ``warm_items`` at least
0.98x the best baseline's; training at the realistic size within 900 s with ``--threads 2``
(measured, or projected when capped).

Usage::

    .venv/bin/python benchmarks/recommendation.py [--data generated] [--seeds 0,1] \\
        [--epochs 30] [--k 20] [--threads 2] [--out FILE]
    .venv/bin/python benchmarks/recommendation.py --data realistic --seeds 0 [--max-seconds 900]

``--quick`` (60 users, 40 items, both generators, 3 epochs, 5 latency users) is a smoke run of
seconds whose numbers mean nothing. The JSON object goes to stdout (and ``--out``), progress
to stderr.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from _quick import parse_with_quick
from _recommendation_baselines import (
    BASELINES, GRIDS, NEEDS_IMPLICIT, SKIPPED_IMPLICIT, Baseline, implicit_installed, train_matrix,
)  # fmt: skip
from _recommendation_data import Split, TopicOracle, load_split, write_sparse_dataset
from _recommendation_measure import PeakRss, latency, log
from _recommendation_mmfuse import evaluate_check, run_mmfuse
from _recommendation_protocols import Protocols, holdout
from _recommendation_report import dataset_goals, overall_goals, summary, table

KINDS = ("generated", "realistic")
SIZE_OPTIONS = ("users", "items", "topics", "interactions_per_user")
REALISTIC = {"users": 100_000, "items": 50_000, "topics": 8, "interactions_per_user": 22,
             "max_seconds": 900.0}  # fmt: skip
QUICK = {"users": 60, "items": 40, "interactions_per_user": 6, "epochs": 3, "seeds": "0",
         "data": "generated,realistic", "latency_users": 5, "tune_users": 100}  # fmt: skip


def generated_sizes() -> dict[str, Any]:
    """``make_recommendation_dataset``'s defaults, by this script's option names."""
    from mmfuse.datasets.recommendation import make_recommendation_dataset

    parameters = inspect.signature(make_recommendation_dataset).parameters
    return {"users": parameters["n_users"].default, "items": parameters["n_items"].default,
            "topics": parameters["n_topics"].default,
            "interactions_per_user": parameters["interactions_per_user"].default,
            "max_seconds": 0.0}  # fmt: skip


def sizes_of(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    """The sizes (and the training cap) of one data kind, options given overriding."""
    base = REALISTIC if kind == "realistic" else generated_sizes()
    given = {name: getattr(args, name) for name in (*SIZE_OPTIONS, "max_seconds")}
    return {name: value if given[name] is None else given[name] for name, value in base.items()}


def write_data(kind: str, seed: int, sizes: dict[str, Any], folder: Path) -> Path:
    arguments = {"n_users": sizes["users"], "n_items": sizes["items"], "n_topics": sizes["topics"],
                 "interactions_per_user": sizes["interactions_per_user"], "seed": seed}  # fmt: skip
    if kind == "realistic":
        return write_sparse_dataset(folder, **arguments)
    from mmfuse.datasets.recommendation import make_recommendation_dataset

    return make_recommendation_dataset(folder, **arguments)


# ------------------------------------------------------------------ baselines
def tune(
    name: str, split: Split, args: argparse.Namespace, seed: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the best settings of ``GRIDS[name]`` by validation recall@K, what the search did)."""
    grid = GRIDS[name]
    if len(grid) == 1 or args.tune_users == 0:
        return grid[0], {"tuned_over": 1}
    started = time.perf_counter()
    kept, held = holdout(split.train_users, 0.2, seed)
    users, items = split.train_users[held], split.train_items[held]
    chosen = np.random.default_rng(seed).permutation(np.unique(users))[: args.tune_users]
    among = np.isin(users, chosen)
    matrix = train_matrix(
        split.train_users[kept], split.train_items[kept], split.num_users, split.num_items
    )
    warm = np.bincount(split.train_items[kept], minlength=split.num_items) > 0
    valid = Protocols(matrix, users[among], items[among], warm, args.k, args.chunk)
    recall = []
    for params in grid:
        model = BASELINES[name](seed, args.threads, **params).fit(matrix)
        result = valid.evaluate(model.scores, model.knows_unseen_items, seed)
        recall.append(result["all_items"]["all_users"][f"recall@{args.k}"])
    best = int(np.argmax(recall))
    return grid[best], {
        "tuned_over": len(grid),
        f"validation_recall@{args.k}": recall[best],
        "validation_users": len(chosen),
        "tune_seconds": round(time.perf_counter() - started, 2),
    }


def run_baseline(
    name: str,
    split: Split,
    protocols: Protocols,
    latency_users: np.ndarray,
    args: argparse.Namespace,
    seed: int,
) -> dict[str, Any]:
    params, search = tune(name, split, args, seed)
    history = protocols.history
    with PeakRss() as memory:
        started = time.perf_counter()
        model: Baseline = BASELINES[name](seed, args.threads, **params).fit(history)
        train_seconds = time.perf_counter() - started
    started = time.perf_counter()
    metrics = protocols.evaluate(model.scores, model.knows_unseen_items, seed)
    return {
        "params": params,
        **search,
        "train_seconds": round(train_seconds, 3),
        **memory.report(),
        "eval_seconds": round(time.perf_counter() - started, 2),
        "recommend_ms": latency(lambda users: model.recommend(users, args.k), latency_users),
        "metrics": metrics,
    }


def run_oracle(
    split: Split, protocols: Protocols, sizes: dict[str, Any], seed: int
) -> dict[str, Any]:
    """The :class:`TopicOracle` reference's metrics (both generators draw their hidden
    variables with ``recommendation_latents`` and its default cold fractions)."""
    from mmfuse.datasets.recommendation import recommendation_latents

    latents = recommendation_latents(sizes["users"], sizes["items"], sizes["topics"], seed=seed)
    oracle = TopicOracle(split, latents)
    return {"reference": "hidden tastes, warm popularity and cold topics; not a competitor",
            "metrics": protocols.evaluate(oracle, oracle.knows_unseen_items, seed)}  # fmt: skip


# ------------------------------------------------------------------ one dataset
def run_dataset(
    kind: str, folder: Path, args: argparse.Namespace, seed: int, sizes: dict[str, Any]
) -> dict[str, Any]:
    split = load_split(folder)
    warm_items, warm_users = split.warm_items(), split.warm_users()
    history = train_matrix(split.train_users, split.train_items, split.num_users, split.num_items)
    protocols = Protocols(
        history, split.test_users, split.test_items, warm_items, args.k, args.chunk
    )
    test_warm = protocols.users[warm_users[protocols.users]]
    latency_users = np.random.default_rng(seed).permutation(test_warm)[: args.latency_users]
    out: dict[str, Any] = {"sizes": {
        "users": split.num_users, "items": split.num_items, "train_rows": len(split.train_users),
        "test_rows": len(split.test_users), "cold_items": int((~warm_items).sum()),
        "cold_users": int((~warm_users).sum()), "test_users": len(protocols.users),
        "test_rows_with_cold_items": int((~warm_items[split.test_items]).sum()),
    }}  # fmt: skip
    methods: dict[str, Any] = {}
    for name in BASELINES:
        if name in NEEDS_IMPLICIT and not implicit_installed():
            methods[name] = {"skipped": SKIPPED_IMPLICIT}
            continue
        log(f"{folder.name}: {name}")
        methods[name] = run_baseline(name, split, protocols, latency_users, args, seed)
    log(f"{folder.name}: mmfuse")
    methods["mmfuse"], rec = run_mmfuse(
        folder, split, protocols, latency_users, args, seed, sizes["max_seconds"]
    )
    methods["oracle"] = run_oracle(split, protocols, sizes, seed)
    out["methods"] = methods
    if kind == "generated":
        out["evaluate_check"] = evaluate_check(
            rec, folder, split, methods["mmfuse"]["metrics"], args.k
        )
    out["table"] = table(methods, args.k)
    out["goals"] = dataset_goals(methods, args.k)
    return out


# ------------------------------------------------------------------ main
def machine(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    info = {"python": platform.python_version(), "cpus": os.cpu_count(), "threads": args.threads,
            "torch": torch.__version__, "numpy": np.__version__,
            "load_average": list(os.getloadavg()),
            "MMFUSE_PRETRAINED": os.environ.get("MMFUSE_PRETRAINED", "(unset: 1)")}  # fmt: skip
    if implicit_installed():
        import implicit

        info["implicit"] = implicit.__version__
    return info


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="generated", help=f"comma-separated: {', '.join(KINDS)}")
    parser.add_argument(
        "--seeds",
        default="0,1",
        help="comma-separated data and model seeds (realistic: the first only)",
    )
    parser.add_argument("--users", type=int, help="users (default: the kind's)")
    parser.add_argument("--items", type=int, help="items (default: the kind's)")
    parser.add_argument("--topics", type=int, help="hidden topics (default: the kind's)")
    parser.add_argument(
        "--interactions-per-user",
        type=int,
        help="mean interactions per warm user, train and test (default: the kind's)",
    )
    parser.add_argument("--epochs", type=int, default=30, help="mmfuse's maximum epochs")
    parser.add_argument("--k", type=int, default=20, help="the cut-off K")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--max-seconds",
        type=float,
        help="cap on mmfuse's training, 0: none (default: 900 realistic, none generated)",
    )
    parser.add_argument(
        "--tune-users",
        type=int,
        default=5000,
        help="validation users of the baselines' grid search (0: their default settings)",
    )
    parser.add_argument("--latency-users", type=int, default=50)
    parser.add_argument("--chunk", type=int, default=256, help="users scored at a time")
    parser.add_argument("--out", type=Path, help="also write the JSON object here")
    args = parse_with_quick(parser, QUICK, argv)
    unknown = sorted(set(args.data.split(",")) - set(KINDS))
    if unknown:
        parser.error(f"--data: unknown {unknown}; choose from {', '.join(KINDS)}")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from threadpoolctl import threadpool_limits

    args = parse(argv)
    started = time.perf_counter()
    seeds = [int(s) for s in args.seeds.split(",")]
    plan = [
        (kind, seed)
        for kind in KINDS
        if kind in args.data.split(",")
        for seed in (seeds if kind == "generated" else seeds[:1])
    ]
    datasets: dict[str, Any] = {}
    info = machine(args)
    with (
        tempfile.TemporaryDirectory(prefix="mmfuse-rec-bench-") as tmp,
        threadpool_limits(args.threads),
    ):
        for kind, seed in plan:
            sizes = sizes_of(kind, args)
            name = f"{kind}_seed{seed}"
            log(f"{name}: writing {sizes}")
            folder = write_data(kind, seed, sizes, Path(tmp) / name)
            datasets[name] = run_dataset(kind, folder, args, seed, sizes)
            datasets[name]["config"] = sizes
    info["load_average_after"] = list(os.getloadavg())
    result = {"benchmark": "recommendation", "machine": info,
              "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
              "datasets": datasets, "summary": summary(datasets, KINDS),
              "goals": overall_goals(datasets, args.k, args.threads),
              "total_s": round(time.perf_counter() - started, 1)}  # fmt: skip
    text = json.dumps(result, indent=1)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    print(text)
    return result


if __name__ == "__main__":
    main()
