"""Approximate inner-product FAISS indexes (HNSW, IVF, IVF-PQ) tuned to a measured recall target.

An approximate index trades recall for speed through one search parameter: ``nprobe`` (how
many IVF lists are scanned) or ``efSearch`` (the HNSW candidate-list size). ``tune`` raises
that parameter step by step until recall@10 against exact search reaches the target, so the
cheapest setting that meets it is kept, and records the recall of every step tried. The
queries must not be in the index (see ``mmfuse.retrieval.index`` for how they are held out).

IVF-PQ (``"ivfpq"``) is for collections larger than memory: it holds only a code of
``pq_m`` bytes and an 8-byte id per vector (56 bytes for 384 dims, against 1544 for IVF-Flat).
Product quantization alone caps recall (its scores are approximations, so near neighbours
swap places), so every search asks it for ``k * rerank_factor`` candidates and re-ranks them
by exact inner product with the full vectors, which the caller reads from wherever they live
(a memory-mapped file); ``tune`` measures recall with that re-ranking on.

FAISS is imported inside the functions that need it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mmfuse.errors import MmfuseError

APPROXIMATE_KINDS = ("hnsw", "ivf", "ivfpq")
SEARCH_PARAMETER = {"hnsw": "efSearch", "ivf": "nprobe", "ivfpq": "nprobe"}
RECALL_K = 10
DEFAULT_TARGET_RECALL = 0.95
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
EF_SEARCH_STEPS = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048)
MIN_POINTS_PER_LIST = 39  # FAISS warns when k-means gets fewer training points per centroid
TRAIN_POINTS_PER_LIST = 64
PQ_NBITS = 8  # 256 centroids per sub-quantizer: one byte per code, FAISS's fast ADC path
PQ_CENTROIDS = 2**PQ_NBITS
DIMS_PER_PQ_BYTE = 8
MIN_PQ_ROWS = 4 * PQ_CENTROIDS  # fewer: VectorIndex builds exact (see pq_fallback_reason)
RERANK_ROWS = 65536  # candidate rows gathered at a time by rerank (96 MiB at 384 dims)
RERANK_FACTOR = 8  # R = 4 loses ~0.01 of recall@10, R = 16 gains < 0.002 (see default_pq_m)
STALL_STEPS, STALL_GAIN = 3, 0.002
"""IVF-PQ: nprobe stops rising once three steps in a row each gained less than 0.002 of recall."""
RERANK_STEPS = (16, 32, 64)
"""Re-rank factors ``tune`` tries, in order, when no nprobe reaches the target at the build's
(at 10M rows the true top 10 fall outside the 80 best PQ candidates: recall stalls near 0.90)."""

Fetch = Callable[[np.ndarray], np.ndarray]
"""Full vectors by position: (U,) sorted unique int64 positions -> (U, D) float32 rows."""


@dataclass(frozen=True)
class Tuning:
    """The outcome of ``tune``.

    Attributes:
        value: The chosen search parameter (nprobe or efSearch).
        recall: Recall@10 measured with ``value``.
        target_met: Whether ``recall`` reached the target (else ``value`` is the best tried).
        curve: Recall measured at every value tried, in order (at the re-rank factor kept).
        rerank: IVF-PQ: re-rank factor -> the best recall measured with it (empty otherwise).
    """

    value: int
    recall: float
    target_met: bool
    curve: dict[int, float]
    rerank: dict[int, float] = field(default_factory=dict)


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
    pq_m: int | None = None,
    rerank_factor: int = RERANK_FACTOR,
) -> tuple[Any, dict[str, int]]:
    """An empty approximate inner-product index, trained on ``vectors`` where needed.

    Rows are added with ``add_with_ids`` (their positions), so they may arrive in any order.

    Args:
        kind: ``"hnsw"`` (IndexHNSWFlat in an IndexIDMap), ``"ivf"`` (IndexIVFFlat, k-means
            on a sample of at most 64 vectors per list) or ``"ivfpq"`` (IndexIVFPQ, trained
            on a sample of 64 vectors per list or per PQ centroid, whichever is more).
        vectors: (N, D) float32, C-contiguous, N >= 1 (a memory map is fine: only the
            training sample is read); only IVF and IVF-PQ read them.
        nlist: IVF list count; None picks ``default_nlist(N)``.
        hnsw_m: HNSW links per node.
        ef_construction: HNSW candidate-list size while inserting.
        seed: Seed of the k-means training sample and initialisation.
        pq_m: IVF-PQ sub-quantizers (code bytes per vector), a divisor of D; None picks
            ``default_pq_m(D)``.
        rerank_factor: IVF-PQ searches re-rank ``k * rerank_factor`` candidates exactly.

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
    if kind not in APPROXIMATE_KINDS:
        raise MmfuseError(
            f"unknown approximate index {kind!r}; choose one of: {', '.join(APPROXIMATE_KINDS)}"
        )
    nlist = default_nlist(count) if nlist is None else nlist
    if isinstance(nlist, bool) or not isinstance(nlist, int) or not 1 <= nlist <= count:
        raise MmfuseError(
            f"nlist must be an integer between 1 and {count} (the vectors); got {nlist!r}"
        )
    quantizer = faiss.IndexFlatIP(dim)
    if kind == "ivf":
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        num_train = min(count, TRAIN_POINTS_PER_LIST * nlist)
        built = {"nlist": nlist, "num_train": num_train}
    else:
        pq_m = _checked_pq(count, dim, pq_m, rerank_factor)
        index = faiss.IndexIVFPQ(quantizer, dim, nlist, pq_m, PQ_NBITS, faiss.METRIC_INNER_PRODUCT)
        index.pq.cp.seed = seed
        # FAISS warns under 39 training points per centroid; the recall measured after the
        # build shows what fewer (down to 4, see MIN_PQ_ROWS) cost, so warn only below that
        index.pq.cp.min_points_per_centroid = MIN_PQ_ROWS // PQ_CENTROIDS
        num_train = min(count, TRAIN_POINTS_PER_LIST * max(nlist, PQ_CENTROIDS))
        built = {"nlist": nlist, "num_train": num_train, "pq_m": pq_m, "pq_nbits": PQ_NBITS,
                 "rerank_factor": rerank_factor}  # fmt: skip
    index.cp.seed = seed
    rows = np.sort(np.random.default_rng(seed).choice(count, num_train, replace=False))
    index.train(np.ascontiguousarray(vectors[rows] if num_train < count else vectors))
    return index, built


