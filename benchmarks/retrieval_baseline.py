#!/usr/bin/env python
"""Cross-modal retrieval on unseen pairs: mmfuse's MultimodalRetriever against a hand-written
plain-PyTorch linear-projection baseline on frozen features, and chance, in one run.

Datasets (generated in a temp dir at run time, never part of mmfuse's training data):

* ``image``: image-caption pairs from ``mmfuse.datasets.make_paired_dataset``; train and test
  sets are separate directories drawn with different seeds, so no image is in both.
* ``audio``: short phrases "<colour> <shape>" spoken by ``espeak-ng`` with several accents,
  voice variants, speeds and pitches. One clip is one item; clips sharing a transcript are
  positives of that transcript. Train and test use disjoint speakers (accent + variant), so
  no clip (and no speaker) is in both; the 40 transcripts are the same.
* ``sentences``: "the tired sailor sings on the bridge" (10 x 10 x 8 x 8 combinations), 600
  train sentences x 2 clips and 150 *other* test sentences x 1 clip, by disjoint speakers: the
  test transcripts were never heard in training.

The audio sets are skipped when ``espeak-ng`` is not on PATH.

Sides, on the same train rows and the same test rows:

* ``mmfuse``: ``MultimodalRetriever(pair=...).fit(train)`` (defaults: frozen pretrained
  encoders, ``projection="auto"``, its own validation split, refit on every pair), then
  ``evaluate(test)``.
* ``baseline``: frozen features computed here with ``load_backbone`` on inputs from
  ``get_preparation``, then one ``nn.Linear`` per side to 256-d, L2-normalised, symmetric
  InfoNCE with a learnable temperature (init 0.07), AdamW (lr 1e-3, weight decay 1e-4), batch
  128, the same epoch budget, the epoch with the best validation ``recall_mean`` (mean of R@1,
  R@5, R@10 over both directions) kept (ties: lower validation loss), on exactly the
  validation split mmfuse makes (20 %, whole items held out). Losses ``clip`` (the diagonal is
  the only positive) and ``multi_positive`` (rows sharing an item are soft positives); a third
  variant, ``clip/all_pairs_last_epoch``, is what a plain script usually does: every training
  pair, all epochs, the last weights. Two groups of features:

  - ``standard_features``: what the packages' own APIs give, the usual choice for such a
    baseline: EfficientNet-Lite0's pooled 1280-d ImageNet feature; Resemblyzer's 256-d
    utterance embedding (``VoiceEncoder.embed_utterance``), and separately the per-band mean +
    std over time of a 40-band log-mel (80-d).
  - ``same_features``: exactly mmfuse's frozen features (EfficientNet-Lite0 1440-d with the
    middle block's colour and texture statistics; voice 768-d with the middle LSTM layer's
    statistics).

  The text side is always MiniLM's 384-d sentence embedding.
* ``chance``: the metrics of random Gaussian embeddings, averaged over 20 draws.

``comparison`` and ``all_beat_baseline`` compare mmfuse with the best baseline variant of
each group, metric by metric: strictly better, or both at the metric's best value (1.0).
Usage::

    .venv/bin/python benchmarks/retrieval_baseline.py [--threads 2] [--epochs 30] [--seeds 3] \\
        [--quick] [--datasets image,audio,sentences]

The plain baseline is in ``_retrieval_plain.py``; the speech data and the frozen features are
in ``_retrieval_inputs.py``. ``--quick`` (see ``SIZES``; 1 epoch, 1 seed) is a smoke run of a few seconds per dataset whose
galleries are far too small to rank the methods.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from _quick import parse_with_quick
from _retrieval_inputs import (
    Features, audio_speakers, backbone_features, first, make_audio_dataset, mel_stat_features,
    pooled_width, speaker_width,
)  # fmt: skip
from _retrieval_plain import (
    BATCH, EMBED_DIM, LR, TEMPERATURE, WEIGHT_DECAY, better, fit_baseline,
)  # fmt: skip

COLOURS = ("red", "green", "blue", "yellow", "black", "white", "pink", "brown")
SHAPES = ("circle", "square", "triangle", "star", "heart")
ADJECTIVES = ("small", "large", "old", "young", "happy", "angry", "quiet", "noisy", "tired", "clever")
NOUNS = ("dog", "cat", "horse", "farmer", "teacher", "child", "bird", "doctor", "sailor", "robot")
VERBS = ("walks", "sleeps", "sings", "runs", "waits", "dances", "reads", "eats")
PLACES = ("in the garden", "near the river", "on the bridge", "at the station", "under the tree",
          "in the kitchen", "behind the house", "on the beach")  # fmt: skip
HIGHER_IS_BETTER = {"R@1": True, "R@5": True, "R@10": True, "MedR": False, "mAP": True}
CHANCE_DRAWS = 20
SEEDS = 3  # set from --seeds: each side runs this many seeds (init + validation split), metrics averaged
QUICK = {"epochs": 1, "seeds": 1}
SIZES = {
    "full": {"image": (300, 100, 3), "audio": (8, 5, 16, 6), "sentences": (600, 150, 16, 6)},
    "quick": {"image": (12, 8, 2), "audio": (2, 2, 2, 2), "sentences": (8, 4, 2, 2)},
}
"""image: (train items, test items, captions per item); audio: (colours, shapes, train speakers,
test speakers); sentences: (train sentences, test sentences, train speakers, test speakers)."""

Metrics = dict[str, dict[str, float]]
"""{"A->B": {"R@1", ...}, "B->A": {...}}"""


@dataclass
class Pairs:
    """One split of a paired dataset: its table, the folder paths resolve against, the pair."""

    df: pd.DataFrame
    base_dir: Path
    pair: tuple[str, str]

    @classmethod
    def read(cls, csv: Path, pair: tuple[str, str]) -> Pairs:
        return cls(pd.read_csv(csv), csv.parent, pair)

    def items(self, side: int) -> list[str]:
        return self.df[self.pair[side]].astype(str).tolist()


def log(message: str) -> None:
    print(f"[retrieval_baseline] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------- the plain baseline
def run_baselines(
    train: Pairs, test: Pairs, side_a: dict[str, Features], side_b: Features, epochs: int
) -> dict[str, dict[str, Any]]:
    """Every (side-A features, loss) variant of the plain baseline, trained and tested."""
    from mmfuse.retrieval.metrics import bidirectional_metrics

    started = time.perf_counter()
    fb_tr, fb_te = side_b(train.items(1), train.base_dir), side_b(test.items(1), test.base_dir)
    b_seconds = time.perf_counter() - started
    out = {}
    for name, features in side_a.items():
        started = time.perf_counter()
        fa_tr = features(train.items(0), train.base_dir)
        fa_te = features(test.items(0), test.base_dir)
        seconds = time.perf_counter() - started + b_seconds
        for loss, all_pairs in (("multi_positive", False), ("clip", False), ("clip", True)):
            variant = f"{loss}{'/all_pairs_last_epoch' if all_pairs else ''}"
            log(f"baseline {name} / {variant}")
            items = (train.items(0), train.items(1))
            per_seed, infos = [], []
            for seed in range(SEEDS):
                model, info = fit_baseline(
                    fa_tr, fb_tr, items, epochs, loss == "multi_positive", seed, all_pairs
                )
                with torch.no_grad():
                    za, zb = model(torch.from_numpy(fa_te), torch.from_numpy(fb_te))
                per_seed.append(bidirectional_metrics(za.numpy(), zb.numpy(), test.items(0),
                                                      test.items(1), test.pair))  # fmt: skip
                infos.append(info)
            out[f"{name}/{variant}"] = {
                "features": {train.pair[0]: f"{name} {fa_tr.shape[1]}-d",
                             train.pair[1]: f"minilm {fb_tr.shape[1]}-d"},
                "feature_seconds": round(seconds, 2), **infos[0],
                "best_epochs": [i["best_epoch"] for i in infos],
                "test": _rounded(_mean_metrics(per_seed)),
                "test_per_seed": [_rounded(m) for m in per_seed],
            }  # fmt: skip
    return out


# ---------------------------------------------------------------------------------- mmfuse
def run_mmfuse(train_csv: Path, test_csv: Path, pair: tuple[str, str], args: argparse.Namespace,
               cache_dir: Path, **params: Any) -> dict[str, Any]:  # fmt: skip
    """MultimodalRetriever fit on the train pairs, evaluated on the test pairs."""
    import mmfuse

    runs, per_seed = [], []
    for seed in range(SEEDS):
        est = mmfuse.MultimodalRetriever(
            pair=pair, epochs=args.epochs, cache_dir=str(cache_dir), num_threads=args.threads,
            seed=seed, verbose=False, **params,
        )  # fmt: skip
        started = time.perf_counter()
        est.fit(str(train_csv))
        fit_seconds = time.perf_counter() - started
        per_seed.append(est.evaluate(str(test_csv)))
        best_epoch, best = 0, (-math.inf, -math.inf)
        for h in est.history_:
            key = (h.get("valid_recall_mean", 0.0), -h["valid_loss"])
            if better(key, best):
                best_epoch, best = int(h["epoch"]), key
        runs.append({"projection": est.projection_, "projection_scores": est.projection_scores_,
                     "epochs_run": len(est.history_), "best_epoch": best_epoch,
                     "valid_recall_mean": round(best[0], 4), "fit_seconds": round(fit_seconds, 2)})  # fmt: skip
    return {
        "params": params, "encoders": est.model_config_.encoders, "seeds": SEEDS,
        "n_train": est.n_train_, "n_valid": est.n_valid_, "runs": runs,
        "test": _rounded(_mean_metrics(per_seed)),
        "test_per_seed": [_rounded(m) for m in per_seed],
    }  # fmt: skip


def _mean_metrics(per_seed: list[Metrics]) -> Metrics:
    """Metric by metric, the mean over seeds."""
    return {d: {k: float(np.mean([m[d][k] for m in per_seed])) for k in per_seed[0][d]}
            for d in per_seed[0]}  # fmt: skip


# --------------------------------------------------------------------------------- compare
def _rounded(metrics: Metrics) -> Metrics:
    return {d: {k: round(v, 4) for k, v in m.items()} for d, m in metrics.items()}


def chance_metrics(test: Pairs) -> Metrics:
    """Metrics of random unit embeddings on the test items, averaged over CHANCE_DRAWS."""
    from mmfuse.retrieval.metrics import bidirectional_metrics

    rng = np.random.default_rng(0)
    runs = []
    for _ in range(CHANCE_DRAWS):
        za, zb = (rng.standard_normal((len(test.df), EMBED_DIM)) for _ in range(2))
        runs.append(bidirectional_metrics(za, zb, test.items(0), test.items(1), test.pair))
    return _rounded({d: {k: float(np.mean([r[d][k] for r in runs])) for k in runs[0][d]}
                     for d in runs[0]})  # fmt: skip


def compare(mm: Metrics, baselines: list[Metrics], chance: Metrics) -> dict[str, Any]:
    """Per direction and metric: mmfuse, best baseline, chance, beats_baseline, x_chance."""
    out: dict[str, Any] = {}
    for d, metrics in mm.items():
        out[d] = {}
        for k, v in metrics.items():
            higher = HIGHER_IS_BETTER[k]
            base = (max if higher else min)(b[d][k] for b in baselines)
            beats = (v > base if higher else v < base) or v == base == 1.0
            ratio = v / chance[d][k] if higher else chance[d][k] / v
            out[d][k] = {"mmfuse": v, "best_baseline": base, "chance": chance[d][k],
                         "beats_baseline": bool(beats), "x_chance": round(ratio, 2)}  # fmt: skip
    return out


def summarise(name: str, sizes: dict[str, Any], test: Pairs, mm: dict[str, dict[str, Any]],
              baselines: dict[str, dict[str, Any]], groups: dict[str, list[str]]) -> dict[str, Any]:  # fmt: skip
    """``groups``: comparison name -> the side-A feature names of the baselines it compares with
    (e.g. the packages' standard features, or exactly mmfuse's frozen features)."""
    a, b = test.pair
    sizes["test_gallery"] = {f"{a}->{b}": int(test.df[b].astype(str).nunique()),
                             f"{b}->{a}": int(test.df[a].astype(str).nunique())}  # fmt: skip
    chance = chance_metrics(test)
    comparison: dict[str, Any] = {}
    for group, names in groups.items():
        tests = [r["test"] for key, r in baselines.items() if key.split("/")[0] in names]
        comparison[group] = {run: compare(r["test"], tests, chance) for run, r in mm.items()}
    return {
        "dataset": name, "sizes": sizes, "chance": chance, "mmfuse": mm, "baseline": baselines,
        "comparison": comparison,
        "all_beat_baseline": {
            group: {run: all(c["beats_baseline"] for d in cmp.values() for c in d.values())
                    for run, cmp in runs.items()}
            for group, runs in comparison.items()
        },
    }  # fmt: skip


# -------------------------------------------------------------------------------- datasets
MINILM = backbone_features("minilm-wordpiece-128", "minilm", media=False)


def sizes_of(args: argparse.Namespace, dataset: str) -> tuple[int, ...]:
    """The dataset's sizes (see ``SIZES``) for a full or a ``--quick`` run."""
    return SIZES["quick" if args.quick else "full"][dataset]


