#!/usr/bin/env python
"""Memory and time of ``fit`` as rows grow: streamed records vs records in memory, one run.

Goal (issue #16): streamed, peak RSS at 1M records within 1.3x of that at 10k; epoch time
linear in rows.

Two kinds of generated records, each a single-modality classification table:

- ``embedding``: frozen features, as ``mmfuse encode`` or any other extractor leaves them: a
  64-d float32 vector per record in its own ``.npy`` file (the table holds the paths);
- ``image``: from-scratch small images: an 8x8 PNG per record, prepared at ``--image-size``
  (16 by default, 3 KB a record) for the small CNN.

The label is a noisy linear function of the vector, or whether the picture is brighter on
its left or right half, so the model learns something and the epoch does real work.

Each measurement runs ``fit`` (one epoch, no early stopping) in a fresh process, which then
reports its own peak resident set size (``ru_maxrss``: everything the process ever held,
the table, the imports, mapped pages), the epoch's seconds and the whole fit's seconds.
``stream`` forces streaming (``--stream``); ``memory`` forbids it (the in-memory fit, today's
behaviour and the baseline), up to ``--memory-max-rows``. The files for the largest size are
written once under ``--workdir`` and smaller sizes take the first rows of the same table.

Usage::

    .venv/bin/python benchmarks/scale_memory.py [--sizes 10000,100000,1000000] \\
        [--kinds embedding,image] [--modes stream,memory] [--threads 2] [--workdir DIR]

``--quick`` (300 and 600 records) is a smoke run of a few seconds; its numbers mean nothing.
Prints one JSON object to stdout; progress to stderr. Duration with the defaults on 2 cores:
writing 1M small files per kind takes a few minutes; the 1M image epoch dominates.
Disk: about 4 GB of small files per kind at 1M (one file system block each) plus the
streamed records (1M x 3 KB for images) while a fit runs.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _quick import parse_with_quick  # noqa: E402

DIM = 64
PNG_SIDE = 8


def write_files(kind: str, rows: int, root: Path) -> Path:
    """``root/<kind>/files.csv`` listing ``rows`` records (written once, then reused)."""
    folder = root / kind
    table = folder / "files.csv"
    if table.exists() and sum(1 for _ in open(table, encoding="utf-8")) - 1 >= rows:
        return table
    (folder / "f").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    direction = rng.normal(size=DIM).astype(np.float32)
    names, labels = [], []
    started = time.perf_counter()
    for i in range(rows):
        name, label = _write_one(kind, i, folder / "f", rng, direction)
        names.append(name)
        labels.append(label)
        if (i + 1) % 100_000 == 0:
            print(f"{kind}: wrote {i + 1:,} files in {time.perf_counter() - started:.0f}s", file=sys.stderr)
    import pandas as pd

    column = "vector" if kind == "embedding" else "picture"
    pd.DataFrame({column: names, "label": labels}).to_csv(table, index=False)
    return table


def _write_one(kind: str, i: int, folder: Path, rng: np.random.Generator, direction: np.ndarray) -> tuple[str, str]:
    sub = folder / f"{i // 10_000:03d}"
    if i % 10_000 == 0:
        sub.mkdir(exist_ok=True)
    if kind == "embedding":
        vector = rng.normal(size=DIM).astype(np.float32)
        np.save(sub / f"{i}.npy", vector, allow_pickle=False)
        return f"f/{sub.name}/{i}.npy", "a" if vector @ direction + rng.normal(0, 2) > 0 else "b"
    from PIL import Image

    left = rng.random() < 0.5
    pixels = rng.integers(0, 120, size=(PNG_SIDE, PNG_SIDE, 3), dtype=np.uint8)
    half = slice(0, PNG_SIDE // 2) if left else slice(PNG_SIDE // 2, PNG_SIDE)
    pixels[:, half] += 120
    Image.fromarray(pixels).save(sub / f"{i}.png")
    return f"f/{sub.name}/{i}.png", "left" if left else "right"


def measure_one(table: Path, rows: int, stream: bool, threads: int, image_size: int) -> dict[str, Any]:
    """One fit in this process (run in a child by ``main``): its peak RSS and times."""
    import pandas as pd

    from mmfuse import MultimodalClassifier
    from mmfuse.estimators import streaming

    if not stream:  # the in-memory baseline: never stream, whatever the estimate
        streaming.MEMORY_SHARE = float("inf")
    frame = pd.read_csv(table, nrows=rows)
    data = table.parent / f"rows-{rows}.csv"
    if not data.exists():
        frame.to_csv(data, index=False)
    del frame
    started = time.perf_counter()
    est = MultimodalClassifier(epochs=1, patience=0, num_threads=threads, image_size=image_size,
                               stream=stream, verbose=False, calibrate=False, augment="none", pretrained=False,
                               modality_dropout=0.0, store_dir=str(table.parent / "store"))
    est.fit(str(data), target="label")
    return {
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "epoch_seconds": round(float(est.history_[0]["seconds"]), 2),
        "fit_seconds": round(time.perf_counter() - started, 2),
        "n_train": est.n_train_,
        "valid_accuracy": round(float(est.metrics_["accuracy"]), 4),
    }


def _child(args: argparse.Namespace, kind: str, rows: int, stream: bool, table: Path) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--one", str(table), "--rows", str(rows), "--threads", str(args.threads),
           "--image-size", str(args.image_size)] + (["--stream-one"] if stream else [])
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"}
    return json.loads(done.stdout)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000", help="record counts")
    parser.add_argument("--kinds", default="embedding,image", help="embedding, image or both")
    parser.add_argument("--modes", default="stream,memory", help="stream, memory or both")
    parser.add_argument("--memory-max-rows", type=int, default=100_000,
                        help="largest size the in-memory baseline runs at (default 100000)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--image-size", type=int, default=16, help="prepared image side")
    parser.add_argument("--workdir", help="where the files go (default: a new temporary folder)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--stream-one", action="store_true", help=argparse.SUPPRESS)
    args = parse_with_quick(parser, {"sizes": "300,600", "memory_max_rows": 600}, argv)
    if args.one:
        print(json.dumps(measure_one(Path(args.one), args.rows, args.stream_one, args.threads, args.image_size)))
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    root = Path(args.workdir or tempfile.mkdtemp(prefix="mmfuse-scale-"))
    results: dict[str, Any] = {}
    for kind in args.kinds.split(","):
        table = write_files(kind, max(sizes), root)
        runs: dict[str, Any] = {}
        for mode in args.modes.split(","):
            for rows in sizes:
                if mode == "memory" and rows > args.memory_max_rows:
                    runs[f"{mode}/{rows}"] = {"skipped": f"above --memory-max-rows {args.memory_max_rows}"}
                    continue
                runs[f"{mode}/{rows}"] = run = _child(args, kind, rows, mode == "stream", table)
                print(f"{kind} {mode} {rows:,}: {run}", file=sys.stderr)
        results[kind] = {"runs": runs, "summary": _summary(runs, sizes)}
    print(json.dumps({"setup": {"sizes": sizes, "threads": args.threads, "image_size": args.image_size,
                                "embedding_dim": DIM, "workdir": str(root)}, "results": results}, indent=1))


def _summary(runs: dict[str, Any], sizes: list[int]) -> dict[str, Any]:
    """Streamed: peak RSS of the largest size over the smallest (goal <= 1.3) and epoch
    seconds per 1,000 training records at each size (linear: about constant)."""
    streamed = {n: runs.get(f"stream/{n}", {}) for n in sizes}
    ok = {n: r for n, r in streamed.items() if "peak_rss_mb" in r}
    if len(ok) < 2:
        return {}
    small, large = min(ok), max(ok)
    return {
        "rss_ratio_largest_to_smallest": round(ok[large]["peak_rss_mb"] / ok[small]["peak_rss_mb"], 3),
        "goal_rss_within_1.3x": ok[large]["peak_rss_mb"] <= 1.3 * ok[small]["peak_rss_mb"],
        "epoch_seconds_per_1k_train_records": {n: round(1000 * r["epoch_seconds"] / r["n_train"], 4)
                                               for n, r in ok.items()},
    }


if __name__ == "__main__":
    main()
