"""Options shared by the benchmarks that fit models on several demo datasets
(``preset_choice.py``, ``late_combiners.py``): where the data goes, the seeds, the records per
seed, the columns, the epochs and the threads, and the estimator parameters they give."""

from __future__ import annotations

import argparse
from typing import Any


def add_options(parser: argparse.ArgumentParser, out: str) -> None:
    """Adds --out (default ``out``), --seeds, --n, --features, --epochs and --threads."""
    add = parser.add_argument
    add("--out", default=out, help="folder for the data (default %(default)s)")
    add("--seeds", default="0,1,2,3,4,5,6,7", help="comma-separated data seeds (default %(default)s)")
    add("--n", type=int, default=800, help="demo records per seed (default %(default)s)")
    add("--features", default="image,review,audio,income,age,region", help="comma-separated columns")
    add("--epochs", type=int, default=None, help="epochs of every model (default: fit's own)")
    add("--threads", type=int, default=None)


def common_params(args: argparse.Namespace) -> dict[str, Any]:
    """The estimator parameters every model of the run shares."""
    common: dict[str, Any] = {"features": args.features.split(","), "num_threads": args.threads,
                              "preset": "none"}  # one model unless a run names its preset
    if args.epochs is not None:
        common["epochs"] = args.epochs
    return common
