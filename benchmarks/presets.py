#!/usr/bin/env python
"""Do the presets choose well? fast / medium / best against one model and compare's best.

On the demo dataset (``make_demo_dataset(out, n=800, seed=0)``) the rows of ``data.csv`` are
split 80/20 (a seeded permutation) into ``train.csv`` and ``test.csv`` next to it. Every model
uses the feature columns image, review, audio, income, age, region (``--features``) and the
target ``label``, and is fitted on ``train.csv`` with the library's defaults otherwise:

- ``default``: one model, ``MultimodalClassifier(preset="none")`` (the plain fit before
  ``fast`` became the default);
- ``fast``, ``medium``, ``best``: ``MultimodalClassifier(preset=...)`` (``--presets``,
  ``--time-limit``);
- ``compare_best``: ``compare(train.csv, "label", fusions="all", folds=3)`` is run (its wall
  time recorded), its best fused row is taken, and that fusion and level is fitted on the whole
  of ``train.csv`` like the others;
- one model per modality alone (``preset="none"``) (``features=[col]`` for a media column,
  the tabular columns together as ``tabular``), clean accuracy only.

Each model is then measured on ``test.csv`` (``est.prepare``, scored with
``evaluation.scoring.score``): accuracy on (a) the clean records; (b) ``missing30``: each
modality hidden in 30 % of them (``search.validation.Views.build(enc, seed).missing``); (c)
``<m>_noise``: modality ``--noised`` (image) drowned in noise, ``robustness_curves`` at
severity 1 (``gaussian_noise`` for image and video, ``noise`` for audio and tabular); and
``shuffled``: each modality in turn taken from other records (``Views.shuffled``), per
modality and the minimum. ``fit_seconds`` is the wall time of ``fit`` (for ``compare_best``
the refit alone; ``compare.seconds`` is compare's own run). For each modality ``m``,
``best_intact_alone[m]`` is the best clean accuracy of the single-modality models of the OTHER
modalities: what a model could reach by trusting only what is intact when ``m`` is corrupted.

``oracle``: the demo's Bayes-optimal accuracy on the same test records, clean and
``missing30`` (``_demo_ceiling``): the ceiling of any model, and in ``drop`` what hiding 30 %
of each modality costs the data itself.

``goals`` (issue #17), each with ``met`` (null when a model it needs was not run) and the
numbers it was computed from:

- ``medium_near_compare_in_a_third_of_its_time``: medium's clean accuracy at most 1 point
  under compare_best's, and medium's fit time at most a third of compare's (its run plus the
  refit of its best: what a user spends to get that model);
- ``best_above_compare``: best's clean accuracy above compare_best's;
- ``missing30_within_5_points``: no preset loses more than 5 points from clean to missing30
  (``oracle_drop``: the oracle's drop on the same records; ``beyond_oracle``: each preset's
  drop minus it, what the model loses beyond what the data forces);
- ``noised_not_below_best_intact_alone``: with ``--noised`` drowned in noise, no preset falls
  below ``best_intact_alone`` of that modality (``met_shuffled``: the same for each shuffled
  modality, for information).

Every timed fit finds the libraries loaded and the pretrained features cached: a 1-epoch fit
and a pass over ``test.csv`` run first (``config.warm_up_seconds``), so the first model timed
does not pay for what the others reuse.

Prints one JSON object (progress on stderr): ``config``, ``sizes``, ``compare``, ``models``
(per model: ``accuracy``, ``fit_seconds``, and for presets what the search kept, what it
skipped and why, and its fine-tuned candidates' scores), ``alone``,
``best_intact_alone``, ``oracle``, ``table`` (one row per model), ``goals``,
``total_seconds``. Usage::

    .venv/bin/python benchmarks/presets.py [--out /tmp/presets] [--n 800] [--seed 0]
        [--features image,review,audio,income,age,region] [--presets fast,medium,best]
        [--time-limit SECONDS] [--epochs N] [--fusions all] [--folds 3] [--noised image]
        [--threads N] [--quick]

Run it alone on the machine: it reports wall times. ``--quick`` (60 records, 2 epochs, fast
only, compare over concat and mean with 2 folds, features review, income, age, tabular
noised) is a smoke run; its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import time
from pathlib import Path
from typing import Any

import pandas as pd

from mmfuse import MultimodalClassifier
from mmfuse._progress import log
from mmfuse.data.preprocess import Encoded
from mmfuse.data.schema import TABULAR
from mmfuse.datasets import make_demo_dataset
from mmfuse.estimators.compare import compare
from mmfuse.evaluation.robustness import robustness_curves
from mmfuse.evaluation.scoring import score
from mmfuse.search.presets import PRESETS
from mmfuse.search.validation import Views

from _demo_ceiling import ceiling as demo_ceiling
from _quick import parse_with_quick
from robustness_dropout import split

TARGET = "label"
FEATURES = "image,review,audio,income,age,region"
QUICK = {"n": 60, "epochs": 2, "presets": "fast", "fusions": "concat,mean", "folds": 2,
         "features": "review,income,age", "noised": TABULAR}  # fmt: skip
NOISE = {"image": "gaussian_noise", "video": "gaussian_noise", "audio": "noise", "tabular": "noise"}
"""Modality kind -> the corruption that drowns it in noise (text has none)."""
POINT = 0.01
EPS = 1e-9  # accuracies are multiples of 1 / n_test: compare them without float noise


def fitted(params: dict[str, Any], train: Path) -> tuple[MultimodalClassifier, float]:
    """A classifier with ``params`` fitted on ``train``, and the wall seconds of ``fit``."""
    est = MultimodalClassifier(**params, verbose=False)
    started = time.perf_counter()
    est.fit(train, target=TARGET)
    return est, round(time.perf_counter() - started, 1)


def warm_up(common: dict[str, Any], train: Path, test: Path) -> tuple[dict[str, str], float]:
    """A 1-epoch fit and a pass over ``test``, so that every timed fit finds the libraries
    loaded and the pretrained features cached; the modality kinds and the seconds it took."""
    started = time.perf_counter()
    est, _ = fitted({**common, "epochs": 1}, train)
    est.prepare(test)
    return dict(est.preprocessor_.modalities), round(time.perf_counter() - started, 1)


def accuracy(est: MultimodalClassifier, enc: Encoded) -> float:
    return round(float(score(est.fitted_model, enc)["accuracy"]), 4)


def noised_accuracy(est: MultimodalClassifier, test: Path, enc: Encoded, modality: str,
                    seed: int) -> float:
    """Accuracy with ``modality`` drowned in noise (its ``NOISE`` corruption at severity 1)."""
    corruption = NOISE[est.preprocessor_.modalities[modality]]
    curves = robustness_curves(est, test, severities=[0, 1], modalities=[modality], seed=seed,
                               clean=enc)  # fmt: skip
    rows = curves[(curves["metric"] == "accuracy") & (curves["corruption"] == corruption)
                  & (curves["severity"] == 1.0)]  # fmt: skip
    return round(float(rows["value"].iloc[0]), 4)


def measure(est: MultimodalClassifier, test: Path, noised: str, seed: int) -> dict[str, Any]:
    """Test accuracy clean, with 30 % of each modality missing, with ``noised`` drowned in
    noise and with each modality shuffled across records (see the module docstring)."""
    enc = est.prepare(test)
    views = Views.build(enc, seed)
    assert views.missing is not None  # two modalities or more (checked in main)
    shuffled = {m: accuracy(est, v) for m, v in views.shuffled.items()}
    return {
        "clean": accuracy(est, enc),
        "missing30": accuracy(est, views.missing),
        f"{noised}_noise": noised_accuracy(est, test, enc, noised, seed),
        "shuffled": shuffled,
        "shuffled_min": min(shuffled.values()),
    }


def kept(est: MultimodalClassifier) -> dict[str, Any]:
    """What a preset's search kept, from ``est.search_``."""
    record = est.search_
    return {
        "kept": record["kept"], "best_single": record["best_single"],
        "ensemble": record.get("ensemble", {}).get("members"), "trials": len(record["trials"]),
        "skipped": [{k: v for k, v in x.items() if k in ("name", "why")} for x in record["skipped"]],
        "finetuned": [{k: t.get(k) for k in ("name", "selection", "mean_selection", "epochs_run", "seconds")}
                      for t in record["trials"] if str(t.get("features", "")).startswith("finetune=")],
        "search_seconds": record["seconds"],
    }  # fmt: skip


