"""What a search returns: the scores and row ids of the top hits of every query."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class SearchResult:
    """The top-k hits of each query, best first.

    Attributes:
        scores: (Q, k) float32 inner products; -inf where a query got fewer than k hits.
        positions: (Q, k) int64 row positions in the index; -1 where there is no hit.
        metadata: The index's metadata table (``row_id`` and the caller's columns).
    """

    scores: np.ndarray
    positions: np.ndarray
    metadata: pd.DataFrame = field(repr=False)

    def hits(self, query: int) -> pd.DataFrame:
        """The metadata rows of one query's hits, best first, with ``rank`` and ``score``."""
        keep = self.positions[query] >= 0
        rows = _renamed(self.metadata.iloc[self.positions[query][keep]].reset_index(drop=True))
        rows.insert(0, "score", self.scores[query][keep])
        rows.insert(0, "rank", np.arange(1, int(keep.sum()) + 1))
        return rows

    def to_frame(self) -> pd.DataFrame:
        """Every hit of every query as one long table: ``query``, ``rank``, ``score``, metadata."""
        query, rank = np.nonzero(self.positions >= 0)
        rows = _renamed(self.metadata.iloc[self.positions[query, rank]].reset_index(drop=True))
        rows.insert(0, "score", self.scores[query, rank])
        rows.insert(0, "rank", rank + 1)
        rows.insert(0, "query", query)
        return rows


def _renamed(rows: pd.DataFrame) -> pd.DataFrame:
    """Metadata columns named like the hit's own (an input table's ``score`` column) are
    kept as ``input_<name>``."""
    taken = {c: f"input_{c}" for c in ("query", "rank", "score") if c in rows.columns}
    return rows.rename(columns=taken) if taken else rows
