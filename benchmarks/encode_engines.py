#!/usr/bin/env python
"""Filling the feature cache: ``mmfuse encode --engine local`` against ``--engine ray``, one run.

Issue #16 asks for Ray Data encoding (``mmfuse encode DATA --engine ray``) that fills the same
cache as the local engine, byte for byte, and for its throughput beside the local engine's on
this machine's cores.

A generated table holds ``--texts`` short product descriptions (MiniLM, 384-d) and ``--images``
PNG pictures (EfficientNet-Lite0, 1280-d). Each engine runs ``mmfuse encode`` in a fresh
process (``--threads``, ``--json``) into its own empty cache, ``--repeats`` times (a new cache
each time), so every run decodes and encodes every cell. Reported per engine: the encode's own
seconds (``seconds`` in its JSON: after imports, including Ray's start and its actors' network
loading), the process's wall seconds, records per second, and entries written. Then the bytes:
Ray's actors each run a network on one core, so its cache must equal, file for file, a local run
with ``--threads 1`` (run once more for that); against the local run on ``--threads`` cores, the
entries that differ and by how much (several threads sum in another order).

Usage::

    .venv/bin/python benchmarks/encode_engines.py [--texts 2000] [--images 300] [--threads 2] \\
        [--repeats 2] [--workdir DIR]

Needs ``mmfuse[pretrained,distributed]``. ``--quick`` (12 texts, 4 images, one run) is a smoke
run; its numbers mean nothing. Prints one JSON object to stdout; progress to stderr.
Duration with the defaults on 2 cores: about 3 minutes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _quick import parse_with_quick  # noqa: E402

WORDS = ("soft", "cotton", "shirt", "steel", "kettle", "blue", "lamp", "wooden", "chair", "quiet",
         "fan", "leather", "bag", "glass", "vase", "warm", "wool", "scarf", "small", "speaker")


def write_table(root: Path, texts: int, images: int, seed: int = 0) -> Path:
    """``root/data.csv``: a text column for every row, an image column for the first ``images``."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    (root / "img").mkdir(parents=True, exist_ok=True)
    rows = max(texts, images)
    pictures = []
    for i in range(rows):
        if i >= images:
            pictures.append("")
            continue
        pixels = rng.integers(0, 255, size=(64, 64, 3), dtype=np.uint8)
        pixels[16:48, 16:48] = rng.integers(0, 255, size=3, dtype=np.uint8)
        Image.fromarray(pixels).save(root / "img" / f"{i}.png")
        pictures.append(f"img/{i}.png")
    descriptions = [" ".join(rng.choice(WORDS, size=int(rng.integers(5, 14)))) + f" item {i}" for i in range(rows)]
    import pandas as pd

    table = root / "data.csv"
    pd.DataFrame({"description": [d if i < texts else "" for i, d in enumerate(descriptions)],
                  "picture": pictures}).to_csv(table, index=False)
    return table


def run_engine(table: Path, engine: str, cache: Path, threads: int) -> dict[str, Any]:
    """One ``mmfuse encode`` in a fresh process into the empty ``cache``."""
    cmd = [sys.executable, "-m", "mmfuse", "encode", str(table), "--engine", engine, "--threads", str(threads),
           "--cache-dir", str(cache), "--json", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MMFUSE_PRETRAINED": "1"}
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        tail = (done.stderr.strip() or done.stdout.strip()).splitlines()[-3:]
        return {"error": " | ".join(tail) or f"exit {done.returncode}"}
    report = json.loads(done.stdout[done.stdout.index("{"):])
    return {"seconds": report["seconds"], "wall_seconds": round(wall, 2),
            "records_per_second": report["records_per_second"],
            "written": sum(c["written"] for c in report["columns"]), "bad": len(report["bad"])}


def cache_digest(cache: Path) -> dict[str, str]:
    """Relative path -> SHA-256 of every file under ``cache`` (lock and temporary files left out)."""
    out = {}
    for path in sorted(p for p in cache.rglob("*") if p.is_file()):
        name = str(path.relative_to(cache))
        if name.endswith((".lock", ".tmp")):
            continue
        out[name] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--texts", type=int, default=2000, help="rows with a text (default 2000)")
    parser.add_argument("--images", type=int, default=300, help="rows with a picture (default 300)")
    parser.add_argument("--threads", type=int, default=2, help="cores each engine uses (default 2)")
    parser.add_argument("--repeats", type=int, default=2, help="runs per engine, each into a new cache")
    parser.add_argument("--workdir", help="where the table and caches go (default: a new temporary folder)")
    args = parse_with_quick(parser, {"texts": 12, "images": 4, "repeats": 1}, argv)
    root = Path(args.workdir or tempfile.mkdtemp(prefix="mmfuse-engines-"))
    table = write_table(root, args.texts, args.images)
    results: dict[str, list[dict[str, Any]]] = {"local": [], "ray": []}
    digests: dict[str, dict[str, str]] = {}
    for repeat in range(args.repeats):
        for engine in ("local", "ray"):  # alternated, so a slow spell of the machine hits both
            cache = root / f"cache-{engine}-{repeat}"
            run = run_engine(table, engine, cache, args.threads)
            print(f"{engine} run {repeat + 1}: {run}", file=sys.stderr)
            results[engine].append(run)
            if "error" not in run:
                digests.setdefault(engine, cache_digest(cache))
    # the byte reference: Ray's actors each run on one core, as the local engine does with one thread
    reference = root / "cache-local-1-thread"
    single = run_engine(table, "local", reference, 1)
    print(f"local, 1 thread: {single}", file=sys.stderr)
    digests["local_1_thread"] = cache_digest(reference) if "error" not in single else {}
    summary = {engine: _best(runs) for engine, runs in results.items()}
    local, ray = summary["local"], summary["ray"]
    print(json.dumps({
        "benchmark": "encode_engines",
        "config": {"texts": args.texts, "images": args.images, "records": max(args.texts, args.images),
                   "threads": args.threads, "repeats": args.repeats, "cpu_count": os.cpu_count()},
        "runs": results,
        "best": summary,
        "ray_over_local_seconds": round(ray["seconds"] / local["seconds"], 2)
        if "seconds" in ray and "seconds" in local else None,
        "local_1_thread": single,
        "cache_files": len(digests.get("local", {})),
        "ray_same_bytes_as_local_1_thread": bool(digests.get("ray")) and digests.get("ray") == digests["local_1_thread"],
        f"local_{args.threads}_threads_vs_ray": _differences(root / "cache-local-0", root / "cache-ray-0",
                                                               digests.get("local", {}), digests.get("ray", {})),
    }, indent=1))


def _differences(a: Path, b: Path, digest_a: dict[str, str], digest_b: dict[str, str]) -> dict[str, Any]:
    """Entries whose bytes differ between two caches, and the largest difference of their values
    (several threads sum in another order than one: the last bits of a few features move)."""
    differ = [k for k in digest_a if digest_a[k] != digest_b.get(k)]
    largest = max((float(np.abs(np.load(a / k) - np.load(b / k)).max()) for k in differ if k.endswith(".npy")),
                  default=0.0)
    return {"entries_differing": len(differ), "max_abs_difference": largest}


def _best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The fastest run (the least disturbed by anything else on the machine)."""
    ok = [r for r in runs if "seconds" in r]
    return min(ok, key=lambda r: r["seconds"]) if ok else runs[0]


if __name__ == "__main__":
    main()
