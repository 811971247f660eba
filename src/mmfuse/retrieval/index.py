"""A vector index stored as a directory: inner-product search with FAISS, exact or approximate.

Directory layout (every file written atomically, ``index.json`` last as the commit point)::

    INDEX_DIR/
      vectors.npy       (N, D) float32, the source of truth (the exact index is rebuilt from
                        it; an ivfpq index reads it memory-mapped instead)
      metadata.parquet  a ``row_id`` column (0..N-1) and the caller's columns
      ann.faiss         approximate indexes only (``faiss.write_index``, a binary format)
      index.json        dim, count, kind, metric, recall_at_10, parameters and the caller's info

Loading checks that the counts in ``index.json``, ``vectors.npy`` and the metadata agree and
never unpickles anything. Scores are inner products: L2-normalise vectors (and queries) to
search by cosine similarity.

Exact search is ``faiss.IndexFlatIP``. ``approximate="hnsw"``, ``"ivf"`` or ``"ivfpq"`` adds
an approximate index whose search parameter (efSearch, nprobe) is tuned at build, and again on
``add``, to reach recall@10 >= ``target_recall`` against exact search; the measured recall is
stored in ``index.json``.

``"ivfpq"`` is for collections larger than memory: no exact FAISS index is built. Memory
holds the PQ codes (about D / 8 + 8 bytes a vector); the full vectors stay where they are (a
read-only memory map given to ``build`` is kept as it is; other arrays are copied and held
until ``save``) and, once saved, are read memory-mapped from ``vectors.npy``, for the exact
re-ranking of every search's candidates, for ``search(exact=True)`` and for the recall
measurement, which scan them in chunks (``mmfuse.retrieval.disk_vectors``). A build of fewer
than 1024 rows, too few to train the quantizer, is exact instead (``fallback_reason``).

Recall is measured on held-out queries: up to 1000 rows drawn at random (a tenth of the rows
at build, the new rows on ``add``) are inserted into the approximate index only after it has
been measured with them as queries, against exact search over the rows it holds at that
point. Searching with rows that are already inserted would overstate recall badly for HNSW
(a stored vector's own graph links point at its nearest neighbours: 0.98 measured that way
against 0.87 on fresh queries in one test). Callers with real held-out queries (e.g. captions
when indexing images) may pass them as ``eval_queries`` instead. Small builds hold out at
least 50 rows (at most half of them); a build of fewer than 100 rows, too few to measure,
is exact instead, and says so in ``parameters["fallback_reason"]`` (exact search is as fast
at that size). Appends of fewer than 50 rows keep the current setting and measurement.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmfuse._io import atomic_open, atomic_path, write_json
from mmfuse.errors import MmfuseError
from mmfuse.retrieval import ann
from mmfuse.retrieval.disk_vectors import ChunkedFlatIP, kept_vectors
from mmfuse.retrieval.index_inputs import MIN_EVAL_QUERIES, MIN_MEASURED_ROWS, as_vectors, check_info, fallback_reason, metadata_for, optional_vectors
from mmfuse.retrieval.search_result import SearchResult
from mmfuse.retrieval.index_files import (
    ANN_FILE, FORMAT, INDEX_FILE, KINDS, METADATA_FILE, ROW_ID, VECTORS_FILE, VERSION, read_ann,
    read_header, read_metadata, read_vectors, write_parquet,
)  # fmt: skip

NUM_EVAL_QUERIES = 1000
INSERT_CHUNK = 65536  # rows copied at a time while skipping held-out rows


class VectorIndex:
    """Inner-product search over N vectors of dimension D, with a metadata row per vector.

    Create with ``VectorIndex.build`` or ``VectorIndex.load``; grow with ``add``.

    Attributes:
        kind: ``"exact"``, ``"hnsw"``, ``"ivf"`` or ``"ivfpq"``.
        metadata: ``row_id`` plus the caller's columns, one row per vector.
        info: The caller's opaque, JSON-serialisable dict (e.g. model fingerprint, modality).
        parameters: Build and search parameters, and the recall measurements of approximate
            indexes (``recall_at_10``, ``target_met``, ``recall_curve``).
        num_threads: FAISS threads for build, add and search (None: FAISS's default).
    """

    def __init__(
        self,
        flat: Any,
        metadata: pd.DataFrame,
        info: dict[str, Any],
        kind: str,
        approximate_index: Any = None,
        parameters: dict[str, Any] | None = None,
        num_threads: int | None = None,
    ) -> None:
        self._flat = flat
        self._ann = approximate_index
        self.metadata = metadata
        self.info = info
        self.kind = kind
        self.parameters = dict(parameters or {})
        self.num_threads = num_threads

    @property
    def ann_index(self) -> Any:
        """The FAISS approximate index (None for an exact index)."""
        return self._ann

    @classmethod
    def build(
        cls,
        vectors: np.ndarray,
        metadata: pd.DataFrame | None = None,
        info: dict[str, Any] | None = None,
        approximate: str | None = None,
        *,
        target_recall: float = ann.DEFAULT_TARGET_RECALL,
        nlist: int | None = None,
        hnsw_m: int = ann.HNSW_M,
        eval_queries: np.ndarray | None = None,
        num_threads: int | None = None,
        seed: int = 0,
    ) -> VectorIndex:
        """Indexes ``vectors``.

        Args:
            vectors: (N, D) finite vectors (stored as float32); for ``"ivfpq"`` a read-only
                float32 memory map is kept as it is, so the collection may exceed memory.
            metadata: N rows describing the vectors (e.g. path, source columns); its index
                is dropped and it may not have a ``row_id`` column. None: ``row_id`` only.
            info: JSON-serialisable dict stored as is in ``index.json``.
            approximate: None (exact), ``"hnsw"``, ``"ivf"`` or ``"ivfpq"``.
            target_recall: Recall@10 the approximate search parameter is tuned to reach.
            nlist: IVF list count; None: about 4 * sqrt(N).
            hnsw_m: HNSW links per node.
            eval_queries: (Q, D) held-out queries for the recall measurement; None: a tenth
                of the rows (50 to 1000), held out of the approximate index until measured;
                with fewer than 100 rows the index is exact (see ``parameters``).
            num_threads: FAISS threads (None: FAISS's default).
            seed: Seed of the sampling (IVF and PQ training, recall queries).
        """
        import faiss

        kind = "exact" if approximate is None else approximate
        if kind not in KINDS:
            raise MmfuseError(
                f"unknown approximate index {approximate!r}; choose None (exact) or one of: "
                f"{', '.join(ann.APPROXIMATE_KINDS)}"
            )
        if not 0 < target_recall <= 1:
            raise MmfuseError(f"target_recall must be in (0, 1]; got {target_recall!r}")
        x = (kept_vectors if kind == "ivfpq" else as_vectors)(vectors, None, "vectors")
        held_out = optional_vectors(eval_queries, x.shape[1], "eval_queries")
        info = check_info(info)
        meta = metadata_for(metadata, len(x), start=0, columns=None)
        parameters: dict[str, Any] = {"seed": seed}
        if kind != "exact" and held_out is None and len(x) < MIN_MEASURED_ROWS:
            parameters.update(requested_kind=kind, fallback_reason=fallback_reason(kind, len(x)))
            kind = "exact"
        elif kind == "ivfpq" and len(x) < ann.MIN_PQ_ROWS:
            parameters.update(requested_kind=kind, fallback_reason=ann.pq_fallback_reason(len(x)))
            kind = "exact"
        with ann.faiss_threads(num_threads):
            if kind == "ivfpq":
                flat: Any = ChunkedFlatIP(x)  # exact search scans x; no FAISS copy of it
            else:
                flat = faiss.IndexFlatIP(x.shape[1])
                flat.add(x)
            index: Any = None
            if kind != "exact":
                index, built = ann.create_ann(kind, x, nlist=nlist, hnsw_m=hnsw_m, seed=seed)
                parameters.update(built, target_recall=target_recall)
        out = cls(flat, meta, info, kind, index, parameters, num_threads)
        if index is not None:
            out._insert(x, 0, held_out, building=True)
        return out

    @property
    def dim(self) -> int:
        """The vector dimension D."""
        return int(self._flat.d)

    def __len__(self) -> int:
        return int(self._flat.ntotal)

    def __repr__(self) -> str:
        recall = self.parameters.get("recall_at_10")
        extra = "" if recall is None else f", recall_at_10={recall:.3f}"
        return f"VectorIndex(kind={self.kind!r}, count={len(self)}, dim={self.dim}{extra})"

    def vectors(self) -> np.ndarray:
        """A copy of the stored (N, D) float32 vectors, in memory."""
        return np.array(self._view())

    def add(
        self,
        vectors: np.ndarray,
        metadata: pd.DataFrame | None = None,
        eval_queries: np.ndarray | None = None,
    ) -> None:
        """Appends vectors (and their metadata rows); approximate indexes are re-measured.

        The approximate index is measured and re-tuned with up to 1000 of the new rows held
        out (or with ``eval_queries``); appends of fewer than 50 rows keep the current setting.

        Args:
            vectors: (M, D) finite vectors.
            metadata: M rows with the same columns as the index's metadata.
            eval_queries: Held-out queries for the new recall measurement (see ``build``).
        """
        x = (kept_vectors if self.kind == "ivfpq" else as_vectors)(vectors, self.dim, "vectors")
        held_out = optional_vectors(eval_queries, self.dim, "eval_queries")
        columns = [c for c in self.metadata.columns if c != ROW_ID]
        start = len(self)
        meta = metadata_for(metadata, len(x), start=start, columns=columns)
        with ann.faiss_threads(self.num_threads):
            self._flat.add(x)
        self.metadata = pd.concat([self.metadata, meta], ignore_index=True)
        if self._ann is not None:
            self._insert(x, start, held_out, building=False)

    def search(self, queries: np.ndarray, k: int = 10, exact: bool = False) -> SearchResult:
        """The k best vectors by inner product for each query.

        Args:
            queries: (Q, D) finite vectors.
            k: Hits per query (at most ``len(self)`` are returned).
            exact: Search exactly even when the index is approximate.
        """
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise MmfuseError(f"k must be a positive integer; got {k!r}")
        if len(self) == 0:
            raise MmfuseError("the index is empty; add vectors before searching")
        q = as_vectors(queries, self.dim, "queries")
        k = min(int(k), len(self))
        with ann.faiss_threads(self.num_threads):
            if exact or self._ann is None:
                scores, positions = self._flat.search(q, k)
            else:
                scores, positions = ann.search(
                    self._ann, self.kind, self.parameters, q, k, self._fetch
                )
        scores[positions < 0] = -np.inf
        return SearchResult(scores, positions.astype(np.int64), self.metadata)

    def save(self, directory: str | Path) -> Path:
        """Writes the index into ``directory`` (created if needed); returns the path."""
        root = Path(directory)
        if root.is_dir() and any(root.iterdir()) and not (root / INDEX_FILE).is_file():
            raise MmfuseError(
                f"{root} is not empty and not an mmfuse index; refusing to write there"
            )
        if isinstance(self._flat, ChunkedFlatIP):
            self._flat.save(root / VECTORS_FILE)  # streamed; then read memory-mapped from there
        else:
            with atomic_open(root / VECTORS_FILE, "wb") as handle:
                np.save(handle, self._view(), allow_pickle=False)
        with atomic_path(root / METADATA_FILE) as tmp:
            write_parquet(self.metadata, tmp)
        if self._ann is not None:
            import faiss

            with atomic_path(root / ANN_FILE) as tmp:
                faiss.write_index(self._ann, str(tmp))
        write_json(root / INDEX_FILE, self._header())
        if self._ann is None and (root / ANN_FILE).exists():
            (root / ANN_FILE).unlink()  # left over from an approximate index saved here before
        return root

    @classmethod
    def load(cls, directory: str | Path, num_threads: int | None = None) -> VectorIndex:
        """Reads an index written by ``save``.

        Raises:
            MmfuseError: When the directory is missing, is not an mmfuse index, or its files
                disagree (counts, dimension) or cannot be read.
        """
        import faiss

        root = Path(directory)
        header = read_header(root)
        count, dim, kind = header["count"], header["dim"], header["kind"]
        vectors = read_vectors(root / VECTORS_FILE, count, dim)
        metadata = read_metadata(root / METADATA_FILE, count)
        if kind == "ivfpq":
            flat: Any = ChunkedFlatIP(vectors)  # the rows stay on disk, memory-mapped
        else:
            with ann.faiss_threads(num_threads):
                flat = faiss.IndexFlatIP(dim)
                flat.add(np.ascontiguousarray(vectors))
        del vectors
        index = None
        if kind != "exact":
            index = read_ann(root / ANN_FILE, kind, count, dim)
            parameter = ann.SEARCH_PARAMETER[kind]
            ann.set_search_parameter(index, kind, header["parameters"][parameter])
        return cls(flat, metadata, header["info"], kind, index, header["parameters"], num_threads)

    def _view(self) -> np.ndarray:
        """The stored vectors without a copy (ivfpq: unless ``add`` made several blocks);
        valid only until the next ``add``."""
        import faiss

        if isinstance(self._flat, ChunkedFlatIP):
            return self._flat.array()
        n, d = len(self), self.dim
        if n == 0:
            return np.zeros((0, d), dtype=np.float32)
        return faiss.rev_swig_ptr(self._flat.get_xb(), n * d).reshape(n, d)

    def _insert(
        self, x: np.ndarray, start: int, eval_queries: np.ndarray | None, building: bool
    ) -> None:
        """Adds rows ``start..start+len(x)`` to the approximate index, measuring on the way.

        Held-out rows go in last, after the index has been measured with them as queries.
        """
        held = self._held_out(len(x), building) if eval_queries is None else np.zeros(0, int)
        with ann.faiss_threads(self.num_threads):
            for begin in range(0, len(x), INSERT_CHUNK):
                stop = min(begin + INSERT_CHUNK, len(x))
                rows = np.setdiff1d(np.arange(begin, stop), held, assume_unique=True)
                self._ann.add_with_ids(x[rows], (start + rows).astype(np.int64))
            if eval_queries is not None:
                self._measure(eval_queries, np.zeros(0, np.int64), "eval_queries")
            elif len(held):
                self._measure(x[held], (start + held).astype(np.int64), "held-out rows")
                self._ann.add_with_ids(x[held], (start + held).astype(np.int64))

    def _held_out(self, count: int, building: bool) -> np.ndarray:
        """Sorted positions (within the new rows) to hold out; empty when too few.

        A build holds out a tenth of its rows, at least 50 and at most half of them (``build``
        makes an index of fewer than 100 rows exact); an append holds out its new rows, up to
        1000, or none when it brings fewer than 50.
        """
        if building:
            size = max(count // 10, MIN_EVAL_QUERIES) if count >= MIN_MEASURED_ROWS else 0
        else:
            size = count if count >= MIN_EVAL_QUERIES else 0
        size = min(size, NUM_EVAL_QUERIES)
        if size == 0:
            return np.zeros(0, dtype=np.int64)
        rng = np.random.default_rng([self.parameters.get("seed", 0), len(self)])
        return np.sort(rng.choice(count, size, replace=False))

    def _measure(self, queries: np.ndarray, excluded: np.ndarray, source: str) -> None:
        """Tunes the search parameter on ``queries``; ``excluded`` rows are not in the index."""
        truth = self._exact_without(queries, excluded, ann.RECALL_K)
        target = self.parameters["target_recall"]
        tuning = ann.tune(
            self._ann, self.kind, self.parameters, queries, truth, target, fetch=self._fetch
        )
        self.parameters.update(
            {
                ann.SEARCH_PARAMETER[self.kind]: tuning.value,
                "recall_at_10": tuning.recall,
                "target_met": tuning.target_met,
                "recall_queries": len(queries),
                "recall_query_source": source,
                "recall_measured_at_count": int(self._ann.ntotal),
                "recall_curve": {str(v): r for v, r in tuning.curve.items()},
                **({"rerank_curve": {str(f): r for f, r in tuning.rerank.items()}} if tuning.rerank else {}),
            }
        )

    def _exact_without(self, queries: np.ndarray, excluded: np.ndarray, k: int) -> np.ndarray:
        """(Q, k) exact top-k positions, ignoring the rows in ``excluded`` (sorted)."""
        import faiss

        if isinstance(self._flat, ChunkedFlatIP):
            return self._flat.search(queries, k, excluded)[1]
        depth = min(len(self), 4 * k)
        _, ids = self._flat.search(queries, depth)  # batched BLAS; rarely too shallow
        keep = ~np.isin(ids, excluded) & (ids >= 0)
        order = np.argsort(~keep, axis=1, kind="stable")[:, :k]
        truth = np.where(np.take_along_axis(keep, order, 1), np.take_along_axis(ids, order, 1), -1)
        needed = min(k, len(self) - len(excluded))
        short = np.flatnonzero(keep.sum(1) < needed)
        if short.size:  # many excluded rows among the nearest: search those queries again
            batch = faiss.IDSelectorBatch(excluded)
            selector = faiss.IDSelectorNot(batch)  # both kept alive until the search is done
            params = faiss.SearchParameters()
            params.sel = selector
            _, redo = self._flat.search(queries[short], truth.shape[1], params=params)
            truth[short] = redo
        return truth

    @property
    def _fetch(self) -> ann.Fetch | None:
        """The full vectors by position, for the re-ranking of ivfpq searches."""
        return self._flat.rows if isinstance(self._flat, ChunkedFlatIP) else None

    def _header(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "kind": self.kind,
            "metric": "inner_product",
            "dim": self.dim,
            "count": len(self),
            "recall_at_10": self.parameters.get(
                "recall_at_10", 1.0 if self.kind == "exact" else None
            ),
            "parameters": self.parameters,
            "info": self.info,
        }
