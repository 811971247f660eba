"""Approximate inner-product FAISS indexes (HNSW, IVF) tuned to a measured recall target.

An approximate index trades recall for speed through one search parameter: ``nprobe`` (how
many IVF lists are scanned) or ``efSearch`` (the HNSW candidate-list size). ``tune`` raises
that parameter step by step until recall@10 against exact search reaches the target, so the
cheapest setting that meets it is kept, and records the recall of every step tried.

FAISS is imported inside the functions that need it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from mmfuse.errors import MmfuseError

APPROXIMATE_KINDS = ("hnsw", "ivf")
SEARCH_PARAMETER = {"hnsw": "efSearch", "ivf": "nprobe"}
RECALL_K = 10
DEFAULT_TARGET_RECALL = 0.95
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
EF_SEARCH_STEPS = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048)
MIN_POINTS_PER_LIST = 39  # FAISS warns when k-means gets fewer training points per centroid
TRAIN_POINTS_PER_LIST = 64


@dataclass(frozen=True)
class Tuning:
    """The outcome of ``tune``.

    Attributes:
        value: The chosen search parameter (nprobe or efSearch).
        recall: Recall@10 measured with ``value``.
        target_met: Whether ``recall`` reached the target (else ``value`` is the best tried).
        curve: Recall measured at every value tried, in order.
    """

    value: int
    recall: float
    target_met: bool
    curve: dict[int, float]


@contextmanager
def faiss_threads(num_threads: int | None) -> Iterator[None]:
    """Runs the block with FAISS (OpenMP) limited to ``num_threads``; None leaves it as is."""
    if num_threads is None:
        yield
        return
    import faiss

    if isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1:
        raise MmfuseError(f"num_threads must be a positive integer or None; got {num_threads!r}")
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(num_threads)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def default_nlist(count: int) -> int:
    """IVF list count: about 4 * sqrt(count), with at least 39 training points per list."""
    return max(1, min(round(4 * math.sqrt(count)), count // MIN_POINTS_PER_LIST))


def create_ann(
    kind: str,
    vectors: np.ndarray,
    nlist: int | None = None,
    hnsw_m: int = HNSW_M,
    ef_construction: int = HNSW_EF_CONSTRUCTION,
    seed: int = 0,
) -> tuple[Any, dict[str, int]]:
    """Builds an approximate inner-product index over ``vectors`` (trained where needed).

    Args:
        kind: ``"hnsw"`` (IndexHNSWFlat) or ``"ivf"`` (IndexIVFFlat, k-means on a sample).
        vectors: (N, D) float32, C-contiguous, N >= 1.
        nlist: IVF list count; None picks ``default_nlist(N)``.
        hnsw_m: HNSW links per node.
        ef_construction: HNSW candidate-list size while inserting.
        seed: Seed of the k-means training sample and initialisation.

    Returns:
        The FAISS index and its build parameters.
    """
    import faiss

    count, dim = vectors.shape
    if count == 0:
        raise MmfuseError(f"an approximate ({kind}) index needs at least one vector to build")
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = ef_construction
        index.add(vectors)
        return index, {"M": hnsw_m, "efConstruction": ef_construction}
    if kind != "ivf":
        raise MmfuseError(f"unknown approximate index {kind!r}; choose one of: hnsw, ivf")
    nlist = default_nlist(count) if nlist is None else nlist
    if isinstance(nlist, bool) or not isinstance(nlist, int) or not 1 <= nlist <= count:
        raise MmfuseError(
            f"nlist must be an integer between 1 and {count} (the vectors); got {nlist!r}"
        )
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = seed
    num_train = min(count, TRAIN_POINTS_PER_LIST * nlist)
    rows = np.sort(np.random.default_rng(seed).choice(count, num_train, replace=False))
    index.train(vectors[rows] if num_train < count else vectors)
    index.add(vectors)
    return index, {"nlist": nlist, "num_train": num_train}


def set_search_parameter(index: Any, kind: str, value: int) -> None:
    """Sets nprobe (IVF) or efSearch (HNSW)."""
    if kind == "ivf":
        index.nprobe = int(value)
    else:
        index.hnsw.efSearch = int(value)


def search_steps(kind: str, parameters: dict[str, int]) -> list[int]:
    """The increasing values ``tune`` tries: efSearch steps, or nprobe 1, 2, 3, ... nlist (x1.5)."""
    if kind == "hnsw":
        return list(EF_SEARCH_STEPS)
    nlist, steps, value = parameters["nlist"], [], 1.0
    while round(value) < nlist:
        if not steps or round(value) > steps[-1]:
            steps.append(round(value))
        value *= 1.5
    return [*steps, nlist]


def tune(
    index: Any,
    kind: str,
    parameters: dict[str, int],
    queries: np.ndarray,
    truth: np.ndarray,
    own: np.ndarray | None = None,
    target: float = DEFAULT_TARGET_RECALL,
    k: int = RECALL_K,
) -> Tuning:
    """Raises the search parameter until recall@k against ``truth`` reaches ``target``.

    Leaves ``index`` set to the chosen value: the first that meets the target, else the one
    with the best recall.

    Args:
        index: An index from ``create_ann``.
        kind: Its kind.
        parameters: Its build parameters (``nlist`` for IVF).
        queries: (Q, D) float32.
        truth: (Q, k') exact neighbour positions, best first (k' = k, or k + 1 with ``own``).
        own: (Q,) positions of the queries themselves when they are stored vectors: removed
            from both lists before comparing, so a query finding itself earns nothing.
        target: Recall to reach, in (0, 1].
        k: The k of recall@k.
    """
    curve: dict[int, float] = {}
    for value in search_steps(kind, parameters):
        set_search_parameter(index, kind, value)
        _, found = index.search(queries, truth.shape[1])
        curve[value] = recall_at_k(found, truth, k, own)
        if curve[value] >= target:
            return Tuning(value, curve[value], True, curve)
    best = max(curve, key=lambda v: (curve[v], -v))
    set_search_parameter(index, kind, best)
    return Tuning(best, curve[best], False, curve)


def recall_at_k(
    found: np.ndarray, truth: np.ndarray, k: int = RECALL_K, own: np.ndarray | None = None
) -> float:
    """Share of the true top-k neighbours that appear in the found top-k, over all queries.

    Args:
        found: (Q, >=k) positions returned by an approximate search (-1 for no result).
        truth: (Q, >=k) exact positions, best first.
        k: The k of recall@k.
        own: (Q,) positions to drop from both lists first (the queries themselves).
    """
    if own is not None:
        found, truth = _without(found, own, k), _without(truth, own, k)
    found, truth = found[:, :k], truth[:, :k]
    if truth.size == 0:
        return 1.0
    hit = (found[:, :, None] == truth[:, None, :]).any(1) & (truth >= 0)  # (Q, k)
    return float(hit.sum() / max(1, (truth >= 0).sum()))


def _without(ids: np.ndarray, own: np.ndarray, k: int) -> np.ndarray:
    """The first k entries of each row once the row's own position is removed."""
    keep = ids != own[:, None]
    order = np.argsort(~keep, axis=1, kind="stable")[:, :k]  # kept entries first, in order
    return np.where(np.take_along_axis(keep, order, 1), np.take_along_axis(ids, order, 1), -1)