def compare_best(train: Path, common: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """compare's run over ``--fusions``: its wall time, leaderboard and best fused row."""
    started = time.perf_counter()
    shared = {k: v for k, v in common.items() if k != "preset"}  # compare's rows are one model each
    board = compare(train, TARGET, fusions=args.fusions, folds=args.folds, verbose=False, **shared)
    seconds = round(time.perf_counter() - started, 1)
    best = board[board["group"] == "fused"].iloc[0]
    return {
        "seconds": seconds, "best": best["name"], "level": best["level"], "fusion": best["fusion"],
        "cv_accuracy": round(float(best["accuracy_mean"]), 4),
        "leaderboard": dict(zip(board["name"], board["accuracy_mean"].round(4))),
    }  # fmt: skip


def alone(modalities: list[str], features: list[str], common: dict[str, Any], train: Path,
          test: Path) -> dict[str, dict[str, Any]]:
    """Each modality alone, one model: clean test accuracy and fit time (the media
    column, or every tabular column together)."""
    tabular = [c for c in features if c not in modalities]
    out = {}
    for m in modalities:
        log(f"fitting {m} alone")
        est, seconds = fitted({**common, "features": tabular if m == TABULAR else [m]}, train)
        out[m] = {"clean": accuracy(est, est.prepare(test)), "fit_seconds": seconds}
    return out


def best_intact(singles: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    """Modality -> the best clean accuracy of the single-modality models of the others."""
    return {m: max((s["clean"] for o, s in singles.items() if o != m), default=None)
            for m in singles}  # fmt: skip


def goals(models: dict[str, dict[str, Any]], compare_seconds: float,
          intact: dict[str, float | None], noised: str,
          ceiling: dict[str, float]) -> dict[str, dict[str, Any]]:
    """The issue's goals from the measured numbers (``met`` None where a model was not run);
    ``compare_seconds``: compare's run plus the refit of its best; ``ceiling``: ``oracle``'s."""
    acc = {k: m["accuracy"] for k, m in models.items()}
    cmp = acc["compare_best"]["clean"]
    clean = {k: a["clean"] for k, a in acc.items()}
    presets = [p for p in PRESETS if p in models]
    near = None
    if "medium" in models:
        in_time = models["medium"]["fit_seconds"] <= compare_seconds / 3
        near = clean["medium"] >= cmp - POINT - EPS and in_time
    drops = {p: round(clean[p] - acc[p]["missing30"], 4) for p in presets}
    noisy = {p: acc[p][f"{noised}_noise"] for p in presets}
    floor = intact[noised]
    assert floor is not None  # two modalities or more (checked in main)
    shuffled = [acc[p]["shuffled"][m] >= v - EPS
                for p in presets for m, v in intact.items() if v is not None]
    return {
        "medium_near_compare_in_a_third_of_its_time": {
            "met": near, "medium_clean": clean.get("medium"), "compare_clean": cmp,
            "medium_seconds": models.get("medium", {}).get("fit_seconds"),
            "compare_and_refit_seconds": compare_seconds,
        },
        "best_above_compare": {
            "met": clean["best"] > cmp + EPS if "best" in clean else None,
            "best_clean": clean.get("best"), "compare_clean": cmp,
        },
        "missing30_within_5_points": {
            "met": all(d <= 5 * POINT + EPS for d in drops.values()) if presets else None,
            "drop": drops, "oracle_drop": ceiling["drop"],
            "beyond_oracle": {p: round(d - ceiling["drop"], 4) for p, d in drops.items()},
        },
        "noised_not_below_best_intact_alone": {
            "met": all(v >= floor - EPS for v in noisy.values()) if presets else None,
            "modality": noised, "best_intact_alone": floor, "accuracy": noisy,
            "met_shuffled": all(shuffled) if presets else None,
        },
    }  # fmt: skip


def table(models: dict[str, dict[str, Any]], noised: str) -> list[dict[str, Any]]:
    """One row per model: the accuracies side by side with the fit time."""
    cols = ("clean", "missing30", f"{noised}_noise", "shuffled_min")
    return [{"model": k, **{c: m["accuracy"][c] for c in cols}, "fit_seconds": m["fit_seconds"]}
            for k, m in models.items()]  # fmt: skip


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add = parser.add_argument
    add("--out", default="/tmp/presets", help="folder for the data (default %(default)s)")
    add("--n", type=int, default=800, help="demo records (default %(default)s)")
    add("--seed", type=int, default=0, help="seed of the data, the split and the damaged copies")
    add("--features", default=FEATURES, help="comma-separated columns (default %(default)s)")
    add("--presets", default=",".join(PRESETS), help="comma-separated (default %(default)s)")
    add("--time-limit", type=float, default=None, help="the presets' time limit in seconds")
    add("--epochs", type=int, default=None,
        help="epochs of every model (default: fit's and compare's own defaults)")
    add("--fusions", default="all", help="compare's fusions (default %(default)s)")
    add("--folds", type=int, default=3, help="compare's folds (default %(default)s)")
    add("--noised", default="image", help="modality drowned in noise (default %(default)s)")
    add("--threads", type=int, default=None)
    args = parse_with_quick(parser, QUICK)
    unknown = sorted(set(args.presets.split(",")) - set(PRESETS))
    if unknown:
        parser.error(f"--presets: unknown {unknown}; choose from {', '.join(PRESETS)}")
    return args


def check_modalities(kinds: dict[str, str], args: argparse.Namespace) -> None:
    """Two modalities or more, and ``--noised`` one that has a noise corruption."""
    if len(kinds) < 2:
        raise SystemExit(f"--features {args.features}: one modality ({', '.join(kinds)}); "
                         "the benchmark compares fusions of two or more")  # fmt: skip
    if kinds.get(args.noised) not in NOISE:
        choices = ", ".join(m for m, k in kinds.items() if k in NOISE)
        raise SystemExit(f"--noised {args.noised!r}: choose a modality with a noise corruption "
                         f"among {choices}")  # fmt: skip


def main() -> None:
    args = parse()
    started = time.perf_counter()
    features = args.features.split(",")
    common: dict[str, Any] = {"features": features, "num_threads": args.threads, "preset": "none"}
    if args.epochs is not None:
        common["epochs"] = args.epochs
    train, test = split(make_demo_dataset(Path(args.out), n=args.n, seed=args.seed), args.seed)
    log("warming up (libraries, feature cache)")
    kinds, warm_seconds = warm_up(common, train, test)
    check_modalities(kinds, args)
    models: dict[str, dict[str, Any]] = {}
    log("fitting one model")
    default, seconds = fitted(common, train)
    ceiling = demo_ceiling(default.prepare(test), test, args.n, args.seed, features)
    models["default"] = {"accuracy": measure(default, test, args.noised, args.seed),
                         "fit_seconds": seconds}  # fmt: skip
    for name in args.presets.split(","):
        log(f"fitting preset {name}")
        est, seconds = fitted({**common, "preset": name, "time_limit": args.time_limit}, train)
        models[name] = {"accuracy": measure(est, test, args.noised, args.seed),
                        "fit_seconds": seconds, "search": kept(est)}  # fmt: skip
    log(f"compare over {args.fusions} ({args.folds} folds)")
    cmp = compare_best(train, common, args)
    est, seconds = fitted({**common, "fusion": cmp["fusion"], "level": cmp["level"]}, train)
    models["compare_best"] = {"accuracy": measure(est, test, args.noised, args.seed),
                              "fit_seconds": seconds}  # fmt: skip
    singles = alone(list(kinds), features, common, train, test)
    intact = best_intact(singles)
    compare_seconds = round(cmp["seconds"] + seconds, 1)
    result = {
        "benchmark": "presets",
        "config": {
            "quick": args.quick, "n": args.n, "seed": args.seed, "features": features,
            "presets": args.presets.split(","), "time_limit": args.time_limit,
            "epochs": args.epochs, "fusions": args.fusions, "folds": args.folds,
            "noised": args.noised, "threads": args.threads, "cpus": os.cpu_count(),
            "pretrained": {m: p.backbone for m, p in default.preprocessor_.pretrained.items()},
            "optuna": importlib.util.find_spec("optuna") is not None,
            "warm_up_seconds": warm_seconds,
        },
        "sizes": {"train": len(pd.read_csv(train)), "test": len(pd.read_csv(test)),
                  "modalities": kinds},
        "compare": {**cmp, "refit_seconds": seconds},
        "models": models,
        "alone": singles,
        "best_intact_alone": intact,
        "oracle": ceiling,
        "table": table(models, args.noised),
        "goals": goals(models, compare_seconds, intact, args.noised, ceiling),
        "total_seconds": round(time.perf_counter() - started, 1),
    }  # fmt: skip
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
