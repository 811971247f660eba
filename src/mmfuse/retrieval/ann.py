"""Approximate inner-product FAISS indexes (HNSW, IVF) tuned to a measured recall target.

An approximate index trades recall for speed through one search parameter: ``nprobe`` (how
many IVF lists are scanned) or ``efSearch`` (the HNSW candidate-list size). ``tune`` raises
that parameter step by step until recall@10 against exact search reaches the target, so the
cheapest setting that meets it is kept, and records the recall of every step tried. The
queries must not be in the index (see ``mmfuse.retrieval.index`` for how they are held out).

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
    """An empty approximate inner-product index, trained on ``vectors`` where needed.

    Rows are added with ``add_with_ids`` (their positions), so they may arrive in any order.

    Args:
        kind: ``"hnsw"`` (IndexHNSWFlat in an IndexIDMap) or ``"ivf"`` (IndexIVFFlat,
            k-means on a sample of at most 64 vectors per list).
        vectors: (N, D) float32, C-contiguous, N >= 1; only IVF reads them (training).
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
        graph = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
        graph.hnsw.efConstruction = ef_construction
        return faiss.IndexIDMap(graph), {"M": hnsw_m, "efConstruction": ef_construction}
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
    return index, {"nlist": nlist, "num_train": num_train}


def nbytes(index: Any, kind: str) -> int:
    """Bytes held by an approximate index: vectors, ids, centroids or graph links."""
    import faiss

    count, dim = index.ntotal, index.d
    if kind == "ivf":
        return count * (dim * 4 + 8) + index.nlist * dim * 4
    inner: Any = faiss.downcast_index(index.index)
    graph = inner.hnsw
    links = graph.neighbors.size() * 4 + graph.levels.size() * 4 + graph.offsets.size() * 8
    return count * (dim * 4 + 8) + links


def set_search_parameter(index: Any, kind: str, value: int) -> None:
    """Sets nprobe (IVF) or efSearch (HNSW)."""
    import faiss

    if kind == "ivf":
        index.nprobe = int(value)
    else:
        inner: Any = faiss.downcast_index(index.index)
        inner.hnsw.efSearch = int(value)


def search_steps(kind: str, parameters: dict[str, int]) -> list[int]:
    """The increasing values ``tune`` tries: efSearch steps, or nprobe 1, 2, 3, ... nlist (x1.5)."""
    if kind == "hnsw":
        return list(EF_SEARCH_STEPS)
    nlist, value = parameters["nlist"], 1.0
    steps: list[int] = []
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
    target: float = DEFAULT_TARGET_RECALL,
    k: int = RECALL_K,
) -> Tuning:
    """Raises the search parameter until recall@k against ``truth`` reaches ``target``.

    Steps up (see ``search_steps``), then bisects between the last value that missed and the
    first that met the target, so the fastest setting that meets it is kept rather than an
    overshoot. Leaves ``index`` set to the chosen value, else to the one with the best recall.

    Args:
        index: An index from ``create_ann``.
        kind: Its kind.
        parameters: Its build parameters (``nlist`` for IVF).
        queries: (Q, D) float32 queries that are not in ``index`` (held out).
        truth: (Q, k) exact neighbour positions among the rows of ``index``, best first.
        target: Recall to reach, in (0, 1].
        k: The k of recall@k.
    """
    curve: dict[int, float] = {}

    def measure(value: int) -> float:
        set_search_parameter(index, kind, value)
        _, found = index.search(queries, k)
        curve[value] = recall_at_k(found, truth, k)
        return curve[value]

    below = 0  # the last value that missed the target
    for value in search_steps(kind, parameters):
        if measure(value) >= target:
            while value - below > 1 and below > 0:  # the smallest value between that meets it
                middle = (below + value) // 2
                if measure(middle) >= target:
                    value = middle
                else:
                    below = middle
            set_search_parameter(index, kind, value)
            return Tuning(value, curve[value], True, dict(sorted(curve.items())))
        below = value
    best = max(curve, key=lambda v: (curve[v], -v))
    set_search_parameter(index, kind, best)
    return Tuning(best, curve[best], False, curve)


def recall_at_k(found: np.ndarray, truth: np.ndarray, k: int = RECALL_K) -> float:
    """Share of the true top-k neighbours that appear in the found top-k, over all queries.

    Args:
        found: (Q, >=k) positions returned by an approximate search (-1 for no result).
        truth: (Q, >=k) exact positions, best first (-1 where there are fewer than k rows).
        k: The k of recall@k.
    """
    found, truth = found[:, :k], truth[:, :k]
    valid = truth >= 0
    if not valid.any():
        return 1.0
    hit = (found[:, :, None] == truth[:, None, :]).any(1) & valid  # (Q, k)
    return float(hit.sum() / valid.sum())