def image_benchmark(tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    from mmfuse.datasets import make_paired_dataset

    n_train, n_test, per = sizes_of(args, "image")
    train_csv = make_paired_dataset(tmp / "img_train", n_train, per, seed=101)
    test_csv = make_paired_dataset(tmp / "img_test", n_test, per, seed=202)
    pair = ("image", "caption")
    log(f"image: mmfuse on {n_train} x {per} pairs")
    mm = {"mmfuse": run_mmfuse(train_csv, test_csv, pair, args, tmp / "cache")}
    train, test = Pairs.read(train_csv, pair), Pairs.read(test_csv, pair)
    image = backbone_features("imagenet-224", "efficientnet-lite0", media=True)
    side_a = {"efficientnet-lite0-pooled": first(image, pooled_width()), "efficientnet-lite0": image}
    base = run_baselines(train, test, side_a, MINILM, args.epochs)
    sizes = {"train_items": n_train, "test_items": n_test, "captions_per_item": per,
             "train_pairs": len(train.df), "test_pairs": len(test.df)}  # fmt: skip
    groups = {"standard_features": ["efficientnet-lite0-pooled"], "same_features": ["efficientnet-lite0"]}
    return summarise("image-caption (make_paired_dataset, seed 101 train / 202 test)", sizes,
                     test, mm, base, groups)  # fmt: skip


def speech_benchmark(
    tmp: Path, args: argparse.Namespace, name: str, train_texts: list[str], test_texts: list[str],
    speakers: tuple[int, int], clips_per_text: tuple[int | None, int | None],
) -> dict[str, Any]:  # fmt: skip
    """Spoken transcripts: train and test clips by disjoint speakers; mmfuse vs the baselines."""
    import soundfile

    if shutil.which("espeak-ng") is None:
        return {"dataset": name, "skipped": "espeak-ng is not on PATH"}
    train_voices, test_voices = audio_speakers(*speakers)
    log(f"{name}: {len(train_texts)} + {len(test_texts)} transcripts, {sum(speakers)} speakers")
    train_csv = make_audio_dataset(tmp / f"{name}_train", train_texts, train_voices, 1, clips_per_text[0])
    test_csv = make_audio_dataset(tmp / f"{name}_test", test_texts, test_voices, 2, clips_per_text[1])
    pair = ("audio", "transcript")
    kinds = {"transcript": "text"}  # few distinct 2-word values are inferred as categorical
    mm = {"mmfuse": run_mmfuse(train_csv, test_csv, pair, args, tmp / "cache", kinds=kinds)}
    train, test = Pairs.read(train_csv, pair), Pairs.read(test_csv, pair)
    voice = backbone_features("voice-mel-4x160", "voice", media=True)
    side_a = {"voice-speaker": first(voice, speaker_width()), "logmel-mean-std": mel_stat_features,
              "voice": voice}  # fmt: skip
    base = run_baselines(train, test, side_a, MINILM, args.epochs)
    seconds = [soundfile.info(str(test.base_dir / p)).duration for p in test.items(0)]
    sizes = {"train_transcripts": len(train_texts), "test_transcripts": len(test_texts),
             "transcripts_shared_by_train_and_test": len(set(train_texts) & set(test_texts)),
             "train_speakers": train_voices, "test_speakers": test_voices,
             "train_clips": len(train.df), "test_clips": len(test.df),
             "median_clip_seconds": round(float(np.median(seconds)), 2)}  # fmt: skip
    groups = {"standard_features": ["voice-speaker", "logmel-mean-std"], "same_features": ["voice"]}
    return summarise(name, sizes, test, mm, base, groups)


def audio_benchmark(tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    """"<colour> <shape>": every transcript in train and test, spoken by other speakers."""
    n_colours, n_shapes, train_speakers, test_speakers = sizes_of(args, "audio")
    texts = [f"{c} {s}" for c in COLOURS[:n_colours] for s in SHAPES[:n_shapes]]
    return speech_benchmark(tmp, args, "audio-transcript (espeak-ng '<colour> <shape>', split by "
                            "speaker)", texts, texts, (train_speakers, test_speakers), (None, None))  # fmt: skip


def sentences_benchmark(tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Sentences never heard in training ("the tired sailor sings on the bridge"), by unseen
    speakers: train 600 sentences x 2 clips, test 150 other sentences x 1 clip."""
    import itertools

    words = itertools.product(ADJECTIVES, NOUNS, VERBS, PLACES)
    every = [f"the {a} {n} {v} {p}" for a, n, v, p in words]
    order = np.random.default_rng(0).permutation(len(every))
    n_train, n_test, train_speakers, test_speakers = sizes_of(args, "sentences")
    train = [every[i] for i in order[:n_train]]
    test = [every[i] for i in order[n_train : n_train + n_test]]
    return speech_benchmark(tmp, args, "audio-sentences (espeak-ng, unseen sentences and speakers)",
                            train, test, (train_speakers, test_speakers), (2, 1))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seeds", type=int, default=3,
                        help="seeds per side (init and validation split); metrics are means")
    parser.add_argument("--datasets", default="image,audio,sentences",
                        help="comma-separated: image,audio,sentences")
    args = parse_with_quick(parser, QUICK)
    global SEEDS
    SEEDS = args.seeds
    wanted = [d.strip() for d in args.datasets.split(",") if d.strip()]
    runs = {"image": image_benchmark, "audio": audio_benchmark, "sentences": sentences_benchmark}
    unknown = sorted(set(wanted) - set(runs))
    if unknown:
        parser.error(f"unknown dataset(s) {', '.join(unknown)}; choose from: {', '.join(runs)}")
    os.environ["MMFUSE_PRETRAINED"] = "1"
    torch.set_num_threads(args.threads)
    started, results = time.perf_counter(), {}
    with tempfile.TemporaryDirectory(prefix="mmfuse_retrieval_") as tmp:
        for name in wanted:
            results[name] = runs[name](Path(tmp), args)
    setup = {
        "epochs": args.epochs, "threads": args.threads, "quick": args.quick,
        "torch": torch.__version__, "python": platform.python_version(),
        "cpu_count": os.cpu_count(), "baseline": {"batch": BATCH, "lr": LR,
        "weight_decay": WEIGHT_DECAY, "temperature_init": TEMPERATURE, "embed_dim": EMBED_DIM},
        "beats_baseline": "strictly better than the best baseline variant, or both at 1.0",
    }  # fmt: skip
    total = round(time.perf_counter() - started, 1)
    print(json.dumps({"setup": setup, "results": results, "total_seconds": total}, indent=1))


if __name__ == "__main__":
    main()
