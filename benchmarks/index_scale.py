#!/usr/bin/env python
"""Vector search at scale: torch brute force, FAISS exact and approximate indexes, one run.

Goal: on 1M vectors of 384 dims, approximate search answers queries at least 20x faster
(queries per second) than brute force while keeping recall@10 >= 0.95 against exact search.

For each size, in the same run and on the same data and queries:

- ``faiss_exact``: ``VectorIndex`` exact (``faiss.IndexFlatIP``), the ground truth for
  recall. ``faiss_exact_blas`` times the same index with FAISS forced onto BLAS: by default
  FAISS 1.15 uses BLAS only when queries x dims >= 128000, so batches under 334 queries of
  384 dims take a several times slower kernel (``--no-faiss-blas`` skips this row);
- ``brute_force_torch``: ``torch.topk`` over ``queries @ vectors.T``, the collection taken in
  chunks of ``--chunk`` rows so memory stays bounded (the baseline of every speedup);
- ``ivf`` / ``hnsw``: ``VectorIndex(approximate=...)``, configured exactly as the library
  does it: IVF with nlist ~ 4 * sqrt(N) (k-means on at most 64 vectors per list), HNSW with
  M=32 and efConstruction=80; then nprobe / efSearch is raised step by step until recall@10,
  measured at build on 1000 rows held out of the index until measured, reaches
  ``--target-recall`` (default 0.96: a margin over the 0.95 goal for the sampling error of
  that 1000-query estimate). Build time includes training, insertion and that tuning.

Each method reports build seconds, memory (index bytes from the structure sizes, and the
process RSS delta of the build), queries per second with queries arriving in batches of
``--query-batch`` (a service's micro-batches; p50/p95 batch latency too), recall@10 of the
benchmark queries against ``faiss_exact`` and the speedup over brute-force QPS. ``goal``
says, per size, which approximate methods reach 20x at recall@10 >= 0.95.

Data look like real embeddings, not uniform noise: a Gaussian mixture (``--clusters``
clusters of log-normal weights and per-cluster spread drawn from ``--spread``) in a
``--latent-dim`` subspace, mapped linearly into ``--dim`` dims, plus small isotropic noise
(``--noise``), then L2-normalised. Queries are fresh draws from the same distribution, not in
the collection.

Usage::

    .venv/bin/python benchmarks/index_scale.py [--sizes 100000,1000000] [--threads 2] \\
        [--queries 1000] [--query-batch 64] [--methods brute,exact,ivf,hnsw] \\
        [--target-recall 0.96]

``--quick`` (2,000 vectors of 64 dims in 20 clusters, 64 queries, every method) is a smoke run
of a few seconds; its numbers mean nothing.

Prints one JSON object to stdout; progress and a one-line summary per method go to stderr.
Memory: 1M x 384 float32 is 1.5 GB; the run holds the collection plus one index at a time
(an exact copy, and for IVF/HNSW the approximate copy too), so it peaks at about 5-6 GB.
Duration, estimated from runs at 10k-50k on a 2-core machine: about 10-20 minutes for the
default sizes with ``--threads 2``, dominated by the 1M HNSW build (~5 min), the 1M IVF
build (~1-2 min) and the 1M exact FAISS pass at batch 64 (~30 s); ``--methods
brute,exact,ivf`` skips HNSW. Run it on an otherwise idle machine: a busy neighbour makes
multi-threaded timings swing widely.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import platform
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from mmfuse._progress import log
from mmfuse.retrieval.ann import SEARCH_PARAMETER, nbytes, recall_at_k
from mmfuse.retrieval.index import VectorIndex

from _quick import parse_with_quick

K = 10
GOAL_SPEEDUP, GOAL_RECALL = 20.0, 0.95
METHODS = ("brute", "exact", "ivf", "hnsw")
QUICK = {"sizes": "2000", "dim": 64, "latent_dim": 8, "clusters": 20, "queries": 64,
         "query_batch": 32, "chunk": 512}  # fmt: skip


@dataclass(frozen=True)
class Mixture:
    """A Gaussian mixture in a low-dimensional subspace, mapped into the embedding space."""

    centres: np.ndarray  # (C, L)
    spread: np.ndarray  # (C,) per-cluster standard deviation
    weights: np.ndarray  # (C,) cluster probabilities
    mapping: np.ndarray  # (L, D)
    noise: float


def make_mixture(
    dim: int, latent_dim: int, clusters: int, spread: tuple[float, float], noise: float, seed: int
) -> Mixture:
    """The mixture: log-normal cluster weights (a few big clusters, many small ones), each
    cluster's spread uniform in ``spread``, a random linear map from the subspace."""
    rng = np.random.default_rng(seed)
    weights = rng.lognormal(0.0, 1.0, clusters)
    return Mixture(
        centres=rng.standard_normal((clusters, latent_dim)).astype(np.float32),
        spread=rng.uniform(*spread, clusters).astype(np.float32),
        weights=weights / weights.sum(),
        mapping=(rng.standard_normal((latent_dim, dim)) / np.sqrt(latent_dim)).astype(np.float32),
        noise=noise,
    )


