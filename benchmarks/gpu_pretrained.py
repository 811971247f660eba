#!/usr/bin/env python
"""Pretrained image encoder on a GPU: frozen feature extraction, fine-tuning, retrieval.

On generated image-caption data (``make_paired_dataset``), with ``--device`` (default cuda):

* ``frozen_extraction``: a classifier fit whose preprocessing encodes every image once with
  frozen EfficientNet-Lite0 (cold cache), then a second fit (warm cache);
* ``finetune``: a classifier fit with ``finetune="image"`` (the network trains at 1/20 of the
  learning rate, bf16 autocast on CUDA): per-epoch seconds and accuracy;
* ``retrieval``: an image-caption dual encoder (text tower ``gru``, so no text package is needed).

Prints one JSON object. Usage::

    python benchmarks/gpu_pretrained.py [--items 400] [--device cuda] [--epochs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=400)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    os.environ["MMFUSE_PRETRAINED"] = "1"

    import pandas as pd
    import torch

    import mmfuse
    from mmfuse.datasets import make_paired_dataset

    work = Path(tempfile.mkdtemp(prefix="mmfuse-gpu-"))
    csv = make_paired_dataset(work / "pairs", n_items=args.items, captions_per_item=1, seed=0)
    df = pd.read_csv(csv)
    df["colour"] = df["caption"].str.extract(r"(red|green|blue|yellow|purple|orange|pink|cyan)")[0]
    df[["image", "colour"]].to_csv(work / "pairs" / "colours.csv", index=False)
    data = work / "pairs" / "colours.csv"
    common = dict(device=args.device, cache_dir=str(work / "cache"), verbose=False, encoders="image=efficientnet-lite0")
    out: dict[str, object] = {
        "device": args.device,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "torch": torch.__version__, "items": args.items,
    }  # fmt: skip
    runs = {}
    for name in ("cold cache", "warm cache"):
        clf = mmfuse.MultimodalClassifier(epochs=args.epochs, **common)
        started = time.perf_counter()
        clf.fit(data, target="colour")
        total = time.perf_counter() - started
        runs[name] = {"preprocess_seconds": round(total - clf.train_seconds_, 2),
                      "epoch_seconds": [round(h["seconds"], 3) for h in clf.history_],
                      "valid_accuracy": round(clf.metrics_["accuracy"], 4)}  # fmt: skip
    out["frozen_extraction"] = runs
    clf = mmfuse.MultimodalClassifier(epochs=args.epochs, finetune="image", batch_size=32, **common)
    started = time.perf_counter()
    clf.fit(data, target="colour")
    out["finetune"] = {"total_seconds": round(time.perf_counter() - started, 2),
                       "epoch_seconds": [round(h["seconds"], 2) for h in clf.history_],
                       "valid_accuracy": round(clf.metrics_["accuracy"], 4),
                       "peak_gpu_mb": round(torch.cuda.max_memory_allocated() / 2**20) if torch.cuda.is_available() else None}  # fmt: skip
    retriever = mmfuse.MultimodalRetriever(
        pair="image,caption", epochs=args.epochs * 5, device=args.device, cache_dir=str(work / "cache"),
        encoders="caption=gru", verbose=False,
    )  # fmt: skip
    started = time.perf_counter()
    retriever.fit(csv)
    out["retrieval"] = {"seconds": round(time.perf_counter() - started, 2), "metrics": retriever.metrics_}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
