#!/usr/bin/env python
"""Words and tone: text alone, each audio encoder alone and fused, on speakers never heard.

Data: ``make_tone_dataset`` (espeak-ng; ``mmfuse.datasets.tone``): praise or criticism said
lively or flat, the label ``emotion`` (happy / sarcastic / angry / sad) crossing the two, so
that neither the words nor the tone alone can reach more than about half of it; the test
speakers (accent x voice variant) never occur in training. One dataset per ``--seeds`` seed
(a different draw of speakers, sentences and tones), and the model seeded the same.

Models (``MultimodalClassifier(features=..., encoders=..., epochs=--epochs)``, everything else
at its default; features from the pretrained encoders, cached once per dataset):

* ``text``: the transcript (MiniLM);
* ``voice``, ``prosody``, ``voice+prosody``: the audio alone through that encoder;
* ``text+voice`` (the default before the prosody encoder), ``text+prosody``,
  ``text+voice+prosody``: transcript and audio fused (feature level, the default operator).

Reported per model: accuracy and macro-F1 on the test speakers, per seed and their mean, and
the mean fit seconds; per dataset, ``sentiment`` (the [-3, 3] score) fitted by
``MultimodalRegressor`` for ``text+voice`` and ``text+voice+prosody`` with MMSA's metrics
(``acc2``, ``acc7``, ``mae``, ``corr`` ...). Prints one JSON object.

Usage::

    .venv/bin/python benchmarks/voice_tone.py [--seeds 0,1,2] [--epochs 30] [--threads 2] [--out F]

``--quick`` (one seed, 6 speakers of 8 clips, 2 epochs, two models) is a smoke run; its
numbers mean nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _quick import parse_with_quick

MODELS = {
    "text": (["transcript"], None),
    "voice": (["audio"], "voice"),
    "prosody": (["audio"], "prosody"),
    "voice+prosody": (["audio"], "voice+prosody"),
    "text+voice": (["transcript", "audio"], "voice"),
    "text+prosody": (["transcript", "audio"], "prosody"),
    "text+voice+prosody": (["transcript", "audio"], "voice+prosody"),
}
REGRESSION_MODELS = ("text+voice", "text+voice+prosody")
QUICK = {"seeds": "0", "speakers": 6, "test_speakers": 2, "clips": 8, "epochs": 2,
         "models": "text,text+voice+prosody"}


def fit_one(cls: Any, folder: Path, name: str, target: str, args: argparse.Namespace, seed: int,
            cache: str) -> tuple[dict[str, float], float]:
    columns, audio = MODELS[name]
    est = cls(features=columns, encoders={"audio": audio} if audio else None,
              epochs=args.epochs, seed=seed, num_threads=args.threads, cache_dir=cache, verbose=False,
              preset="none")
    began = time.perf_counter()
    est.fit(str(folder / "train.csv"), target=target)
    seconds = time.perf_counter() - began
    return est.evaluate(str(folder / "test.csv")), seconds


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from mmfuse import MultimodalClassifier, MultimodalRegressor
    from mmfuse.datasets.tone import make_tone_dataset

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--speakers", type=int, default=24)
    parser.add_argument("--test-speakers", type=int, default=8)
    parser.add_argument("--clips", type=int, default=24, help="clips per speaker")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--out", type=Path)
    args = parse_with_quick(parser, QUICK, argv)
    names = args.models.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    per_seed: dict[str, list[dict[str, float]]] = {n: [] for n in names}
    regression: dict[str, list[dict[str, float]]] = {n: [] for n in REGRESSION_MODELS if n in names}
    with tempfile.TemporaryDirectory(prefix="voice-tone-") as tmp:
        for seed in seeds:
            folder = make_tone_dataset(Path(tmp) / f"seed{seed}", args.speakers, args.test_speakers, args.clips, seed)
            cache = str(Path(tmp) / "cache")
            for name in names:
                print(f"[voice_tone] seed {seed}: {name}", file=sys.stderr)
                metrics, seconds = fit_one(MultimodalClassifier, folder, name, "emotion", args, seed, cache)
                per_seed[name].append({"accuracy": metrics["accuracy"], "f1_macro": metrics["f1_macro"],
                                       "fit_seconds": round(seconds, 2)})
            for name in regression:
                metrics, _ = fit_one(MultimodalRegressor, folder, name, "sentiment", args, seed, cache)
                regression[name].append({k: metrics[k] for k in ("acc2", "acc2_non0", "f1", "acc5", "acc7", "mae", "corr")})
    result = {
        "benchmark": "voice_tone",
        "config": {k: v for k, v in vars(args).items() if k != "out"},
        "emotion": {n: {"mean": _mean(rows), "per_seed": rows} for n, rows in per_seed.items()},
        "sentiment": {n: {"mean": _mean(rows), "per_seed": rows} for n, rows in regression.items()},
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    return result


def _mean(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: round(statistics.fmean(r[k] for r in rows), 4) for k in rows[0]} if rows else {}


if __name__ == "__main__":
    main()
