#!/usr/bin/env python
"""Pretrained image encoder on a GPU: frozen feature extraction, fine-tuning, retrieval.

On generated image-caption data (``make_paired_dataset``), with ``--device`` (default cuda):

* ``frozen_extraction``: a classifier fit whose preprocessing encodes every image once with
  frozen EfficientNet-Lite0 (cold cache), then a second fit (warm cache);
* ``finetune``: a classifier fit with ``finetune="image"`` (the network trains at 1/20 of the
  learning rate, bf16 autocast on CUDA): per-epoch seconds and accuracy;
* ``retrieval``: an image-caption dual encoder (text tower ``gru``, so no text package is needed).

Prints one JSON object. Usage::

    python benchmarks/gpu_pretrained.py [--items 400] [--device cuda] [--epochs 3] [--threads N]
        [--quick]

``--quick`` (8 items, 1 epoch, the CPU when no GPU is present) is a smoke run of a few
seconds; its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from _quick import parse_with_quick

QUICK = {"items": 8, "epochs": 1, "device": None}
"""``device`` None: cuda when a GPU is present, else the CPU path."""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=400)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    return parse_with_quick(parser, QUICK)


def colour_table(work: Path, items: int) -> tuple[Path, Path]:
    """(image-caption pairs, image -> colour named in its caption), both as CSV files."""
    import pandas as pd

    from mmfuse.datasets import make_paired_dataset

    csv = make_paired_dataset(work / "pairs", n_items=items, captions_per_item=1, seed=0)
    df = pd.read_csv(csv)
    df["colour"] = df["caption"].str.extract(r"(red|green|blue|yellow|purple|orange|pink|cyan)")[0]
    df[["image", "colour"]].to_csv(work / "pairs" / "colours.csv", index=False)
    return csv, work / "pairs" / "colours.csv"


def classifier_run(data: Path, epochs: int, common: dict[str, Any], **params: Any) -> dict[str, Any]:
    """One classifier fit: seconds before training (preprocessing), per epoch, valid accuracy."""
    import mmfuse

    clf = mmfuse.MultimodalClassifier(epochs=epochs, preset="none", **common, **params)
    started = time.perf_counter()
    clf.fit(data, target="colour")
    total = time.perf_counter() - started
    return {"total_seconds": round(total, 2),
            "preprocess_seconds": round(total - clf.train_seconds_, 2),
            "epoch_seconds": [round(h["seconds"], 3) for h in clf.history_],
            "valid_accuracy": round(clf.metrics_["accuracy"], 4)}  # fmt: skip


def main() -> None:
    args = parse_args()
    os.environ["MMFUSE_PRETRAINED"] = "1"

    import torch

    import mmfuse

    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    out: dict[str, object] = {
        "device": args.device,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "torch": torch.__version__, "items": args.items, "quick": args.quick,
    }  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="mmfuse-gpu-") as tmp:
        csv, data = colour_table(Path(tmp), args.items)
        common = dict(device=args.device, cache_dir=str(Path(tmp) / "cache"), num_threads=args.threads,
                      verbose=False, encoders="image=efficientnet-lite0")  # fmt: skip
        out["frozen_extraction"] = {name: classifier_run(data, args.epochs, common)
                                    for name in ("cold cache", "warm cache")}  # fmt: skip
        out["finetune"] = classifier_run(data, args.epochs, common, finetune="image", batch_size=32)
        out["finetune"]["peak_gpu_mb"] = (round(torch.cuda.max_memory_allocated() / 2**20)
                                          if torch.cuda.is_available() else None)  # fmt: skip
        retriever = mmfuse.MultimodalRetriever(
            pair="image,caption", epochs=args.epochs * 5, device=args.device, cache_dir=common["cache_dir"],
            num_threads=args.threads, encoders="caption=gru", verbose=False,
        )  # fmt: skip
        started = time.perf_counter()
        retriever.fit(csv)
    out["retrieval"] = {"seconds": round(time.perf_counter() - started, 2), "metrics": retriever.metrics_}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
