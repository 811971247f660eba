"""The recommendation benchmark's baselines: random, most popular, ItemKNN, and the
``implicit`` library's ALS and BPR, each as "fit on the train matrix, score users x items".

Every baseline sees only the binary (users x items) train matrix. Users without a train row
(cold users) get the most-popular scores from every collaborative baseline (ItemKNN, ALS, BPR),
the usual fallback; items without a train row (cold items) are what these methods cannot score:
the evaluation gives them random places (``knows_unseen_items = False``).

* ``random``: uniform random scores, a fresh draw per call (chance level of every protocol).
* ``most_popular``: the item's number of train rows.
* ``itemknn``: cosine similarity between the items' binary user columns, each item keeping its
  ``neighbours`` most similar other items; score(u, j) = sum over u's train items i of
  sim(i, j) when j is among i's neighbours (Deshpande & Karypis, "Item-based top-N
  recommendation algorithms", TOIS 2004; Sarwar et al. 2001).
* ``als``: ``implicit.cpu.als.AlternatingLeastSquares`` (Hu, Koren & Volinsky, "Collaborative
  filtering for implicit feedback datasets", ICDM 2008; conjugate gradient), score = user
  factors . item factors; ``recommend`` is implicit's own.
* ``bpr``: ``implicit.cpu.bpr.BayesianPersonalizedRanking`` (Rendle et al., "BPR: Bayesian
  personalized ranking from implicit feedback", UAI 2009), likewise.

``GRIDS`` lists each baseline's hyper-parameters; the benchmark picks the best on a validation
split of the train rows (recall@K) and refits on all of them; the first entry is the default.
"""

from __future__ import annotations

import importlib.util
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

GRIDS: dict[str, list[dict[str, Any]]] = {
    "random": [{}],
    "most_popular": [{}],
    "itemknn": [{"neighbours": n} for n in (100, 25, 50, 200)],
    "als": [{"factors": f, "regularization": r, "alpha": a, "iterations": 15}
            for f in (64, 16, 128) for r in (10.0, 1.0, 30.0, 100.0) for a in (10.0, 3.0)],
    "bpr": [{"factors": f, "learning_rate": lr, "regularization": r, "iterations": 300}
            for f in (64, 32, 128) for lr in (0.01, 0.05) for r in (0.1, 0.01)],
}  # fmt: skip
"""Baseline name -> its hyper-parameter settings (the first is the default)."""
NEEDS_IMPLICIT = ("als", "bpr")
SKIPPED_IMPLICIT = "skipped: implicit not installed (pip install implicit)"


def implicit_installed() -> bool:
    return importlib.util.find_spec("implicit") is not None


def train_matrix(
    users: np.ndarray, items: np.ndarray, num_users: int, num_items: int
) -> sp.csr_matrix:
    """(U, I) float32 CSR with a 1 for every (user, item) train row."""
    ones = np.ones(len(users), dtype=np.float32)
    matrix = sp.csr_matrix((ones, (users, items)), shape=(num_users, num_items))
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix


class Baseline:
    """Fit on the train matrix; ``scores(users)`` gives (len(users), I) float64, higher first."""

    knows_unseen_items: ClassVar[bool] = False

    def __init__(self, seed: int, num_threads: int, **params: Any) -> None:
        self.seed, self.num_threads, self.params = seed, num_threads, params

    def fit(self, matrix: sp.csr_matrix) -> Baseline:
        self.matrix = matrix
        self.popularity = np.asarray(matrix.sum(0)).ravel().astype(np.float64)  # (I,)
        self.has_history = np.diff(matrix.indptr) > 0  # (U,)
        self._fit(matrix)
        return self

    def _fit(self, matrix: sp.csr_matrix) -> None:
        """What the method learns beyond the popularity counts."""

    def scores(self, users: np.ndarray) -> np.ndarray:
        out = np.broadcast_to(self.popularity, (len(users), len(self.popularity))).copy()
        warm = self.has_history[users]
        if warm.any():
            out[warm] = self._scores(users[warm])
        return out

    def _scores(self, users: np.ndarray) -> np.ndarray:
        """(len(users), I) scores of users who have a history."""
        return np.broadcast_to(self.popularity, (len(users), len(self.popularity))).copy()

    def recommend(self, users: np.ndarray, k: int) -> np.ndarray:
        """(len(users), k) top items, the users' train items left out (the serving path)."""
        scores = self.scores(users)
        rows = self.matrix[users]
        scores[np.repeat(np.arange(len(users)), np.diff(rows.indptr)), rows.indices] = -np.inf
        top = np.argpartition(-scores, min(k, scores.shape[1] - 1), 1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, top, 1), 1)
        return np.take_along_axis(top, order, 1)


