"""Retrieval metrics under the Flickr30k / COCO protocol: Recall@K, median rank and mAP.

A query's gallery is ranked by decreasing similarity. A gallery entry is *relevant* to a query
when both carry the same item id (e.g. the image path of a caption and of an image), so a
query may have several relevant entries and several queries may share one item (five captions
of one image).

Ties are broken deterministically and pessimistically: among entries with equal scores, every
non-relevant entry ranks ahead of every relevant one (relevant entries tied with each other keep
gallery order, which changes no metric). A model that gives every entry the same score therefore
ranks all relevant entries last and can never score perfectly (unless every gallery entry is
relevant to the query).

Metrics (all averaged over queries, each query counting once):

- ``R@K``: share of queries with at least one relevant entry among the first K.
- ``MedR``: median over queries of the 1-based rank of the first relevant entry.
- ``mAP``: mean average precision over the full ranking (not truncated at K): for one query,
  the mean over its relevant entries of (relevant entries up to that rank) / rank.

Every query must have at least one relevant gallery entry: a query without one has no rank
and would silently bias the averages, so it raises ``MmfuseError`` instead of being skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import NamedTuple

import numpy as np

from mmfuse.errors import MmfuseError

DEFAULT_KS = (1, 5, 10)
_BLOCK_ELEMENTS = 1 << 22  # score comparisons per step (~16 MB of float32): bounded memory

Block = Callable[[int, int], tuple[np.ndarray, np.ndarray]]


class Gallery(NamedTuple):
    """The distinct items of a list of rows, in order of first appearance.

    Attributes:
        items: Each distinct item id once.
        first_index: (len(items),) int64, the row index where each item first appears.
    """

    items: list[Hashable]
    first_index: np.ndarray


def dedupe_gallery(items: Sequence[Hashable]) -> Gallery:
    """Each item once, with the row that represents it (its first row).

    With one row per (caption, image) pair, ``dedupe_gallery(image_paths)`` gives the image
    gallery of the standard protocol: every caption is a query, every image counts once.

    Args:
        items: The item id of every row (e.g. an image path); any hashable values.

    Returns:
        ``Gallery(items, first_index)``; unpacks as a pair.
    """
    first: dict[Hashable, int] = {}
    for row, item in enumerate(items):
        try:
            first.setdefault(item, row)
        except TypeError as err:
            raise MmfuseError(f"item ids must be hashable; row {row} holds {item!r}") from err
    return Gallery(list(first), np.fromiter(first.values(), dtype=np.int64, count=len(first)))


def retrieval_metrics(
    similarity: np.ndarray,
    query_items: Sequence[Hashable],
    gallery_items: Sequence[Hashable],
    ks: Iterable[int] = DEFAULT_KS,
) -> dict[str, float]:
    """Recall@K, median rank and mAP of a query x gallery similarity matrix.

    Args:
        similarity: (Q, G) scores, higher is more similar; must be finite.
        query_items: The item id of each query (length Q).
        gallery_items: The item id of each gallery entry (length G); entries sharing the
            query's item are relevant to it, duplicates included.
        ks: The K of each ``R@K``.

    Returns:
        ``{"R@1", "R@5", "R@10", "MedR", "mAP"}`` (one ``R@K`` per K in ``ks``).

    Raises:
        MmfuseError: On mismatched shapes, non-finite scores, or a query whose item is not
            in the gallery.
    """
    ks = _check_ks(ks)
    sim = _as_matrix(similarity, "similarity")
    if sim.shape != (len(query_items), len(gallery_items)):
        raise MmfuseError(
            f"similarity has shape {sim.shape} but there are {len(query_items)} query items "
            f"and {len(gallery_items)} gallery items; expected "
            f"({len(query_items)}, {len(gallery_items)})"
        )
    gallery = dedupe_gallery(gallery_items)
    gallery_codes = _codes(gallery_items, gallery.items)
    query_codes = _codes(query_items, gallery.items, missing_ok=True)
    missing = np.flatnonzero(query_codes < 0)
    if missing.size:
        first = int(missing[0])
        raise MmfuseError(
            f"{missing.size} of {len(query_codes)} queries have no relevant gallery entry "
            f"(first: query {first}, item {query_items[first]!r}); every query's item must "
            "appear in the gallery"
        )
    max_relevant = int(np.bincount(gallery_codes)[query_codes].max()) if sim.size else 1

    def block(start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        relevant = query_codes[start:stop, None] == gallery_codes[None, :]  # (c, G)
        return sim[start:stop], relevant

    return _evaluate(block, len(query_codes), len(gallery_codes), max_relevant, ks)


def bidirectional_metrics(
    emb_a: np.ndarray,
    emb_b: np.ndarray,
    items_a: Sequence[Hashable] | None,
    items_b: Sequence[Hashable] | None,
    names: tuple[str, str] = ("A", "B"),
    ks: Iterable[int] = DEFAULT_KS,
) -> dict[str, dict[str, float]]:
    """Retrieval metrics in both directions between two paired embedding sets.

    Row i of ``emb_a`` and row i of ``emb_b`` form a pair (e.g. a caption and its image).
    Rows with the same item id are the same object (an image repeated once per caption);
    each side is deduplicated by item id, keeping the first row of each item, so every item
    counts once as a query and once in the gallery. For A->B every distinct A item is a query
    (every row, when the A ids are unique) and the gallery is the distinct B items; a gallery
    item is relevant when some row pairs the two. B->A is the same with the sides swapped.
    Similarity is the inner product (the cosine, as the embeddings are L2-normalised).

    Args:
        emb_a: (N, D) embeddings of side A.
        emb_b: (N, D) embeddings of side B.
        items_a: N item ids of side A; None means every row is its own item.
        items_b: N item ids of side B; None means every row is its own item.
        names: Labels of the two sides, used in the keys.
        ks: The K of each ``R@K``.

    Returns:
        ``{"A->B": {...}, "B->A": {...}}``, each as returned by ``retrieval_metrics``.
    """
    ks = _check_ks(ks)
    a, b = _as_matrix(emb_a, "emb_a"), _as_matrix(emb_b, "emb_b")
    if a.shape != b.shape:
        raise MmfuseError(
            f"emb_a has shape {a.shape} and emb_b {b.shape}; paired embeddings need the same shape"
        )
    items_a = range(len(a)) if items_a is None else items_a
    items_b = range(len(b)) if items_b is None else items_b
    for label, items in (("items_a", items_a), ("items_b", items_b)):
        if len(items) != len(a):
            raise MmfuseError(f"{label} has {len(items)} ids but there are {len(a)} embedding rows")
    name_a, name_b = names
    gallery_a, gallery_b = dedupe_gallery(items_a), dedupe_gallery(items_b)
    pairs = np.unique(
        np.stack([_codes(items_a, gallery_a.items), _codes(items_b, gallery_b.items)], 1), axis=0
    )  # (P, 2) distinct (A item, B item) pairs
    unique_a, unique_b = a[gallery_a.first_index], b[gallery_b.first_index]
    return {
        f"{name_a}->{name_b}": _paired(unique_a, unique_b, pairs[:, 0], pairs[:, 1], ks),
        f"{name_b}->{name_a}": _paired(unique_b, unique_a, pairs[:, 1], pairs[:, 0], ks),
    }


def _paired(
    queries: np.ndarray,
    gallery: np.ndarray,
    query_codes: np.ndarray,
    gallery_codes: np.ndarray,
    ks: tuple[int, ...],
) -> dict[str, float]:
    """Metrics where query i and gallery j are relevant iff (i, j) is one of the pairs."""
    order = np.argsort(query_codes, kind="stable")
    query_codes, gallery_codes = query_codes[order], gallery_codes[order]
    max_relevant = int(np.bincount(query_codes).max()) if len(query_codes) else 1

    def block(start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = np.searchsorted(query_codes, [start, stop])
        relevant = np.zeros((stop - start, len(gallery)), dtype=bool)
        relevant[query_codes[lo:hi] - start, gallery_codes[lo:hi]] = True
        return queries[start:stop] @ gallery.T, relevant  # (c, G) each

    return _evaluate(block, len(queries), len(gallery), max_relevant, ks)


def _evaluate(
    block: Block, num_queries: int, num_gallery: int, max_relevant: int, ks: tuple[int, ...]
) -> dict[str, float]:
    """Runs ``_first_rank_and_ap`` over blocks of queries small enough to bound memory."""
    if num_queries == 0 or num_gallery == 0:
        raise MmfuseError(
            f"need at least one query and one gallery entry; got {num_queries} queries and "
            f"{num_gallery} gallery entries"
        )
    step = max(1, _BLOCK_ELEMENTS // (num_gallery * max(1, max_relevant)))
    firsts, aps = [], []
    for start in range(0, num_queries, step):
        first, ap = _first_rank_and_ap(*block(start, min(start + step, num_queries)))
        firsts.append(first)
        aps.append(ap)
    first_rank, average_precision = np.concatenate(firsts), np.concatenate(aps)
    out = {f"R@{k}": float(np.mean(first_rank <= k)) for k in ks}
    out["MedR"] = float(np.median(first_rank))
    out["mAP"] = float(average_precision.mean())
    return out


def _first_rank_and_ap(sim: np.ndarray, relevant: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per query: the rank of its first relevant entry and its average precision.

    Counts, for every relevant (query, entry) pair, the entries ranked ahead of it: higher
    scores, ties that are not relevant, and relevant ties earlier in the gallery. This gives
    the pessimistic tie order without sorting the whole (c, G) matrix.

    Args:
        sim: (c, G) scores.
        relevant: (c, G) bool; every row has at least one True.
    """
    query, entry = np.nonzero(relevant)  # row-major: query is sorted
    score = sim[query, entry][:, None]  # (P, 1)
    rows, rel_rows = sim[query], relevant[query]  # (P, G)
    tied = rows == score
    earlier = np.arange(sim.shape[1])[None, :] < entry[:, None]
    ahead = (rows > score).sum(1) + (tied & ~rel_rows).sum(1) + (tied & rel_rows & earlier).sum(1)
    rank = ahead + 1  # (P,) distinct within a query
    order = np.lexsort((rank, query))
    query, rank = query[order], rank[order]
    starts = np.flatnonzero(np.r_[True, query[1:] != query[:-1]])
    counts = np.diff(np.r_[starts, len(query)])
    hits = np.arange(len(query)) - np.repeat(starts, counts) + 1  # relevant entries up to rank
    average_precision = np.add.reduceat(hits / rank, starts) / counts
    return rank[starts], average_precision


def _codes(
    items: Sequence[Hashable], vocabulary: list[Hashable], missing_ok: bool = False
) -> np.ndarray:
    """The position of each item in ``vocabulary`` (-1 where absent and ``missing_ok``)."""
    lookup = {item: code for code, item in enumerate(vocabulary)}
    try:
        codes = np.fromiter((lookup.get(item, -1) for item in items), np.int64, count=len(items))
    except TypeError as err:
        raise MmfuseError(f"item ids must be hashable: {err}") from err
    if not missing_ok and (codes < 0).any():
        raise MmfuseError("internal error: an item is missing from its own vocabulary")
    return codes


def _as_matrix(values: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 2:
        raise MmfuseError(f"{name} must be a 2-D array; got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.number) or not np.isfinite(array).all():
        raise MmfuseError(f"{name} must hold finite numbers (found NaN, inf or non-numbers)")
    return array


def _check_ks(ks: Iterable[int]) -> tuple[int, ...]:
    ks = tuple(ks)
    if any(isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1 for k in ks):
        raise MmfuseError(f"ks must be positive integers; got {ks!r}")
    return tuple(int(k) for k in ks)
