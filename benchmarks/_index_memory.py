"""Memory of ``index_scale.py``'s methods: process figures from /proc, the estimated peak of
each method, and the budget that decides which in-memory methods run at a size."""

from __future__ import annotations

import ctypes
import gc

from mmfuse.retrieval.ann import (
    HNSW_M, PQ_CENTROIDS, TRAIN_POINTS_PER_LIST, default_nlist, default_pq_m,
)  # fmt: skip

MEMORY_SHARE = 0.8  # of the memory available at start: the default --memory-gib


def rss_bytes(field: str = "VmRSS") -> int:
    """A memory figure of this process from /proc (VmRSS: all resident pages; RssAnon: those
    not backed by a file, i.e. not the pages of a memory-mapped collection)."""
    with open("/proc/self/status", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    return 0


def memory_needed(method: str, size: int, dim: int) -> int:
    """Estimated peak bytes of a method at ``size``, the collection included where it is in
    memory (ivfpq: the training sample, PQ codes, ids and the metadata's row ids)."""
    collection = size * dim * 4
    if method == "ivfpq":
        train = min(size, TRAIN_POINTS_PER_LIST * max(default_nlist(size), PQ_CENTROIDS))
        return train * dim * 4 + size * (default_pq_m(dim) + 8 + 16)
    extra = {"brute": 0, "exact": 0, "ivf": size * 8, "hnsw": size * (2 * HNSW_M * 4 + 16)}
    copies = {"brute": 1, "exact": 2, "ivf": 3, "hnsw": 3}
    return copies[method] * collection + extra[method]


def memory_budget(gib: float | None) -> int:
    """``--memory-gib`` in bytes; None: 80 % of MemAvailable now."""
    if gib is not None:
        return int(gib * 2**30)
    with open("/proc/meminfo", encoding="utf-8") as handle:
        available = next(int(line.split()[1]) * 1024 for line in handle
                         if line.startswith("MemAvailable:"))  # fmt: skip
    return int(MEMORY_SHARE * available)


def release_memory() -> None:
    """Collects garbage and hands freed heap back to the OS, so RSS deltas mean something."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def skip_reason(method: str, size: int, dim: int, budget: int) -> str:
    """Why ``method`` does not run at ``size``."""
    need = memory_needed(method, size, dim) / 2**30
    return (f"needs about {need:.3g} GiB in memory, more than the "
            f"{budget / 2**30:.3g} GiB budget (--memory-gib)")  # fmt: skip
