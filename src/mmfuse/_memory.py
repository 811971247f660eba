"""Peak memory of a block of work: sampled resident set size on CPU, the allocator on CUDA."""

from __future__ import annotations

import os
import resource
import threading
import time
from types import TracebackType


def current_rss_bytes() -> int:
    """Resident set size of this process now (Linux /proc; falls back to the peak so far)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class PeakMemory:
    """Context manager measuring the peak extra memory used inside it, in MiB.

    On CPU a thread samples the resident set size every ``interval`` seconds and reports the
    peak minus the value at entry (memory that the allocator reuses from earlier work is not
    counted). With ``cuda=True`` it reports ``torch.cuda.max_memory_allocated`` instead.
    """

    def __init__(self, interval: float = 0.005, cuda: bool = False) -> None:
        self.interval = interval
        self.cuda = cuda
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._baseline = 0
        self._peak = 0

    def __enter__(self) -> PeakMemory:
        if self.cuda:
            import torch

            torch.cuda.reset_peak_memory_stats()
            return self
        self._baseline = self._peak = current_rss_bytes()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._peak = max(self._peak, current_rss_bytes())
            time.sleep(self.interval)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.cuda:
            import torch

            self.peak_mb = torch.cuda.max_memory_allocated() / 2**20
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._peak = max(self._peak, current_rss_bytes())
        self.peak_mb = (self._peak - self._baseline) / 2**20