class RandomBaseline(Baseline):
    """Uniform random scores, a fresh draw per call: the chance level of every view."""

    knows_unseen_items = True  # random everywhere already

    def fit(self, matrix: sp.csr_matrix) -> Baseline:
        self.rng = np.random.default_rng(self.seed)
        return super().fit(matrix)

    def scores(self, users: np.ndarray) -> np.ndarray:
        return self.rng.random((len(users), self.matrix.shape[1]))


class MostPopular(Baseline):
    """Every user gets the items by their number of train rows (the base class's scores)."""


class ItemKNN(Baseline):
    """Sum of the cosine similarities of the user's items to each item (``neighbours`` kept)."""

    def _fit(self, matrix: sp.csr_matrix) -> None:
        self.similar = item_neighbours(matrix, int(self.params["neighbours"]))

    def _scores(self, users: np.ndarray) -> np.ndarray:
        return (self.matrix[users] @ self.similar).toarray().astype(np.float64)


def item_neighbours(matrix: sp.csr_matrix, neighbours: int, chunk: int = 1024) -> sp.csr_matrix:
    """(I, I) CSR: row i holds the cosine similarities of i's ``neighbours`` most similar other
    items (over the binary user columns), computed ``chunk`` items at a time."""
    columns = matrix.T.tocsr().astype(np.float32)  # (I, U)
    norms = np.sqrt(np.asarray(columns.multiply(columns).sum(1)).ravel())
    columns = sp.diags(1.0 / np.maximum(norms, 1e-12)).astype(np.float32) @ columns
    num_items = columns.shape[0]
    keep = min(neighbours, num_items - 1)
    rows, cols, vals = [], [], []
    for start in range(0, num_items, chunk):
        stop = min(start + chunk, num_items)
        sim = (columns[start:stop] @ columns.T).toarray()  # (chunk, I)
        sim[np.arange(stop - start), np.arange(start, stop)] = 0.0
        top = (
            np.argpartition(-sim, keep - 1, 1)[:, :keep]
            if keep > 0
            else np.zeros((stop - start, 0), int)
        )
        value = np.take_along_axis(sim, top, 1)
        positive = value > 0
        rows.append(np.repeat(np.arange(start, stop), positive.sum(1)))
        cols.append(top[positive])
        vals.append(value[positive])
    return sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(num_items, num_items),
    )


class _Implicit(Baseline):
    """An ``implicit`` model: factors learned from the train matrix, scores = dot products."""

    def _model(self) -> Any:
        raise NotImplementedError

    def _fit(self, matrix: sp.csr_matrix) -> None:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1, "blas"):  # implicit's advice: its own threads, one-thread BLAS
            self.model = self._model()
            self.model.fit(matrix, show_progress=False)

    def _scores(self, users: np.ndarray) -> np.ndarray:
        factors = np.asarray(self.model.user_factors[users], dtype=np.float64)
        return factors @ np.asarray(self.model.item_factors, dtype=np.float64).T

    def recommend(self, users: np.ndarray, k: int) -> np.ndarray:
        ids, _ = self.model.recommend(
            users, self.matrix[users], N=k, filter_already_liked_items=True
        )
        return np.atleast_2d(ids)


class ALS(_Implicit):
    """``implicit``'s alternating least squares (conjugate gradient)."""

    def _model(self) -> Any:
        from implicit.cpu.als import AlternatingLeastSquares

        return AlternatingLeastSquares(
            random_state=self.seed, num_threads=self.num_threads, **self.params
        )


class BPR(_Implicit):
    """``implicit``'s Bayesian personalized ranking (SGD over sampled triples)."""

    def _model(self) -> Any:
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        return BayesianPersonalizedRanking(
            random_state=self.seed, num_threads=self.num_threads, **self.params
        )


BASELINES: dict[str, type[Baseline]] = {
    "random": RandomBaseline, "most_popular": MostPopular, "itemknn": ItemKNN, "als": ALS,
    "bpr": BPR,
}  # fmt: skip
"""Name -> class, in the order of the report."""
