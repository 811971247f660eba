#!/usr/bin/env python
"""Does training with modality dropout make a model more robust to missing modalities?

On the demo dataset (``make_demo_dataset(out, n=600)``) the rows of ``data.csv`` are split
80/20 with pandas (seeded shuffle) into ``train.csv`` and ``test.csv`` next to it, and two
``MultimodalClassifier(epochs=15, kinds={"score": "ignore"})`` models are fitted on the
first file, one with ``modality_dropout=0.0`` and one with ``0.3``, everything else equal.
``robustness_curves`` then measures both on the second file at severities 0, 0.25, .., 1,
and ``plot_robustness`` draws their accuracy curves into ``--plots``.

Reported per model: clean accuracy; accuracy with each modality dropped from every test
record (``drop`` at severity 1); the mean accuracy over all (modality, corruption) curves at
each severity and whether that mean is non-increasing; how many single curves are
non-increasing up to one test record of slack; the MultiBench summary (relative and
effective robustness, retention) of the ``drop`` curves; and the epochs run and the epoch
whose weights were kept (the trainer keeps the lowest validation loss).

Prints one JSON object. Usage::

    .venv/bin/python benchmarks/robustness_dropout.py [--out /tmp/robust] [--n 600]
        [--epochs 15] [--plots /tmp/robust/plots] [--threads N] [--severities 0,0.25,0.5,0.75,1]
        [--quick]

``--quick`` (30 records, 1 epoch, severities 0, 0.5, 1) is a smoke run of a few seconds; its
numbers mean nothing.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmfuse import MultimodalClassifier
from mmfuse.datasets import make_demo_dataset
from mmfuse.evaluation.robustness import plot_robustness, robustness_curves, robustness_summary

from _quick import parse_with_quick

SEVERITIES = "0,0.25,0.5,0.75,1"
QUICK = {"n": 30, "epochs": 1, "severities": "0,0.5,1"}


def split(csv: Path, seed: int = 0) -> tuple[Path, Path]:
    """Writes train.csv (80 %) and test.csv (20 %) next to ``csv``."""
    df = pd.read_csv(csv)
    order = np.random.default_rng(seed).permutation(len(df))
    cut = int(0.8 * len(df))
    train, test = csv.with_name("train.csv"), csv.with_name("test.csv")
    df.iloc[np.sort(order[:cut])].to_csv(train, index=False)
    df.iloc[np.sort(order[cut:])].to_csv(test, index=False)
    return train, test


def measure(curves: pd.DataFrame, n_test: int) -> dict[str, Any]:
    acc = curves[curves["metric"] == "accuracy"]
    by_severity = acc.groupby("severity")["value"].mean()
    slack = 1.0 / n_test + 1e-9
    monotone = [
        bool(np.all(np.diff(g.sort_values("severity")["value"].to_numpy()) <= slack))
        for _, g in acc.groupby(["modality", "corruption"])
    ]
    dropped = acc[(acc["corruption"] == "drop") & (acc["severity"] == 1.0)]
    summary = robustness_summary(curves, "classification")
    drop_summary = summary[summary["corruption"] == "drop"].set_index("modality")
    return {
        "clean_accuracy": float(acc[acc["severity"] == 0]["value"].iloc[0]),
        "accuracy_modality_dropped": dict(zip(dropped["modality"], dropped["value"].round(4))),
        "mean_accuracy_by_severity": {str(k): round(float(v), 4) for k, v in by_severity.items()},
        "mean_curve_non_increasing": bool(np.all(np.diff(by_severity.to_numpy()) <= 1e-9)),
        "curves_non_increasing": f"{sum(monotone)}/{len(monotone)}",
        "drop_summary": drop_summary[
            ["relative_robustness", "effective_robustness", "retention"]
        ].round(4).to_dict(orient="index"),
        "accuracy_table": acc.pivot_table(
            index=["modality", "corruption"], columns="severity", values="value"
        ).round(4).reset_index().to_dict(orient="records"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="/tmp/robust")
    parser.add_argument("--n", type=int, default=600)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--plots", default=None, help="folder for the plots (default OUT/plots)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--severities", default=SEVERITIES,
                        help="comma-separated, 0 and 1 included (default %(default)s)")
    args = parse_with_quick(parser, QUICK)
    severities = tuple(float(s) for s in args.severities.split(","))
    if not {0.0, 1.0} <= set(severities):
        parser.error(f"--severities {args.severities!r} must include 0 and 1")
    out = Path(args.out)
    plots = Path(args.plots) if args.plots else out / "plots"
    started = time.perf_counter()
    train, test = split(make_demo_dataset(out, n=args.n))
    n_test = len(pd.read_csv(test))
    result: dict[str, Any] = {"n_train": args.n - n_test, "n_test": n_test, "quick": args.quick,
                              "severities": list(severities), "models": {}}  # fmt: skip
    for p in (0.0, 0.3):
        clf = MultimodalClassifier(
            epochs=args.epochs, kinds={"score": "ignore"}, modality_dropout=p, preset="none",
            num_threads=args.threads, verbose=False,
        )  # fmt: skip
        t0 = time.perf_counter()
        clf.fit(train, target="label")
        t1 = time.perf_counter()
        curves = robustness_curves(clf, test, severities=severities)
        t2 = time.perf_counter()
        plot = plot_robustness(curves, plots / f"robustness_dropout_{p}.png", "accuracy")
        curves.to_csv(plots / f"robustness_dropout_{p}.csv", index=False)
        result["models"][f"modality_dropout={p}"] = {
            **measure(curves, n_test),
            "epochs_run": len(clf.history_),
            "best_epoch": int(np.argmin([h["valid_loss"] for h in clf.history_])) + 1,
            "fit_seconds": round(t1 - t0, 1),
            "curves_seconds": round(t2 - t1, 1),
            "plot": str(plot),
        }
    result["total_seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
