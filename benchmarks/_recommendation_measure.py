"""What the recommendation benchmark measures besides the metrics: peak memory over a block,
top-K latency through a method's serving path, and the time of mmfuse's validation passes."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Self

import numpy as np


def log(message: str) -> None:
    print(f"[recommendation] {message}", file=sys.stderr, flush=True)


class PeakRss:
    """The process's peak resident memory over a ``with`` block, sampled every 10 ms from
    /proc/self/statm (elsewhere: getrusage's lifetime maximum)."""

    def __enter__(self) -> Self:
        self.before = self.peak = _rss_mib()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, _rss_mib())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_mib())

    def report(self) -> dict[str, float]:
        return {
            "peak_rss_mib": round(self.peak, 1),
            "rss_increase_mib": round(self.peak - self.before, 1),
        }


def _rss_mib() -> float:
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def latency(recommend: Callable[[np.ndarray], object], users: np.ndarray) -> dict[str, float]:
    """ms of top-K for one user per call (p50, p95) and for all ``users`` in one call."""
    recommend(users[:1])  # warm-up: lazy imports, first allocations
    times = []
    for u in users:
        started = time.perf_counter()
        recommend(np.asarray([u]))
        times.append(1000 * (time.perf_counter() - started))
    started = time.perf_counter()
    recommend(users)
    batched = 1000 * (time.perf_counter() - started) / len(users)
    return {
        "users": len(users),
        "one_user_p50": round(float(np.percentile(times, 50)), 3),
        "one_user_p95": round(float(np.percentile(times, 95)), 3),
        "batched_per_user": round(batched, 3),
    }
