"""MultimodalRecommender: ranks items for users from behaviour, item content and social links.

``fit`` reads the interactions (and the item, user and social tables), prepares the item
content and user attributes with the same pipeline as ``fit`` for classifiers (schema
inference, pretrained encoders, feature cache, fusion operators), and trains the two towers of
``mmfuse.recommend.model``; ``recommend`` lists each user's top K; ``evaluate`` ranks the whole
catalogue (or given candidates) for every user of a test table and reports recall, NDCG, hit
rate, MAP and coverage at K.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmfuse._progress import log
from mmfuse.data.preprocess import Encoded
from mmfuse.data.readers import Table
from mmfuse.data.tensors import TensorData
from mmfuse.errors import MmfuseError
from mmfuse.estimators.facade import DataLike, Facade
from mmfuse.estimators.pipeline import Pipeline
from mmfuse.params import RecommenderParams, takes_params
from mmfuse.recommend.graph import Neighbours
from mmfuse.recommend.prepared import Prepared
from mmfuse.recommend.tables import IdMap, Interactions, catalogue_ids, id_text, read_interactions, read_social

DEFAULT_KS = (10, 20)


@takes_params(RecommenderParams)
class MultimodalRecommender(Facade):
    """Recommends items to users (SPEC §10.3).

    Example::

        rec = MultimodalRecommender(user="user", item="item", items="items.csv",
                                    social="friends.csv").fit("train.csv")
        rec.recommend(["u0001"], k=10); rec.evaluate("test.csv")

    See ``mmfuse.params.RecommenderParams`` for the parameters. Learned state: ``users_`` and
    ``items_`` (the id maps), ``model_``, ``history_``, ``metrics_`` (validation).
    """

    _task = "recommendation"

    # ---------------------------------------------------------------- fitting
    def fit(self, data: DataLike, items: DataLike | None = None, users: DataLike | None = None,
            social: DataLike | None = None, out_dir: str | Path | None = None) -> MultimodalRecommender:
        """Trains on the interactions in ``data``; ``items``, ``users`` and ``social`` (tables
        or files) override the parameters of those names."""
        import torch

        from mmfuse.recommend.model import RecommenderConfig, build_recommender, tower_config
        from mmfuse.recommend.training import RecTrainConfig, train_recommender
        from mmfuse.training.device import set_threads
        from mmfuse.training.trainer import check_seed

        if not self.user or not self.item:
            raise MmfuseError("a recommender needs the id columns of the interactions: user=... and item=... "
                              "(--user COL --item COL)")
        check_seed(self.seed)
        set_threads(self.num_threads)
        started = time.perf_counter()
        interactions_table = self.read(data)
        item_table = self._optional(items, self.items)
        user_table = self._optional(users, self.users)
        social_table = self._optional(social, self.social)
        source = items if items is not None else self.items
        self.item_table_path_ = str(Path(source).resolve()) if isinstance(source, (str, Path)) else None
        if item_table is not None:
            self.items_, item_table = catalogue_ids(item_table, self.item, "item")
        else:
            self.items_ = IdMap(sorted({k for k in map(id_text, interactions_table.df.get(self.item, [])) if k}))
        self.users_ = IdMap()
        if user_table is not None:
            self.users_, user_table = catalogue_ids(user_table, self.user, "user")
        inter = read_interactions(interactions_table, self.user, self.item, self.rating, self.users_,
                                  self.items_, self.on_bad_record, verbose=self.verbose)
        if len(inter) < 2:
            raise MmfuseError(f"{interactions_table.name}: fewer than 2 usable interactions")
        self.rejected_ = list(inter.rejected)
        friends = None
        if social_table is not None:
            src, dst, bad = read_social(social_table, self.users_, self.social_directed, self.verbose)
            self.rejected_ += bad
            friends = Neighbours.from_pairs(src, dst, len(self.users_))
        self.content_pipeline_ = self._tower_pipeline(item_table, self.item)
        self.attribute_pipeline_ = self._tower_pipeline(user_table, self.user)
        content = self._aligned(self.content_pipeline_, item_table, self.item, self.items_)
        attributes = self._aligned(self.attribute_pipeline_, user_table, self.user, self.users_)
        train, valid = _split(inter, self.valid_fraction, self.seed)
        data_train = _prepared(train, len(self.users_), len(self.items_), friends, content, attributes)
        self.model_config_ = RecommenderConfig(
            num_items=len(self.items_), dim=self.embed_dim,
            content=None if content is None else tower_config(self, self.content_pipeline_.preprocessor, self.embed_dim).to_dict(),
            attributes=None if attributes is None else tower_config(self, self.attribute_pipeline_.preprocessor, self.embed_dim).to_dict(),
            social=friends is not None,
        )
        torch.manual_seed(self.seed)  # the towers' initial weights: same data + seed, same model
        self.model_ = build_recommender(self.model_config_, _specs(self.content_pipeline_), _specs(self.attribute_pipeline_))
        self.train_config_ = RecTrainConfig(self.epochs, self.batch_size, self.lr, self.weight_decay,
                                            self.patience, self.seed, self.history_size, id_dropout=self.id_dropout)
        if self.verbose:
            log(f"training a recommender ({self.model_.num_parameters():,} parameters) on {len(train)} "
                f"interactions of {len(self.users_)} users and {len(self.items_)} items, validating on {len(valid[0])}")
        self.history_, self.kept_epoch_ = train_recommender(
            self.model_, data_train, train.users, train.items, valid if len(valid[0]) else None,
            self.train_config_, self.verbose)
        self.data_ = _prepared(inter, len(self.users_), len(self.items_), friends, content, attributes,
                               known=data_train.known)
        self.n_train_, self.n_valid_ = len(train), len(valid[0])
        self.metrics_ = {k: v for k, v in self.history_[self.kept_epoch_ - 1].items() if k.startswith("valid_")}
        self.train_seconds_ = time.perf_counter() - started
        if out_dir is not None:
            self.save(out_dir)
        return self

    def _optional(self, given: DataLike | None, param: str | None) -> Table | None:
        source = given if given is not None else param
        return None if source is None else self.read(source)

    def _tower_pipeline(self, table: Table | None, id_column: str) -> Pipeline | None:
        """The pipeline of an item or user table's columns other than the id (None: no table,
        or no column besides the id)."""
        if table is None:
            return None
        columns = [c for c in table.df.columns if c != id_column]
        if self.features:
            columns = [c for c in columns if c in self.features] or columns
        if not columns:
            return None
        pipeline = Pipeline.plan(table, None, None, self, features=columns, use_audio_tracks=False)
        if not pipeline.modalities:
            return None
        return pipeline.fit(table)

    def _aligned(self, pipeline: Pipeline | None, table: Table | None, id_column: str,
                 ids: IdMap) -> TensorData | None:
        """The prepared table, one record per id of ``ids`` (ids without a row, or whose row
        was skipped as bad, have every modality missing)."""
        if pipeline is None or table is None:
            return None
        enc = pipeline.prepare(table, with_target=False)
        self.rejected_ += enc.rejected
        positions = np.array([ids.index[id_text(v)] for v in table.df.loc[enc.rows, id_column]], dtype=np.int64)
        return TensorData.from_encoded(_scatter(enc, positions, len(ids)))

    # ------------------------------------------------------------- using
    def recommend(self, users: list[Any] | np.ndarray, k: int = 10, exclude_seen: bool = True) -> pd.DataFrame:
        """The top ``k`` items of each user (``user``, ``rank``, ``item``, ``score``); a user
        the model does not know gets the items shown to a user about whom nothing is known."""
        self.check_fitted()
        _check_k(k)
        keys = [id_text(u) for u in users]
        known = np.array([key in self.users_ for key in keys], dtype=bool)
        rows = np.array([self.users_.index.get(key, 0) for key in keys], dtype=np.int64)
        ranked, scores = self._rank(rows, known, k, None, exclude_seen)
        out = [(key, r + 1, self.items_.ids[item], float(score))
               for key, items, vals in zip(keys, ranked, scores)
               for r, (item, score) in enumerate(zip(items, vals)) if item >= 0]
        return pd.DataFrame(out, columns=["user", "rank", "item", "score"])

    def _rank(self, rows: np.ndarray, known: np.ndarray, k: int, pool: np.ndarray | None,
              exclude_seen: bool) -> tuple[np.ndarray, np.ndarray]:
        """(top-k item indices, scores) of the users at ``rows``; users the model does not know
        (``~known``) get the most popular items (``popular``)."""
        from mmfuse.recommend.ranking import top_k

        items, users = self.vectors()
        ranked, scores = top_k(users[rows], items, k, self.data_.history if exclude_seen else None, rows, pool)
        if not known.all():
            ranked[~known], scores[~known] = self.popular(rows[~known], np.zeros((~known).sum(), bool), k, pool)
        return ranked, scores

    def popular(self, rows: np.ndarray, known: np.ndarray, k: int, pool: np.ndarray | None = None,
                ) -> tuple[np.ndarray, np.ndarray]:
        """The most-popular baseline: the ``k`` items of ``pool`` with the most training
        interactions, less each known user's own; scored by their share of the interactions."""
        from mmfuse.recommend.ranking import first_unseen, most_seen

        candidates = np.arange(len(self.items_)) if pool is None else pool
        popularity = self.data_.popularity
        owners = np.where(known, rows, -1)
        width = k + most_seen(self.data_.history, owners)
        order = candidates[np.argsort(-popularity[candidates], kind="stable")][:width]
        share = (popularity / max(int(popularity.sum()), 1)).astype(np.float32)
        got = np.broadcast_to(order, (len(rows), len(order)))
        return first_unseen(got, np.broadcast_to(share[order], got.shape), self.data_.history, owners,
                            len(self.items_), k)

    def evaluate(self, data: DataLike, ks: tuple[int, ...] = DEFAULT_KS, candidates: DataLike | None = None,
                 relevant_min: float | None = None) -> dict[str, Any]:
        """Ranking metrics on the test interactions of ``data``: for each of its users, every
        catalogue item not in their training history (or the ``candidates`` ids) is ranked.

        Returns:
            ``metrics`` and ``most_popular`` (the baseline on the same protocol), the numbers of
            users, items ranked and interactions, and the test rows left out (``rejected``:
            ``Rejection`` values, e.g. items the catalogue lacks)."""
        from mmfuse.evaluation.ranking import Relevance, check_ks, ranking_metrics

        self.check_fitted()
        ks = check_ks(ks)
        table = self.read(data)
        test = read_interactions(table, self.user, self.item, self.rating if relevant_min is not None else None,
                                 IdMap(self.users_.ids), self.items_, "skip", add_users=True, verbose=self.verbose)
        if relevant_min is not None:
            if test.ratings is None:
                raise MmfuseError("--relevant-min needs the rating column (fit with --rating COL)")
            keep = test.ratings >= relevant_min
            test = Interactions(test.users[keep], test.items[keep], test.ratings[keep], test.rejected)
        if len(test) == 0:
            raise MmfuseError(f"{table.name}: no relevant test interaction to evaluate")
        pool = None if candidates is None else self._candidate_items(candidates)
        if pool is not None:  # relevant: the test interactions with a candidate
            among = np.isin(test.items, pool)
            test = Interactions(test.users[among], test.items[among], None, test.rejected)
            if len(test) == 0:
                raise MmfuseError(f"{table.name}: no test interaction is with a candidate item")
        who = np.unique(test.users)
        known = who < len(self.users_)
        rows = np.where(known, who, 0)
        ranked, _ = self._rank(rows, known, max(ks), pool, True)
        relevant = Neighbours.from_pairs(np.searchsorted(who, test.users), test.items, len(who))
        relevance = Relevance(relevant.indptr, relevant.indices)
        metrics = ranking_metrics(ranked, relevance, len(self.items_), ks)
        baseline = ranking_metrics(self.popular(rows, known, max(ks), pool)[0], relevance, len(self.items_), ks)
        return {"metrics": metrics, "most_popular": baseline,
                "n_users": int(len(who)), "n_cold_users": int((~known).sum()),
                "n_items_ranked": int(len(self.items_) if pool is None else len(pool)),
                "n_interactions": int(len(test)), "n_rejected": len(test.rejected),
                "rejected": list(test.rejected)}

    def vectors(self) -> tuple[Any, Any]:
        """(every item's vector, every known user's vector), computed once per fitted model."""
        from mmfuse.recommend.ranking import item_vectors, user_vectors

        self.check_fitted()
        cached = getattr(self, "vectors_", None)
        if cached is None or cached[0] is not self.model_:
            items = item_vectors(self.model_, self.data_)
            users = user_vectors(self.model_, self.data_, np.arange(len(self.users_)), items)
            cached = self.vectors_ = (self.model_, items, users)
        return cached[1], cached[2]

    def explain(self, users: list[Any] | np.ndarray, k: int = 10) -> pd.DataFrame:
        """How much each signal made each of the users' top-``k`` items score: the Shapley
        values of ``behaviour`` (the history and the item's id), ``social``, ``attributes`` and
        each content modality, over presence masks (one row per user and item; they sum to
        ``score - base``, ``base`` being the score with every signal absent)."""
        from mmfuse.evaluation.contribution import shapley_values
        from mmfuse.recommend.model import ATTRIBUTES, BEHAVIOUR, SOCIAL

        recs = self.recommend(users, k)
        recs = recs[recs["user"].isin(self.users_.index)]  # unknown users get popularity: no model
        if recs.empty:
            raise MmfuseError("none of these users is known to the model: nothing to explain")
        rows = np.array([self.users_.index[u] for u in recs["user"]], dtype=np.int64)
        items = np.array([self.items_.index[i] for i in recs["item"]], dtype=np.int64)
        players = [BEHAVIOUR] + ([SOCIAL] if self.data_.friends is not None else [])
        players += [ATTRIBUTES] if self.data_.attributes is not None else []
        players += self.model_.content_modalities
        value = _PairScore(self, rows, items)
        phi = shapley_values(value, players, num_samples=len(rows))
        out = recs.reset_index(drop=True)
        out["base"] = value({p: np.zeros(len(rows), dtype=bool) for p in players})
        for j, player in enumerate(players):
            out[player] = phi[:, j]
        return out

    def _candidate_items(self, candidates: DataLike) -> np.ndarray:
        table = self.read(candidates)
        column = self.item if self.item in table.df.columns else table.df.columns[0]
        ids = [id_text(v) for v in table.df[column]]
        unknown = [i for i in ids if i is not None and i not in self.items_]
        if unknown:
            raise MmfuseError(f"{table.name}: {len(unknown)} candidate item(s) are not in the catalogue "
                              f"the model was fitted with, e.g. {unknown[0]!r}")
        pool = np.unique([self.items_.index[i] for i in ids if i is not None])
        if len(pool) == 0:
            raise MmfuseError(f"{table.name}: no candidate item ids in column {column!r}")
        return pool

    def save(self, path: str | Path) -> None:
        """Writes the model directory (config, weights, the catalogue and the graph)."""
        from mmfuse.estimators.recommender_io import save_recommender

        self.check_fitted()
        self.fingerprint_ = save_recommender(self, Path(path))
        self.model_dir_ = str(Path(path).resolve())


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise MmfuseError(f"k must be a positive whole number, got {k!r}")