def sample(mixture: Mixture, count: int, seed: int, chunk: int = 65536) -> np.ndarray:
    """(count, D) float32 unit vectors, generated in chunks so float64 copies stay small."""
    rng = np.random.default_rng(seed)
    dim = mixture.mapping.shape[1]
    out = np.empty((count, dim), dtype=np.float32)
    for start in range(0, count, chunk):
        n = min(chunk, count - start)
        cluster = rng.choice(len(mixture.weights), n, p=mixture.weights)
        latent = mixture.centres[cluster] + mixture.spread[cluster, None] * rng.standard_normal(
            (n, mixture.centres.shape[1]), dtype=np.float32
        )
        x = latent @ mixture.mapping + mixture.noise * rng.standard_normal(
            (n, dim), dtype=np.float32
        )
        out[start : start + n] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def timed_batches(
    search: Callable[[np.ndarray], np.ndarray], queries: np.ndarray, batch: int
) -> dict[str, Any]:
    """Runs every batch once (after one warm-up batch); QPS, batch latencies and the hits."""
    search(queries[:batch])
    found, seconds = [], []
    for start in range(0, len(queries), batch):
        t0 = time.perf_counter()
        found.append(search(queries[start : start + batch]))
        seconds.append(time.perf_counter() - t0)
    total = sum(seconds)
    return {
        "qps": len(queries) / total,
        "search_s": total,
        "batch_ms_p50": 1000 * float(np.percentile(seconds, 50)),
        "batch_ms_p95": 1000 * float(np.percentile(seconds, 95)),
        "positions": np.concatenate(found),
    }


def torch_brute_force(vectors: np.ndarray, chunk: int) -> Callable[[np.ndarray], np.ndarray]:
    """Top-K by ``torch.topk`` over ``q @ X.T``, X taken ``chunk`` rows at a time."""
    collection = torch.from_numpy(vectors)  # shares memory

    @torch.inference_mode()
    def search(queries: np.ndarray) -> np.ndarray:
        q = torch.from_numpy(queries)
        best_scores = torch.full((len(q), K), -float("inf"))
        best_ids = torch.zeros((len(q), K), dtype=torch.int64)
        for start in range(0, len(collection), chunk):
            scores = q @ collection[start : start + chunk].T  # (B, chunk)
            top = scores.topk(min(K, scores.shape[1]), dim=1)
            merged = torch.cat([best_scores, top.values], 1).topk(K, dim=1)
            best_ids = torch.cat([best_ids, top.indices + start], 1).gather(1, merged.indices)
            best_scores = merged.values
        return best_ids.numpy()

    return search


def index_bytes(index: VectorIndex) -> dict[str, int]:
    """Bytes held by the exact copy and by the approximate structure (from their sizes)."""
    out = {"exact_bytes": len(index) * index.dim * 4}
    if index.kind != "exact":
        out["ann_bytes"] = nbytes(index.ann_index, index.kind)
    out["index_bytes"] = sum(out.values())
    return out


