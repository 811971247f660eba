#!/usr/bin/env python
"""Vector search at scale: torch brute force, FAISS exact and approximate indexes, one run.

Goal: on 1M vectors of 384 dims, approximate search answers queries at least 20x faster
(queries per second) than brute force while keeping recall@10 >= 0.95 against exact search;
and up to 10M vectors on a 24 GiB, 2-core machine with IVF-PQ, whose vectors stay on disk.

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
  that 1000-query estimate). Build time includes training, insertion and that tuning;
- ``ivfpq``: ``VectorIndex(approximate="ivfpq")`` built from the memory-mapped collection
  (never loaded): nlist ~ 4 * sqrt(N), PQ with D/8 one-byte codes, trained on a sample,
  rows added in chunks, nprobe tuned as above with every search re-ranking 8 * k PQ
  candidates exactly from the memory map; where nprobe stalls below the target, the re-rank
  factor is raised to 16, 32, 64 and nprobe tuned again (``parameters.rerank_factor`` and
  ``rerank_curve`` in the output). Its memory is the codes, ids, centroids and
  codebooks (``ann_bytes``); ``disk_bytes`` is the collection it re-ranks from;
- ``exact_memmap``: exact search over the memory-mapped collection in chunks, all queries
  in one pass (``VectorIndex``'s own scan for ivfpq): the ground truth of recall where
  ``faiss_exact`` does not fit in memory, and run with ``ivfpq`` always.

The collection is generated in chunks straight into a .npy file in a temporary folder under
``--workdir`` (deleted after each size; 10M x 384 float32 is 15.4 GB of disk), so the
generator never holds it. Methods that need it in memory are skipped, with the reason in
their row, where their estimated peak exceeds ``--memory-gib`` (default: 80 % of the memory
available at start): brute force needs the collection (1x), ``faiss_exact`` 2x, ``ivf`` and
``hnsw`` 3x plus their ids or links. Those that run share one in-memory copy, loaded from
the file and released before ``ivfpq`` runs.

Each method reports build seconds, memory (index bytes from the structure sizes, and the
process RSS delta of the build: ``rss_delta_bytes`` counts the pages of the memory-mapped file
the build touched, which the OS can drop at any time; ``rss_anon_delta_bytes`` is the memory
the build really took), queries per second with queries arriving in batches of
``--query-batch`` (a service's micro-batches; p50/p95 batch latency too), recall@10 of the
benchmark queries against ``faiss_exact`` (``exact_memmap`` where it does not fit; each row
names its ``recall_truth``) and the speedup over brute-force QPS. ``goal``
says, per size, which approximate methods reach 20x at recall@10 >= 0.95.

Data look like real embeddings, not uniform noise: a Gaussian mixture (``--clusters``
clusters of log-normal weights and per-cluster spread drawn from ``--spread``) in a
``--latent-dim`` subspace, mapped linearly into ``--dim`` dims, plus small isotropic noise
(``--noise``), then L2-normalised. Queries are fresh draws from the same distribution, not in
the collection.

Usage::

    .venv/bin/python benchmarks/index_scale.py [--sizes 100000,1000000] [--threads 2] \\
        [--queries 1000] [--query-batch 64] [--methods brute,exact,ivf,hnsw,ivfpq] \\
        [--target-recall 0.96] [--workdir /data/tmp] [--memory-gib 18]
    .venv/bin/python benchmarks/index_scale.py --sizes 10000000 --methods ivfpq

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

10M x 384 with ``--methods ivfpq`` (24 GiB, 2 cores): 15.4 GB of disk under ``--workdir``;
``faiss_exact``, ``ivf`` and ``hnsw`` are skipped (2-3x the collection), brute force runs
if the 14.3 GiB collection fits the budget (``--methods ivfpq`` leaves it out). The ivfpq
build holds about 2.5 GB: 0.58 GB of codes, ids and centroids (nlist 12649, 48-byte codes)
and a transient 1.2 GB training sample (809,536 rows). Measured at 100k / 200k with one
thread (the build phases timed apart; a shared machine, so +-30 %): coarse k-means 10 / 22-30
s (grows as N: 64 training rows per list x nlist ~ 4 sqrt(N)), PQ training 12 s at any size
(65,536 rows), adding 3.3 / 7.4 s (coarse assignment grows as N^1.5), one exact pass over
the collection 2.8 / 4.5 s, tuning 1 s, ivfpq search 5,700 / 4,900 queries/s at recall@10
0.964 / 0.973. Extrapolated to 10M with ``--threads 2``: generating and writing the file
3-5 min, coarse k-means 8-12 min, adding 10-13 min, the two exact passes (the build's
recall ground truth and ``exact_memmap``) 2-4 min each, tuning and searching about 1 min:
about 30-40 minutes in all, plus 3-5 minutes for brute force when it runs; twice that with
``--threads 1``. Searches re-rank from the memory-mapped file: its QPS assumes the file is
mostly in the page cache (the build has just read it), as on a warm server.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmfuse._progress import log
from mmfuse.retrieval.ann import SEARCH_PARAMETER, nbytes, recall_at_k
from mmfuse.retrieval.disk_vectors import ChunkedFlatIP
from mmfuse.retrieval.index import VectorIndex

from _index_data import Mixture, make_mixture, sample, write_collection
from _index_memory import memory_budget, memory_needed, release_memory, rss_bytes, skip_reason
from _quick import parse_with_quick

K = 10
GOAL_SPEEDUP, GOAL_RECALL = 20.0, 0.95
METHODS = ("brute", "exact", "ivf", "hnsw", "ivfpq")
IN_MEMORY = ("exact", "brute", "ivf", "hnsw")  # exact first: the ground truth of recall
NAMES = {"brute": "brute_force_torch", "exact": "faiss_exact"}
QUICK = {"sizes": "2000", "dim": 64, "latent_dim": 8, "clusters": 20, "queries": 64,
         "query_batch": 32, "chunk": 512}  # fmt: skip


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
    """Bytes held by the exact copy and by the approximate structure (from their sizes);
    ivfpq holds no exact copy: its vectors are on disk (``disk_bytes``)."""
    vectors = len(index) * index.dim * 4
    out = {"disk_bytes" if index.kind == "ivfpq" else "exact_bytes": vectors}
    if index.kind != "exact":
        out["ann_bytes"] = nbytes(index.ann_index, index.kind)
    out["index_bytes"] = out.get("exact_bytes", 0) + out.get("ann_bytes", 0)
    return out


def run_size(
    size: int, mixture: Mixture, queries: np.ndarray, args: argparse.Namespace, workdir: Path
) -> dict[str, Any]:
    """Every method on one collection size, written to disk first; recall is measured at the
    end against ``faiss_exact``, or ``exact_memmap`` where that did not fit."""
    path = workdir / f"vectors_{size}.npy"
    log(f"[{size}] generating {size} x {args.dim} vectors into {path}")
    t0 = time.perf_counter()
    write_collection(path, mixture, size, args.seed + 1)
    mapped = np.load(path, mmap_mode="r")
    out: dict[str, Any] = {"size": size, "data_s": time.perf_counter() - t0, "methods": {}}
    out["memory_budget_bytes"] = args.memory_budget
    methods = out["methods"]
    wanted = ["exact", *[m for m in IN_MEMORY if m in args.methods and m != "exact"]]
    fits = [m for m in wanted if memory_needed(m, size, args.dim) <= args.memory_budget]
    for method in wanted:
        if method not in fits:
            reason = skip_reason(method, size, args.dim, args.memory_budget)
            methods[NAMES.get(method, method)] = {"skipped": reason}
    if fits:
        vectors = np.array(mapped)  # one in-memory copy for every method that fits
        for method in fits:
            run_in_memory(method, vectors, queries, args, size, methods)
        del vectors
    if "ivfpq" in args.methods or "exact" not in fits:
        release_memory()
        methods["exact_memmap"] = exact_memmap(mapped, queries, size)
    if "ivfpq" in args.methods:
        release_memory()
        methods["ivfpq"] = build_and_search("ivfpq", mapped, queries, args, size)
    del mapped
    path.unlink()
    score(methods, size)
    out["goal"] = goal(methods)
    release_memory()
    return out


def run_in_memory(
    method: str, vectors: np.ndarray, queries: np.ndarray, args: argparse.Namespace, size: int,
    methods: dict[str, Any],
) -> None:  # fmt: skip
    """One method over the in-memory collection; its row goes into ``methods``."""
    release_memory()
    if method == "brute":
        log(f"[{size}] brute_force_torch: search")
        row = timed_batches(torch_brute_force(vectors, args.chunk), queries, args.query_batch)
    else:
        row = build_and_search(method, vectors, queries, args, size)
    methods[NAMES.get(method, method)] = row
    if method == "exact" and args.faiss_blas:
        methods["faiss_exact_blas"] = row.pop("blas")


def exact_memmap(mapped: np.ndarray, queries: np.ndarray, size: int) -> dict[str, Any]:
    """Exact search over the memory-mapped collection, every query in one chunked pass."""
    log(f"[{size}] exact_memmap: one pass over the file")
    t0 = time.perf_counter()
    _, positions = ChunkedFlatIP(mapped).search(queries, K)
    seconds = time.perf_counter() - t0
    return {
        "qps": len(queries) / seconds,
        "search_s": seconds,
        "query_batch": len(queries),
        "positions": positions,
        "note": "exact search over the memory-mapped collection in chunks, every query in one "
        "pass; the ground truth where faiss_exact does not fit in memory",
    }


def score(methods: dict[str, Any], size: int) -> None:
    """Recall of every row against the ground truth, speedups over brute force, and a log."""
    truth_row = "faiss_exact" if "positions" in methods.get("faiss_exact", {}) else "exact_memmap"
    truth = methods[truth_row]["positions"]
    brute = methods.get("brute_force_torch", {}).get("qps")
    for name, row in methods.items():
        if "skipped" in row:
            log(f"[{size}] {name}: skipped, {row['skipped']}")
            continue
        if "positions" in row:
            row["recall_at_10"] = recall_at_k(row.pop("positions"), truth, K)
        row["recall_truth"] = truth_row
        if brute is not None:
            row["speedup_vs_brute_qps"] = row["qps"] / brute
        build = f", build {row['build_s']:.1f} s" if "build_s" in row else ""
        recall = row["recall_at_10"]
        log(f"[{size}] {name}: {row['qps']:.0f} queries/s, recall@10 {recall:.4f}{build}")


def build_and_search(
    method: str, vectors: np.ndarray, queries: np.ndarray, args: argparse.Namespace, size: int
) -> dict[str, Any]:
    """Builds a VectorIndex (exact, ivf, hnsw or ivfpq), then times the batched queries."""
    log(f"[{size}] {method}: build")
    anon0, rss0, t0 = rss_bytes("RssAnon"), rss_bytes(), time.perf_counter()
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
        "rss_anon_delta_bytes": rss_bytes("RssAnon") - anon0,
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
        for name in ("ivf", "hnsw", "ivfpq")
        if "recall_at_10" in methods.get(name, {})
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
        "--methods", default=",".join(METHODS), help=f"subset of {','.join(METHODS)}"
    )
    parser.add_argument(
        "--workdir",
        default=None,
        help="where the collection file goes, in a temporary folder deleted after "
        "(default: the system's temporary directory); needs size x dim x 4 bytes free",
    )
    parser.add_argument(
        "--memory-gib",
        type=float,
        default=None,
        help="memory the in-memory methods may use; those whose estimated peak is larger are "
        "skipped (default: 80%% of the memory available at start)",
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
    args.memory_budget = memory_budget(args.memory_gib)
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
    workdir = Path(tempfile.mkdtemp(prefix="index_scale.", dir=args.workdir))
    try:
        results = [run_size(size, mixture, queries, args, workdir) for size in args.sizes]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
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
