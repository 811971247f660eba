#!/usr/bin/env python
"""Epoch time of a frozen-encoder image model with and without mmfuse's feature cache, one run.

Data: ``--rows`` images of the built-in demo dataset (real PNG/JPEG files on disk) and its
binary label. The model: frozen EfficientNet-Lite0 (ImageNet weights) + the same trainable
projection and head; batch 64, AdamW.

Sides, all in this process, same files, same thread count:

* ``plain_encoding_loop``: a plain batched ``torch.no_grad`` loop over the files: decode with
  Pillow (the same 256 -> 224 centre crop and ImageNet normalisation), stack 32, run the frozen
  network. This is the floor for computing the features once.
* ``without_cache``: what a frozen-encoder model costs when nothing is cached: every epoch
  decodes every file and runs the frozen network again before the trainable layers train.
* ``with_cache``: ``MultimodalClassifier.fit`` with a fresh cache folder. Its first epoch
  includes computing and storing the features (the caching pass: hashing, threaded decoding,
  batched no-grad encoding, atomic writes); later epochs train on the cached features.
  ``second_fit_preprocess_seconds`` is the whole feature pass of a second ``fit`` on the
  same files (cache hits only: no decoding, no network).

Goals: later epochs >= 20x faster with the cache than without; the caching pass within 1.2x
of the plain encoding loop. Run on an otherwise idle machine. Usage::

    .venv/bin/python benchmarks/feature_cache.py [--rows 256] [--epochs 3] [--threads 2] [--quick]

``--quick`` (16 rows, 1 epoch) is a smoke run of a few seconds; its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from _quick import parse_with_quick

BACKBONE = "efficientnet-lite0"
QUICK = {"rows": 16, "epochs": 1}


def plain_features(paths: list[Path], net: nn.Module, batch: int = 32) -> np.ndarray:
    """The plain loop: decode a batch sequentially, stack, run the network without gradients."""
    from PIL import Image

    from mmfuse.data.preparations import IMAGENET_MEAN, IMAGENET_STD, resize_center_crop

    out = []
    with torch.no_grad():
        for i in range(0, len(paths), batch):
            arrays = []
            for p in paths[i : i + batch]:
                with Image.open(p) as img:
                    x = resize_center_crop(img, 224, 256)
                arrays.append((x - IMAGENET_MEAN) / IMAGENET_STD)
            out.append(net(torch.from_numpy(np.stack(arrays).astype(np.float32))).numpy())
    return np.concatenate(out)


def epoch_without_cache(paths: list[Path], labels: torch.Tensor, net: nn.Module, head: nn.Module,
                        opt: torch.optim.Optimizer) -> float:
    """One epoch that decodes and encodes every file again (no cache), then trains the head."""
    started = time.perf_counter()
    feats = torch.from_numpy(plain_features(paths, net))
    order = torch.randperm(len(paths))
    for idx in order.split(64):
        loss = nn.functional.cross_entropy(head(feats[idx]), labels[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parse_with_quick(parser, QUICK)
    torch.set_num_threads(args.threads)
    os.environ["MMFUSE_PRETRAINED"] = "1"

    import mmfuse
    from mmfuse.datasets import make_demo_dataset
    from mmfuse.encoders.backbones import load_backbone
    from mmfuse.pretrained import BACKBONES

    work = Path(tempfile.mkdtemp(prefix="mmfuse-cache-bench-"))
    try:
        make_demo_dataset(work / "data", n=args.rows, seed=0, missing_rate=0.0)
        table = mmfuse.read_table(work / "data")
        paths = [work / "data" / p for p in table.df["image"]]
        labels = torch.tensor((table.df["label"] == "positive").to_numpy(), dtype=torch.long)
        net = load_backbone(BACKBONE)
        plain_features(paths[:8], net)  # warm-up: weights in memory, kernels initialised

        started = time.perf_counter()
        plain_features(paths, net)
        plain = time.perf_counter() - started

        torch.manual_seed(0)
        dim = BACKBONES[BACKBONE].dim
        head = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, 128), nn.GELU(), nn.Linear(128, 2))
        opt = torch.optim.AdamW(head.parameters(), lr=2e-3)
        without = [epoch_without_cache(paths, labels, net, head, opt) for _ in range(args.epochs)]

        params = dict(features=["image"], epochs=args.epochs, patience=0, valid_fraction=0.2, preset="none",
                      cache_dir=str(work / "cache"), num_threads=args.threads, verbose=False)
        first = mmfuse.MultimodalClassifier(**params)
        t0 = time.perf_counter()
        first.fit(work / "data", target="label")
        first_total = time.perf_counter() - t0
        epochs = [h["seconds"] for h in first.history_]
        caching_pass = first_total - first.train_seconds_  # schema + features, before training
        t0 = time.perf_counter()
        second = mmfuse.MultimodalClassifier(**{**params, "fusion": "concat"})
        second.fit(work / "data", target="label")
        second_total = time.perf_counter() - t0
        second_pre = second_total - second.train_seconds_
        later_with = statistics.median(epochs[1:]) if len(epochs) > 1 else epochs[0]
        later_without = statistics.median(without[1:]) if len(without) > 1 else without[0]
        result = {
            "benchmark": "feature_cache",
            "rows": args.rows,
            "threads": args.threads,
            "quick": args.quick,
            "feature_dim": dim,
            "plain_encoding_loop_seconds": round(plain, 3),
            "without_cache": {"epoch_seconds": [round(s, 3) for s in without]},
            "with_cache": {
                "first_epoch_seconds": round(caching_pass + epochs[0], 3),
                "caching_pass_seconds": round(caching_pass, 3),
                "epoch_seconds": [round(s, 4) for s in epochs],
                "second_fit_preprocess_seconds": round(second_pre, 3),
            },
            "later_epoch_speedup": round(later_without / later_with, 1),
            "caching_pass_over_plain_loop": round(caching_pass / plain, 3),
            "goals": {"later_epoch_speedup_at_least": 20, "caching_pass_over_plain_loop_at_most": 1.2},
            "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                        "python": sys.version.split()[0], "torch": torch.__version__,
                        "loadavg_1min": round(os.getloadavg()[0], 2)},
        }
        print(json.dumps(result, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