def rss_bytes() -> int:
    with open("/proc/self/status", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def release_memory() -> None:
    """Collects garbage and hands freed heap back to the OS, so RSS deltas mean something."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def run_size(
    size: int, mixture: Mixture, queries: np.ndarray, args: argparse.Namespace
) -> dict[str, Any]:
    """Every method on one collection size; exact search first (the recall ground truth)."""
    log(f"[{size}] generating {size} x {args.dim} vectors")
    t0 = time.perf_counter()
    vectors = sample(mixture, size, seed=args.seed + 1)
    out: dict[str, Any] = {"size": size, "data_s": time.perf_counter() - t0, "methods": {}}
    methods, truth = out["methods"], None
    for method in ["exact", *[m for m in METHODS if m in args.methods and m != "exact"]]:
        release_memory()
        if method == "brute":
            log(f"[{size}] brute_force_torch: search")
            row = timed_batches(torch_brute_force(vectors, args.chunk), queries, args.query_batch)
            methods["brute_force_torch"] = row
        else:
            row = build_and_search(method, vectors, queries, args, size)
            methods["faiss_exact" if method == "exact" else method] = row
        if truth is None:
            truth = row["positions"]
            if args.faiss_blas:
                methods["faiss_exact_blas"] = row.pop("blas")
        for done in methods.values():
            if "positions" in done:
                done["recall_at_10"] = recall_at_k(done.pop("positions"), truth, K)
        name = {"brute": "brute_force_torch", "exact": "faiss_exact"}.get(method, method)
        log(
            f"[{size}] {name}: {row['qps']:.0f} queries/s, recall@10 {row['recall_at_10']:.4f}"
            + (f", build {row['build_s']:.1f} s" if "build_s" in row else "")
        )
    brute = methods.get("brute_force_torch")
    if brute is not None:
        for row in methods.values():
            row["speedup_vs_brute_qps"] = row["qps"] / brute["qps"]
    out["goal"] = goal(methods)
    del vectors
    release_memory()
    return out


def build_and_search(
    method: str, vectors: np.ndarray, queries: np.ndarray, args: argparse.Namespace, size: int
) -> dict[str, Any]:
    """Builds a VectorIndex (exact, ivf or hnsw), then times the batched queries."""
    log(f"[{size}] {method}: build")
    rss0, t0 = rss_bytes(), time.perf_counter()
    index = VectorIndex.build(
        vectors,
        approximate=None if method == "exact" else method,
        target_recall=args.target_recall,
        num_threads=args.threads,
        seed=args.seed,
    )
    row: dict[str, Any] = {
        "build_s": time.perf_counter() - t0,
        "rss_delta_bytes": rss_bytes() - rss0,
    }
    row.update(index_bytes(index))
    if method != "exact":
        params = index.parameters
        row["search_parameter"] = SEARCH_PARAMETER[method]
        row["parameters"] = {key: params[key] for key in params if key != "recall_curve"}
        row["tuning_curve"] = params["recall_curve"]
    log(f"[{size}] {method}: search")
    row.update(timed_batches(lambda q: index.search(q, K).positions, queries, args.query_batch))
    if method == "exact" and args.faiss_blas:
        row["blas"] = with_blas(lambda q: index.search(q, K).positions, queries, args.query_batch)
    return row


def with_blas(
    search: Callable[[np.ndarray], np.ndarray], queries: np.ndarray, batch: int
) -> dict[str, Any]:
    """Times ``search`` with FAISS forced onto its BLAS kernel for exact search.

    FAISS uses BLAS only when (queries in the call) x D >= ``distance_compute_blas_threshold``
    (128000 in FAISS 1.15: 334 queries of 384 dims), so service-sized batches take a slower
    per-query kernel by default.
    """
    import faiss

    before = faiss.cvar.distance_compute_blas_threshold
    faiss.cvar.distance_compute_blas_threshold = 0
    try:
        row = timed_batches(search, queries, batch)
    finally:
        faiss.cvar.distance_compute_blas_threshold = before
    row["note"] = "faiss_exact with distance_compute_blas_threshold=0 (BLAS for every batch)"
    return row


def goal(methods: dict[str, Any]) -> dict[str, Any]:
    """Which approximate methods reach >= 20x brute-force QPS at recall@10 >= 0.95."""
    met = [
        name
        for name in ("ivf", "hnsw")
        if name in methods
        and methods[name]["recall_at_10"] >= GOAL_RECALL
        and methods[name].get("speedup_vs_brute_qps", 0.0) >= GOAL_SPEEDUP
    ]
    return {"speedup": GOAL_SPEEDUP, "recall_at_10": GOAL_RECALL, "met_by": met, "met": bool(met)}


def machine(args: argparse.Namespace) -> dict[str, Any]:
    import faiss

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpus_available": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else None,
        "threads": args.threads,
        "torch_threads": torch.get_num_threads(),
        "faiss_threads": faiss.omp_get_max_threads(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "faiss": faiss.__version__,
        "loadavg_before": os.getloadavg(),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", default="100000,1000000", help="comma-separated collection sizes"
    )
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--latent-dim", type=int, default=48)
    parser.add_argument("--clusters", type=int, default=2000)
    parser.add_argument("--spread", default="0.5,1.0", help="lo,hi cluster std per latent dim")
    parser.add_argument("--noise", type=float, default=0.3, help="isotropic noise std per dim")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--query-batch", type=int, default=64)
    parser.add_argument(
        "--chunk", type=int, default=65536, help="brute-force collection rows per step"
    )
    parser.add_argument("--threads", type=int, default=2, help="torch and FAISS threads")
    parser.add_argument(
        "--methods", default=",".join(METHODS), help="subset of brute,exact,ivf,hnsw"
    )
    parser.add_argument(
        "--target-recall",
        type=float,
        default=0.96,
        help="recall@10 the indexes tune for; 0.01 above the goal so that the 1000-query "
        "estimate at build still clears 0.95 on the benchmark's own queries",
    )
    parser.add_argument(
        "--faiss-blas",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time exact FAISS forced onto BLAS (faiss_exact_blas)",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parse_with_quick(parser, QUICK, argv)
    args.spread = tuple(float(v) for v in args.spread.split(","))
    args.sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = sorted(set(args.methods) - set(METHODS))
    if unknown:
        parser.error(f"unknown methods {unknown}; choose from {', '.join(METHODS)}")
    return args


def main(argv: list[str] | None = None) -> None:
    import faiss

    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    info = machine(args)
    mixture = make_mixture(
        args.dim, args.latent_dim, args.clusters, args.spread, args.noise, args.seed
    )
    queries = sample(mixture, args.queries, seed=args.seed + 2)
    started = time.perf_counter()
    results = [run_size(size, mixture, queries, args) for size in args.sizes]
    info["loadavg_after"] = os.getloadavg()
    config = {k: v for k, v in vars(args).items()}
    report = {
        "benchmark": "index_scale",
        "machine": info,
        "config": config,
        "results": results,
        "total_s": time.perf_counter() - started,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
