#!/usr/bin/env python
"""Which decision-level combiner joins per-modality predictions best, clean and with 30 % missing?

For each seed in ``--seeds``, the demo dataset (``make_demo_dataset(out/seed, n=--n,
seed=seed)``) is split 80/20 into train.csv and test.csv (``robustness_dropout.split``). For each
combiner in ``--combiners``, ``MultimodalClassifier(level="late", fusion=<combiner>,
modality_dropout=0)`` is fitted on train.csv (the per-modality models are seeded, so every
combiner joins the same ones; the fitted combiners are fitted on the validation records) and
scored on test.csv: accuracy on the clean records and with each modality hidden in 30 % of them
(``Views.build(enc, seed).missing``). ``oracle`` is the demo's Bayes-optimal accuracy on the same
records (``_demo_ceiling``).

Prints one JSON object (progress on stderr): ``config``, ``per_seed`` (per seed and combiner:
``clean``, ``missing30``), ``mean`` (over the seeds), ``best`` (the combiner with the highest mean,
per column) and ``total_seconds``. Usage::

    .venv/bin/python benchmarks/late_combiners.py [--out /tmp/late_combiners] [--seeds 0,1,2,3,4,5,6,7]
        [--combiners mean,confidence,weighted,stacking,product] [--n 800]
        [--features image,review,audio,income,age,region] [--threads N] [--quick]

``--quick`` (one seed, 60 records, 2 epochs, features review, income, age) is a smoke run; its
numbers mean nothing.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from mmfuse import MultimodalClassifier
from mmfuse._progress import log
from mmfuse.datasets import make_demo_dataset
from mmfuse.evaluation.scoring import score
from mmfuse.search.validation import Views

from _demo_ceiling import ceiling
from _demo_seeds import add_options, common_params
from _quick import parse_with_quick
from robustness_dropout import split

COLUMNS = ("clean", "missing30")
QUICK = {"seeds": "0", "n": 60, "epochs": 2, "features": "review,income,age"}


def one_seed(seed: int, args: argparse.Namespace, common: dict[str, Any]) -> dict[str, dict[str, float]]:
    train, test = split(make_demo_dataset(Path(args.out) / str(seed), n=args.n, seed=seed), seed)
    row: dict[str, dict[str, float]] = {}
    for combiner in args.combiners.split(","):
        log(f"seed {seed}: {combiner}")
        est = MultimodalClassifier(**common, level="late", fusion=combiner, modality_dropout=0.0, verbose=False)
        est.fit(train, target="label")
        enc = est.prepare(test)
        missing = Views.build(enc, seed).missing
        assert missing is not None, "two modalities or more are needed"
        row[combiner] = {k: round(float(score(est.fitted_model, e)["accuracy"]), 4)
                         for k, e in zip(COLUMNS, (enc, missing))}  # fmt: skip
    oracle = ceiling(enc, test, args.n, seed, common["features"])
    row["oracle"] = {k: oracle[k] for k in COLUMNS}
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_options(parser, "/tmp/late_combiners")
    parser.add_argument("--combiners", default="mean,confidence,weighted,stacking,product",
                        help="decision-level fusions (default %(default)s)")
    args = parse_with_quick(parser, QUICK)
    started = time.perf_counter()
    common = common_params(args)
    per_seed = {s: one_seed(int(s), args, common) for s in args.seeds.split(",")}
    runs = list(per_seed.values())
    mean = {m: {c: round(float(np.mean([r[m][c] for r in runs])), 4) for c in COLUMNS} for m in runs[0]}
    combiners = [m for m in mean if m != "oracle"]
    print(json.dumps({
        "benchmark": "late_combiners",
        "config": {"quick": args.quick, "seeds": args.seeds.split(","), "n": args.n, "combiners": combiners,
                   "features": common["features"], "epochs": args.epochs, "threads": args.threads},
        "per_seed": per_seed, "mean": mean,
        "best": {c: max(combiners, key=lambda m: mean[m][c]) for c in COLUMNS},
        "total_seconds": round(time.perf_counter() - started, 1),
    }, indent=1))


if __name__ == "__main__":
    main()
