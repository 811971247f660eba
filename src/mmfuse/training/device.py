"""Device and thread selection."""

from __future__ import annotations

import os

import torch

from mmfuse.errors import MmfuseError

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str) -> torch.device:
    """"auto" -> cuda when available, else cpu; "cuda" without a GPU is an error."""
    if name not in DEVICES and not name.startswith("cuda:"):
        raise MmfuseError(f"unknown device {name!r}; choose one of: {', '.join(DEVICES)}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise MmfuseError("--device cuda was requested but no CUDA GPU is available; use --device cpu")
    return torch.device(name)


MAX_THREADS_PER_CORE = 4
"""More threads than this per core only slow work down (and thousands fail to start)."""


def set_threads(num_threads: int | None) -> int:
    """Sets torch's intra-op threads (None: $MMFUSE_NUM_THREADS, else all cores)."""
    if num_threads is None:
        env = os.environ.get("MMFUSE_NUM_THREADS")
        if env and not env.strip().isdigit():
            raise MmfuseError(f"$MMFUSE_NUM_THREADS must be a whole number of threads, got {env!r}; fix or unset it")
        num_threads = int(env) if env else (os.cpu_count() or 1)
    if num_threads < 1:
        raise MmfuseError(f"the number of threads must be at least 1, got {num_threads}")
    most = MAX_THREADS_PER_CORE * (os.cpu_count() or 1)
    if num_threads > most:
        raise MmfuseError(f"the number of threads must be at most {most} ({MAX_THREADS_PER_CORE} per core "
                          f"of this machine's {os.cpu_count() or 1}), got {num_threads}")
    if torch.get_num_threads() != num_threads:
        torch.set_num_threads(num_threads)
    return num_threads