def _split(inter: Interactions, fraction: float, seed: int) -> tuple[Interactions, tuple[np.ndarray, np.ndarray]]:
    """(training interactions, (users, items) held out): ``fraction`` of the interactions of
    each user with at least 2, never a user's last one."""
    rng = np.random.default_rng(seed)
    held = np.zeros(len(inter), dtype=bool)
    order = np.argsort(inter.users, kind="stable")
    bounds = np.flatnonzero(np.diff(inter.users[order])) + 1
    for group in np.split(order, bounds):
        take = int(np.floor(fraction * len(group)))
        if len(group) >= 2 and take >= 1:
            held[rng.choice(group, min(take, len(group) - 1), replace=False)] = True
    keep = ~held
    train = Interactions(inter.users[keep], inter.items[keep],
                         None if inter.ratings is None else inter.ratings[keep])
    return train, (inter.users[held], inter.items[held])


def _prepared(inter: Interactions, num_users: int, num_items: int, friends: Neighbours | None,
              content: TensorData | None, attributes: TensorData | None,
              known: np.ndarray | None = None) -> Prepared:
    history = Neighbours.from_pairs(inter.users, inter.items, num_users)
    popularity = np.bincount(inter.items, minlength=num_items)
    return Prepared(history, friends, content, attributes,
                    popularity > 0 if known is None else known, popularity)