def default_pq_m(dim: int) -> int:
    """PQ sub-quantizers: the largest divisor of ``dim`` up to dim / 8.

    Each code byte then stands for about 8 dimensions (48 bytes for 384 dims, 32x smaller
    than float32): precise enough for the true top 10 to be among the top ``10 *
    RERANK_FACTOR`` PQ candidates, which the exact re-ranking orders. Measured on 100k
    clustered 384-d vectors at nprobe 32 (where IVF itself caps recall@10 at 0.974), recall
    with R = 1 / 4 / 8 / 16 candidates per hit: 48 bytes 0.70 / 0.962 / 0.972 / 0.973;
    24 bytes 0.58 / 0.916 / 0.958 / 0.970 (twice the re-ranking reads for the same recall);
    96 bytes 0.83 / 0.974 / 0.974 (twice the memory for a gain of 0.002 at R = 8).
    """
    most = max(1, dim // DIMS_PER_PQ_BYTE)
    return max(m for m in range(1, most + 1) if dim % m == 0)


def _checked_pq(count: int, dim: int, pq_m: int | None, rerank_factor: int) -> int:
    """``pq_m`` (or its default) after checking it and the rows there are to train on."""
    if count < PQ_CENTROIDS:
        raise MmfuseError(
            f"an ivfpq index needs at least {PQ_CENTROIDS} vectors to train its product "
            f"quantizer ({PQ_CENTROIDS} centroids per sub-quantizer at {PQ_NBITS} bits); got "
            f"{count}: use exact search or ivf for a collection this small"
        )
    pq_m = default_pq_m(dim) if pq_m is None else pq_m
    if isinstance(pq_m, bool) or not isinstance(pq_m, int) or pq_m < 1 or dim % pq_m:
        raise MmfuseError(f"pq_m must be a positive divisor of the dimension {dim}; got {pq_m!r}")
    if isinstance(rerank_factor, bool) or not isinstance(rerank_factor, int) or rerank_factor < 1:
        raise MmfuseError(f"rerank_factor must be a positive integer; got {rerank_factor!r}")
    return pq_m


def pq_fallback_reason(count: int) -> str:
    """Why ``VectorIndex.build`` makes ``count`` rows (fewer than ``MIN_PQ_ROWS``) exact."""
    return (
        f"{count} rows are too few to train an ivfpq index well (its product quantizer has "
        f"{PQ_CENTROIDS} centroids per sub-quantizer; it needs at least {MIN_PQ_ROWS} rows, "
        f"{MIN_PQ_ROWS // PQ_CENTROIDS} per centroid), so the index uses exact search (recall "
        f"1.0; the vectors of a collection this small fit in memory); it stays exact when rows "
        f"are appended: build it again as ivfpq once the collection has at least {MIN_PQ_ROWS} rows"
    )


def nbytes(index: Any, kind: str) -> int:
    """Bytes held in memory by an approximate index: vectors or PQ codes, ids, centroids,
    PQ codebooks or graph links (not the full vectors IVF-PQ re-ranks with: they are on disk)."""
    import faiss

    count, dim = index.ntotal, index.d
    if kind == "ivf":
        return count * (dim * 4 + 8) + index.nlist * dim * 4
    if kind == "ivfpq":
        return count * (index.code_size + 8) + index.nlist * dim * 4 + index.pq.centroids.size() * 4
    inner: Any = faiss.downcast_index(index.index)
    graph = inner.hnsw
    links = graph.neighbors.size() * 4 + graph.levels.size() * 4 + graph.offsets.size() * 8
    return count * (dim * 4 + 8) + links


def set_search_parameter(index: Any, kind: str, value: int) -> None:
    """Sets nprobe (IVF, IVF-PQ) or efSearch (HNSW)."""
    import faiss

    if kind in ("ivf", "ivfpq"):
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


def search(
    index: Any,
    kind: str,
    parameters: dict[str, Any],
    queries: np.ndarray,
    k: int,
    fetch: Fetch | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(scores, positions), each (Q, k), of an approximate search, best first.

    IVF-PQ asks its index for ``k * rerank_factor`` candidates and re-ranks them exactly with
    the full vectors from ``fetch`` (see ``rerank``); the other kinds search as they are.
    """
    if kind != "ivfpq":
        return index.search(queries, k)
    if fetch is None:
        raise MmfuseError("an ivfpq search re-ranks with the full vectors: pass fetch")
    _, candidates = index.search(queries, k * int(parameters["rerank_factor"]))
    return rerank(fetch, queries, candidates, k)


def rerank(
    fetch: Fetch, queries: np.ndarray, candidates: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """The k best of each query's candidates by exact inner product.

    Queries go in batches of about ``RERANK_ROWS`` candidates, each batch reading its distinct
    candidate rows once, so memory stays bounded whatever the number of queries and k.

    Args:
        fetch: Full vectors by sorted unique position.
        queries: (Q, D) float32.
        candidates: (Q, C) positions, -1 for none; C >= k.
        k: Hits to keep.

    Returns:
        (scores, positions), each (Q, k), best first, ties in candidate order; -inf and -1
        where a query has fewer than k candidates.
    """
    scores = np.full(candidates.shape, -np.inf, dtype=np.float32)
    batch = max(1, RERANK_ROWS // max(candidates.shape[1], 1))
    for start in range(0, len(queries), batch):
        part = slice(start, start + batch)
        found = candidates[part]
        ids = np.unique(found[found >= 0])
        if len(ids):
            rows = fetch(ids)[np.searchsorted(ids, np.maximum(found, 0))]  # (b, C, D)
            scores[part] = np.matmul(rows, queries[part, :, None])[..., 0]  # (b, C)
    scores[candidates < 0] = -np.inf
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    best = np.take_along_axis(scores, order, 1)
    return best, np.where(np.isfinite(best), np.take_along_axis(candidates, order, 1), -1)


def tune(
    index: Any,
    kind: str,
    parameters: dict[str, Any],
    queries: np.ndarray,
    truth: np.ndarray,
    target: float = DEFAULT_TARGET_RECALL,
    k: int = RECALL_K,
    fetch: Fetch | None = None,
) -> Tuning:
    """Raises the search parameter until recall@k against ``truth`` reaches ``target``.

    Steps up (see ``search_steps``), then bisects between the last value that missed and the
    first that met the target, so the fastest setting that meets it is kept rather than an
    overshoot. Leaves ``index`` set to the chosen value, else to the one with the best recall.
    IVF-PQ: when no nprobe meets the target, the re-rank factor (``parameters["rerank_factor"]``,
    updated in place) is raised through ``RERANK_STEPS`` and nprobe tuned again, until one meets
    it; else the factor and nprobe with the best recall are kept.

    Args:
        index: An index from ``create_ann``.
        kind: Its kind.
        parameters: Its build parameters (``nlist`` for IVF; and ``rerank_factor`` for IVF-PQ).
        queries: (Q, D) float32 queries that are not in ``index`` (held out).
        truth: (Q, k) exact neighbour positions among the rows of ``index``, best first.
        target: Recall to reach, in (0, 1].
        k: The k of recall@k.
        fetch: IVF-PQ only: the full vectors, so recall is measured with re-ranking on.
    """
    result = _tune_parameter(index, kind, parameters, queries, truth, target, k, fetch)
    if kind != "ivfpq" or result.target_met:
        return result
    tried = {int(parameters["rerank_factor"]): result}
    for factor in (f for f in RERANK_STEPS if f > int(parameters["rerank_factor"])):
        parameters["rerank_factor"] = factor
        tried[factor] = _tune_parameter(index, kind, parameters, queries, truth, target, k, fetch)
        if tried[factor].target_met:
            break
    factor = next((f for f, t in tried.items() if t.target_met),
                  max(tried, key=lambda f: (tried[f].recall, -f)))
    parameters["rerank_factor"] = factor
    set_search_parameter(index, kind, tried[factor].value)
    return dataclasses.replace(tried[factor], rerank={f: t.recall for f, t in tried.items()})


def _tune_parameter(index: Any, kind: str, parameters: dict[str, Any], queries: np.ndarray, truth: np.ndarray,
                    target: float, k: int, fetch: Fetch | None) -> Tuning:
    """``tune`` at the index's re-rank factor: nprobe or efSearch alone."""
    curve: dict[int, float] = {}

    def measure(value: int) -> float:
        set_search_parameter(index, kind, value)
        _, found = search(index, kind, parameters, queries, k, fetch)
        curve[value] = recall_at_k(found, truth, k)
        return curve[value]

    below = 0  # the last value that missed the target
    for value in search_steps(kind, parameters):
        if kind == "ivfpq" and _stalled(curve):  # more lists cannot help: the re-rank depth caps it
            break
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


def _stalled(curve: dict[int, float]) -> bool:
    """Whether the last ``STALL_STEPS`` steps of ``curve`` (in the order tried) each gained less
    than ``STALL_GAIN`` of recall."""
    values = list(curve.values())[-(STALL_STEPS + 1):]
    return len(values) > STALL_STEPS and all(b - a < STALL_GAIN for a, b in zip(values, values[1:]))


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
