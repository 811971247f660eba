"""The benchmark collection of ``index_scale.py``: a Gaussian mixture that looks like real
embeddings, sampled in memory (queries) or a chunk at a time into a .npy file on disk (the
collection, which need not fit in memory)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np


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


def sample(mixture: Mixture, count: int, seed: int) -> np.ndarray:
    """(count, D) float32 unit vectors in memory."""
    return fill(mixture, np.empty((count, mixture.mapping.shape[1]), np.float32), seed)


def fill(mixture: Mixture, out: np.ndarray, seed: int, chunk: int = 65536) -> np.ndarray:
    """Fills ``out`` (N, D), e.g. a memory map, with unit vectors a chunk at a time, so
    float64 copies stay small and the collection need not fit in memory."""
    rng = np.random.default_rng(seed)
    count, dim = out.shape
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


def write_collection(path: Path, mixture: Mixture, size: int, seed: int) -> None:
    """The collection as a .npy file, generated a chunk at a time into a memory map."""
    from numpy.lib.format import open_memmap

    dim = mixture.mapping.shape[1]
    needed = size * dim * 4
    free = shutil.disk_usage(path.parent).free
    if needed > free:
        raise SystemExit(f"{size} x {dim} float32 vectors need {needed / 2**30:.1f} GiB "
                         f"of disk; {path.parent} has {free / 2**30:.1f} GiB: pass --workdir")
    out = open_memmap(path, mode="w+", dtype=np.float32, shape=(size, dim))
    fill(mixture, out, seed)
    out.flush()
    del out
