#!/usr/bin/env python
"""Pretrained (frozen, cached) encoders against from-scratch ones on the demo data, one run.

For each setting — image alone, review text alone, audio alone, and the fused attention model
over every demo modality — trains with from-scratch encoders (image ``cnn``, text ``gru``,
audio ``cnn``) and with the pretrained defaults (EfficientNet-Lite0, all-MiniLM-L6-v2, the
voice encoder), same split (the demo's 60/20/20) and budget, for ``--seeds`` seeds each, and
reports held-out test accuracy (per seed and the mean), the epoch whose weights were kept (best
validation accuracy), the epochs run before early stopping, and seconds (the pretrained side's
first run includes computing the cached features; ``feature_seconds``).

Prints one JSON object. Usage::

    .venv/bin/python benchmarks/pretrained_vs_scratch.py [--rows 1000] [--epochs 25] [--threads 2] \\
        [--sides scratch,pretrained] [--settings image,text,audio,fused] [--quick]

``--quick`` (24 rows, 1 epoch, 1 seed) is a smoke run of a few seconds; its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _quick import parse_with_quick

QUICK = {"rows": 24, "epochs": 1, "seeds": 1}


def split(table: Any, seed: int) -> list[Any]:
    """Train / valid / test tables, 60/20/20 and stratified by label, as ``mmfuse demo`` splits."""
    from mmfuse.estimators.demo import demo_split

    return demo_split(table, seed)


SETTINGS = {
    "image alone": ["image"],
    "text alone": ["review"],
    "audio alone": ["audio"],
    "fused (attention)": ["image", "review", "audio", "video", "income", "age", "region", "channel"],
}
SIDES = {"from scratch": False, "pretrained": True}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--data", help="existing demo data folder (default: generate one)")
    parser.add_argument("--sides", default="scratch,pretrained",
                        help="comma-separated: scratch,pretrained (default: both)")
    parser.add_argument("--settings", default="image,text,audio,fused",
                        help="comma-separated: image,text,audio,fused (default: all)")
    return parse_with_quick(parser, QUICK)


def run_setting(name: str, side: str, parts: list[Any], args: argparse.Namespace, cache: Path) -> dict[str, Any]:
    """One setting on one side, over ``args.seeds`` seeds: test accuracy, kept epoch, seconds."""
    import mmfuse

    train, valid, test = parts
    runs = []
    for seed in range(args.seeds):
        clf = mmfuse.MultimodalClassifier(
            fusion="attention", epochs=args.epochs, features=SETTINGS[name], pretrained=SIDES[side],
            seed=seed, cache_dir=str(cache), num_threads=args.threads, verbose=False,
        )  # fmt: skip
        started = time.perf_counter()
        clf.fit(train, target="label", valid=valid)
        total = time.perf_counter() - started
        best = max(clf.history_, key=lambda h: (h["valid_accuracy"], -h["valid_loss"]))
        runs.append({"seed": seed, "test_accuracy": round(clf.score(test), 4),
                     "best_epoch": int(best["epoch"]), "epochs_run": len(clf.history_),
                     "train_seconds": round(clf.train_seconds_, 1),
                     "feature_seconds": round(total - clf.train_seconds_, 1)})  # fmt: skip
    accuracy = [r["test_accuracy"] for r in runs]
    return {
        "setting": name, "encoders": side,
        "encoder_names": {m: e for m, e in clf.model_config_.encoders.items() if m != "tabular"},
        "test_accuracy_mean": round(statistics.mean(accuracy), 4),
        "test_accuracy_sd": round(statistics.stdev(accuracy), 4) if len(runs) > 1 else 0.0,
        "best_epoch_mean": round(statistics.mean(r["best_epoch"] for r in runs), 1),
        "runs": runs,
    }  # fmt: skip


def main() -> None:
    args = parse_args()
    os.environ["MMFUSE_PRETRAINED"] = "1"

    import mmfuse
    from mmfuse.datasets import make_demo_dataset

    settings = [k for k in SETTINGS if k.split()[0] in args.settings.split(",")]
    sides = [k for k in SIDES if k.split()[-1] in args.sides.split(",")]
    with tempfile.TemporaryDirectory(prefix="mmfuse-pt-") as tmp:
        work = Path(tmp)
        data = Path(args.data) if args.data else work / "data"
        if not args.data:
            make_demo_dataset(data, n=args.rows, seed=0)
        table = mmfuse.read_table(data)
        parts = split(table, 0)
        results = []
        for name in settings:
            for side in sides:
                results.append(run_setting(name, side, parts, args, work / "cache"))
                print(json.dumps(results[-1]), flush=True, file=sys.stderr)
    train, valid, test = parts
    print(json.dumps({"benchmark": "pretrained_vs_scratch", "rows": len(table.df),
                      "n_train": len(train.df), "n_valid": len(valid.df), "n_test": len(test.df),
                      "threads": args.threads, "quick": args.quick, "results": results}, indent=2))


if __name__ == "__main__":
    main()