def _scatter(enc: Encoded, positions: np.ndarray, n: int) -> Encoded:
    inputs = {m: np.zeros((n, *x.shape[1:]), dtype=x.dtype) for m, x in enc.inputs.items()}
    mask = {m: np.zeros(n, dtype=bool) for m in enc.mask}
    for m in inputs:
        inputs[m][positions] = enc.inputs[m]
        mask[m][positions] = enc.mask[m]
    return Encoded(inputs, mask, np.arange(n, dtype=np.int64), None, [])


def _specs(pipeline: Pipeline | None) -> Any:
    return None if pipeline is None else pipeline.preprocessor.input_specs()


class _PairScore:
    """The value function of an explanation: the cosine score of (user, item) pairs with only
    the present signals (the same coalition for every pair)."""

    def __init__(self, est: MultimodalRecommender, rows: np.ndarray, items: np.ndarray) -> None:
        self.est, self.rows, self.items = est, rows, items
        self.num_samples = len(rows)

    def __call__(self, present: dict[str, np.ndarray]) -> np.ndarray:
        from mmfuse.recommend.ranking import item_vectors, user_vectors

        coalition = {p: bool(np.asarray(v).all()) for p, v in present.items()}
        model, data = self.est.model_, self.est.data_
        vectors = item_vectors(model, data, coalition)
        users = user_vectors(model, data, self.rows, vectors, coalition)
        return (users * vectors[self.items]).sum(1).double().numpy()
