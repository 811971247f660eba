#!/usr/bin/env python
"""How a preset chooses on a small table: greedy selection over the finalists' bags against the
top finalist's bag alone, over several demo datasets.

On a table of up to 5,000 records a preset trains its finalists on several random splits and
judges them by their mean score; each finalist's models on the splits make a bag (their
average). The rule before kept the bag of the finalist with the top mean. With many finalists
the top of many noisy means is often a lucky one (the winner's curse), so now greedy ensemble
selection (Caruana et al. 2004) runs over the bags, scored by the same mean over the splits,
and mixes in other finalists only where the mean rises (``mmfuse.search.ensemble_model``).

For each seed in ``--seeds``, the demo dataset (``make_demo_dataset(out/seed, n=--n,
seed=seed)``) is split 80/20 into train.csv and test.csv (``robustness_dropout.split``); each
preset in ``--presets`` is fitted on train.csv twice, once with each rule
(``ensemble_model.MIX_BAGS``; the search itself is seeded and the same both times), and one model
(``preset="none"``, the plain fit before ``fast`` became the default) once. Each model's test
accuracy is measured on the clean records and with each modality hidden in 30 % of them
(``Views.build(enc, seed).missing``). The row ``oracle`` is the
demo's Bayes-optimal accuracy on the same records (``_demo_ceiling``): what the data allows,
clean and with the same cells hidden.

Prints one JSON object (progress on stderr): ``config``, ``per_seed`` (per seed and model:
``clean``, ``missing30``, ``fit_seconds``, and for the mixed rule the finalists kept and their
weights), ``mean`` (per model, over the seeds), ``paired`` (per preset, the mixed rule minus the
top finalist's bag: the mean difference and its standard error over the seeds) and
``total_seconds``. Usage::

    .venv/bin/python benchmarks/preset_choice.py [--out /tmp/preset_choice] [--seeds 0,1,2,3,4,5,6,7]
        [--presets fast,medium] [--n 800] [--features image,review,audio,income,age,region]
        [--threads N] [--quick]

Run it alone on the machine (it reports wall times). ``--quick`` (one seed, 60 records, 2 epochs,
fast only, features review, income, age) is a smoke run; its numbers mean nothing.
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
from mmfuse.search import ensemble_model
from mmfuse.search.validation import Views

from _demo_ceiling import ceiling
from _demo_seeds import add_options, common_params
from _quick import parse_with_quick
from robustness_dropout import split

TARGET = "label"
RULES = {"mixed": True, "top_bag": False}
"""Model-name suffix -> ``ensemble_model.MIX_BAGS``."""
QUICK = {"seeds": "0", "n": 60, "epochs": 2, "presets": "fast", "features": "review,income,age"}


def measured(params: dict[str, Any], train: Path, test: Path, seed: int
             ) -> tuple[MultimodalClassifier, dict[str, Any]]:
    """A classifier fitted on ``train`` and its test accuracy, clean and with 30 % missing."""
    est = MultimodalClassifier(**params, verbose=False)
    started = time.perf_counter()
    est.fit(train, target=TARGET)
    seconds = round(time.perf_counter() - started, 1)
    enc = est.prepare(test)
    missing = Views.build(enc, seed).missing
    assert missing is not None, "two modalities or more are needed"
    accuracy = {k: round(float(score(est.fitted_model, e)["accuracy"]), 4)
                for k, e in (("clean", enc), ("missing30", missing))}  # fmt: skip
    return est, {**accuracy, "fit_seconds": seconds}


def one_seed(seed: int, args: argparse.Namespace, common: dict[str, Any]) -> dict[str, dict[str, Any]]:
    train, test = split(make_demo_dataset(Path(args.out) / str(seed), n=args.n, seed=seed), seed)
    log(f"seed {seed}: one model")
    default, row = measured(common, train, test, seed)
    oracle = ceiling(default.prepare(test), test, args.n, seed, common["features"])
    models = {"oracle": {k: oracle[k] for k in ("clean", "missing30")}, "default": row}
    for preset in args.presets.split(","):
        for suffix, mix in RULES.items():
            log(f"seed {seed}: {preset}, {suffix}")
            ensemble_model.MIX_BAGS = mix
            try:
                est, row = measured({**common, "preset": preset}, train, test, seed)
            finally:
                ensemble_model.MIX_BAGS = True
            row["kept"] = est.search_.get("ensemble", {}).get("members", est.search_["kept"])
            models[f"{preset}_{suffix}"] = row
    return models


def summary(per_seed: dict[str, dict[str, dict[str, Any]]], presets: list[str]
            ) -> tuple[dict[str, Any], dict[str, Any]]:
    """(mean accuracy per model over the seeds, the paired mixed - top_bag difference per preset
    with its standard error)."""
    runs = list(per_seed.values())
    cols = ("clean", "missing30")
    mean = {m: {c: round(float(np.mean([r[m][c] for r in runs])), 4) for c in cols} for m in runs[0]}
    paired = {}
    for p in presets:
        diffs = {c: np.array([r[f"{p}_mixed"][c] - r[f"{p}_top_bag"][c] for r in runs]) for c in cols}
        paired[p] = {c: {"mean": round(float(d.mean()), 4),
                         "standard_error": round(float(d.std(ddof=1) / np.sqrt(len(d))), 4) if len(d) > 1 else None}
                     for c, d in diffs.items()}  # fmt: skip
    return mean, paired


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_options(parser, "/tmp/preset_choice")
    parser.add_argument("--presets", default="fast,medium", help="comma-separated (default %(default)s)")
    args = parse_with_quick(parser, QUICK)
    started = time.perf_counter()
    common = common_params(args)
    presets = args.presets.split(",")
    per_seed = {s: one_seed(int(s), args, common) for s in args.seeds.split(",")}
    mean, paired = summary(per_seed, presets)
    print(json.dumps({
        "benchmark": "preset_choice",
        "config": {"quick": args.quick, "seeds": args.seeds.split(","), "presets": presets, "n": args.n,
                   "features": common["features"], "epochs": args.epochs, "threads": args.threads},
        "per_seed": per_seed, "mean": mean, "paired": paired,
        "total_seconds": round(time.perf_counter() - started, 1),
    }, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
