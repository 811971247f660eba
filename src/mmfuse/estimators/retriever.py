"""MultimodalRetriever: two columns (image-text, audio-text, image-image ...) in one space.

``fit`` trains a dual encoder with symmetric InfoNCE (pretrained encoders frozen by default,
their features cached); ``encode`` embeds a column; ``index`` builds a FAISS index of a
collection; ``search`` embeds a text or a media file and ranks the collection;
``zero_shot`` scores records against label prompts.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from mmfuse._progress import log
from mmfuse.data.preprocess import Encoded
from mmfuse.data.readers import Table
from mmfuse.data.rejections import Rejection
from mmfuse.data.schema import infer_schema
from mmfuse.errors import MmfuseError
from mmfuse.params import RetrieverParams, takes_params
from mmfuse.estimators.facade import DataLike, Facade
from mmfuse.estimators.pipeline import Pipeline, check_valid_fraction, split_encoded, take_records
from mmfuse.estimators.retrieval_query import QueryTower, choose_tower, query_kind

PAIR_KINDS = ("image", "text", "audio", "video", "embedding")


@takes_params(RetrieverParams)
class MultimodalRetriever(Facade):
    """Dual encoder for cross-modal search (SPEC §5).

    Args:
        pair: The two columns, e.g. ``("image", "caption")`` or ``"image,caption"``.
        embed_dim: Width of the shared space.
        temperature: Initial InfoNCE temperature (learned).
        refit: Once validation has chosen the number of epochs (the longest training within one
            standard error of the best validation score), train again on all pairs for that
            many epochs (``metrics_`` stay those of the held-out validation pairs).
        projection: How a pretrained tower reaches the shared space: "linear", "mlp" or "auto"
            (with frozen networks both are trained and validation keeps the better; the choice
            is ``projection_``, the scores ``projection_scores_``).
        The others as for ``MultimodalClassifier`` (``encoders``, ``pretrained``, ``finetune``,
        ``cache_dir``, ``epochs`` ...), with the defaults of ``mmfuse.params.RetrieverParams``.
    """

    _task = "retrieval"

    # A retriever has one tower per side and no fusion; the shared pipeline reads these.
    fusion, level, features, modality_dropout, allow_missing_columns = None, "feature", None, 0.0, False

    # ---------------------------------------------------------------- fitting
    def fit(
        self,
        data: DataLike,
        pair: str | tuple[str, str] | None = None,
        valid: DataLike | None = None,
        out_dir: str | Path | None = None,
        resume: bool = False,
    ) -> MultimodalRetriever:
        """Trains the two towers on the pairs in ``data`` (rows sharing an item are positives)."""
        from mmfuse.estimators.retrieval_training import (
            METRIC, best_projection, check_projection, projection_candidates, projection_scores,
            refit_epochs, train_retrieval,
        )  # fmt: skip
        from mmfuse.training.device import set_threads

        from mmfuse.training.trainer import check_seed

        check_projection(self.projection)
        check_seed(self.seed)
        set_threads(self.num_threads)
        if pair is not None:
            self.pair = pair
        a, b = self.pair_columns()
        table = self.read(data)
        try:
            schema = infer_schema(table.df, None, self.kinds, [a, b], table.base_dir, use_audio_tracks=False)
        except MmfuseError as err:
            raise MmfuseError(f"{table.name}: {err}") from None
        for col in (a, b):
            if schema.kinds[col] not in PAIR_KINDS:
                hint = f" (for short texts that repeat, say so: --kinds {col}=text)" if schema.kinds[col] == "categorical" else ""
                raise MmfuseError(
                    f"--pair column {col!r} is {schema.kinds[col]}; a retrieval side must be one of: "
                    f"{', '.join(PAIR_KINDS)}{hint}"
                )
        table = self._paired_rows(table, a, b)
        train_table, valid_table = self.validation_split(table, valid, schema)
        pipeline = Pipeline.for_schema(schema, None, self).fit(train_table)
        pre = pipeline.preprocessor
        if valid is None:
            encoded = pipeline.prepare(table, with_target=False)
            train, valid_enc = split_encoded(encoded, train_table.df.index.to_numpy())
            codes = _item_codes(table, a, b)
            train, valid_enc = _with_items(train, codes), _with_items(valid_enc, codes)
        else:
            valid_table = self._paired_rows(valid_table, a, b)
            train = _with_items(pipeline.prepare(train_table, False), _item_codes(train_table, a, b))
            valid_enc = _with_items(pipeline.prepare(valid_table, False), _item_codes(valid_table, a, b))
        started = time.perf_counter()
        self.preprocessor_, self.schema_ = pre, schema
        self.rejected_ = train.rejected + valid_enc.rejected
        if len(train) < 2 or len(valid_enc) < 2:
            raise MmfuseError("retrieval needs at least 2 training and 2 validation pairs")
        candidates = projection_candidates(self, pre)
        runs = {
            p: train_retrieval(self, pre, train, valid_enc, out_dir, resume, projection=p,
                               checkpoint_name="checkpoint" if len(candidates) == 1 else f"checkpoint-{p}")
            for p in candidates
        }  # fmt: skip
        histories = {p: run.history for p, run in runs.items()}
        self.projection_, self.projection_scores_ = best_projection(histories), projection_scores(histories)
        if self.verbose and len(candidates) > 1:
            scores = ", ".join(f"{p} {v:.4f}" for p, v in self.projection_scores_.items())
            log(f"projection: {self.projection_} (best validation {METRIC}: {scores})")
        chosen = runs[self.projection_]
        self.model_, self.model_config_, self.train_config_ = chosen.model, chosen.config, chosen.train_config
        self.history_, self.kept_epoch_ = chosen.history, chosen.kept_epoch
        self.fingerprint_ = self.model_dir_ = None  # new weights: not those of any saved model
        self.n_train_, self.n_valid_ = len(train), len(valid_enc)
        self.metrics_ = self._pair_metrics(valid_enc)  # held-out pairs, before any refit
        self.refit_epochs_ = 0
        if self.refit:
            self.refit_epochs_ = refit_epochs(self.history_, len(valid_enc))
            everything = _concat_pairs(train, valid_enc, same_items=valid is None)
            self.model_ = train_retrieval(
                self, pre, everything, valid_enc, None, False, self.refit_epochs_, self.projection_
            ).model
        self.train_seconds_ = time.perf_counter() - started
        if out_dir is not None:
            self.save(out_dir)
        return self

    def pair_columns(self) -> tuple[str, str]:
        """(side A, side B) column names from ``pair``."""
        pair = self.pair.split(",") if isinstance(self.pair, str) else list(self.pair or [])
        pair = [p.strip() for p in pair]
        if len(pair) != 2 or not all(pair) or pair[0] == pair[1]:
            raise MmfuseError(
                f"--pair needs two different columns, e.g. --pair image,caption; got {self.pair!r}"
            )
        return pair[0], pair[1]

    def _paired_rows(self, table: Table, a: str, b: str) -> Table:
        from mmfuse.data.cells import is_empty

        for col in (a, b):
            if col not in table.df.columns:
                raise MmfuseError(f"{table.name}: --pair column {col!r} is missing; columns: {', '.join(table.df.columns)}")
        empty = table.df[[a, b]].map(is_empty).any(axis=1)
        if empty.any() and self.verbose:
            log(f"{table.name}: {int(empty.sum())} row(s) lack {a!r} or {b!r} and form no pair; left out")
        kept = Table(table.df[~empty], table.base_dir, table.name)
        kept.bad_lines = table.bad_lines
        return kept

    def validation_split(
        self, table: Table, valid: DataLike | None = None, schema: Any = None
    ) -> tuple[Table, Table]:
        """(train, validation) pairs: ``valid`` when given, else whole items of one side held out
        (see ``_item_side``), so no item is on both sides of the split."""
        if valid is not None:
            return table, self.read(valid)
        from sklearn.model_selection import GroupShuffleSplit

        a, b = self.pair_columns()
        items = _item_side(table.df, a, b, getattr(schema, "kinds", None))
        groups = pd.factorize(table.df[items].astype(str))[0]
        if len(np.unique(groups)) < 4:
            raise MmfuseError(
                f"{table.name}: retrieval needs at least 4 distinct {items!r} values to hold some "
                "out for validation (or pass validation data)"
            )
        check_valid_fraction(self.valid_fraction, len(np.unique(groups)), table.name)
        split = GroupShuffleSplit(1, test_size=self.valid_fraction, random_state=self.seed)
        train_idx, valid_idx = next(split.split(groups, groups=groups))
        sub = lambda idx: Table(table.df.iloc[np.sort(idx)], table.base_dir, table.name)  # noqa: E731
        first = sub(train_idx)
        first.bad_lines = table.bad_lines
        return first, sub(valid_idx)

    # ---------------------------------------------------------------- using
    @torch.no_grad()
    def encode(self, data: DataLike, column: str | None = None) -> np.ndarray:
        """(N, embed_dim) unit vectors of one column (default: side A), for the kept rows."""
        vectors, _ = self.encode_table(self.read(data), column or self.pair_columns()[0])
        return vectors

    def encode_table(
        self, table: Table, column: str, tower: str | None = None, on_bad_record: str | None = None,
        allow_empty: bool = False,
    ) -> tuple[np.ndarray, Encoded]:
        """Embeddings of ``column`` through ``tower`` (default: the tower of that name), and the
        embedded records' row numbers and rejections (an ``Encoded`` without inputs);
        ``allow_empty``: see ``Pipeline.prepare``. The column is prepared and embedded a chunk
        at a time (``streaming.prepared_chunks``), so a million images take their vectors'
        memory, not their pixels'."""
        from mmfuse.estimators.retrieval_training import embed_encoded
        from mmfuse.estimators.streaming import prepared_chunks

        self.check_fitted()
        tower = tower or column
        if tower not in self.model_config_.pair:
            raise MmfuseError(f"this model embeds {' and '.join(self.model_config_.pair)}, not {tower!r}")
        if column not in table.df.columns:
            raise MmfuseError(f"{table.name}: column {column!r} is missing; columns: {', '.join(table.df.columns)}")
        df = table.df[[column]].rename(columns={column: tower})
        sub = Table(df, table.base_dir, table.name)
        sub.bad_lines = table.bad_lines
        pipeline = self.pipeline_.restrict([tower])
        pipeline = dataclasses.replace(pipeline, on_bad_record=on_bad_record or pipeline.on_bad_record)
        vectors = np.empty((len(df), self.model_.output_dim), dtype=np.float32)
        rows: list[np.ndarray] = []
        rejected: list[Rejection] = []
        filled = 0
        for chunk in prepared_chunks(pipeline, sub, False, allow_empty, "embedding records"):
            chunk = take_records(chunk, chunk.mask[tower])
            vectors[filled : filled + len(chunk)] = embed_encoded(self.model_, tower, chunk)
            filled += len(chunk)
            rows.append(chunk.rows)
            rejected += chunk.rejected
        kept = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
        return vectors[:filled], Encoded({}, {}, kept, None, rejected)

    def index(
        self,
        data: DataLike,
        column: str,
        out_dir: str | Path | None = None,
        approximate: str | None = None,
        append: bool = False,
    ) -> Any:
        """A VectorIndex of ``column`` (with row ids, the value and every original column)."""
        from mmfuse.estimators.retrieval_index import build_index

        return build_index(self, self.read(data), column, out_dir, approximate, append)

    def search(self, index: Any, query: str, k: int = 10, modality: str | None = None) -> pd.DataFrame:
        """The ``k`` best matches of a text or a media file in ``index`` (a VectorIndex or dir)."""
        from mmfuse.estimators.retrieval_index import search_index

        return search_index(self, index, query, k, modality)

    def embed_query(self, query: str, collection_tower: str, modality: str | None = None) -> np.ndarray:
        """(1, embed_dim) embedding of one query through the tower that matches its modality."""
        kinds = {m: self.preprocessor_.modalities[m] for m in self.model_config_.pair}
        kind = query_kind(query, modality)
        target: QueryTower = choose_tower(kinds, kind, collection_tower)
        df = pd.DataFrame({target.tower: [query]})
        try:
            vectors, _ = self.encode_table(Table(df, Path.cwd(), "query"), target.tower, None, "skip")
        except MmfuseError as err:  # "every record is bad": say why, without advice about rows
            reasons = [line.split(": ", 1)[-1] for line in str(err).splitlines() if "row 0" in line]
            raise MmfuseError(f"the query could not be read as {kind}: {reasons[0] if reasons else err}") from None
        if len(vectors) == 0:
            raise MmfuseError(f"the query {query!r} could not be read as {kind}")
        return vectors

    def zero_shot(self, data: DataLike, labels: list[str], prompt: str = "{}") -> pd.DataFrame:
        """Scores every record against ``labels`` (through the text tower); one row per record."""
        from mmfuse.estimators.retrieval_index import zero_shot

        return zero_shot(self, self.read(data), labels, prompt)

    def evaluate(self, data: DataLike) -> dict[str, Any]:
        """R@1/5/10, MedR and mAP in both directions on the pairs in ``data``."""
        self.check_fitted()
        a, b = self.model_config_.pair
        table = self._paired_rows(self.read(data), a, b)
        enc = self.pipeline_.prepare(table, with_target=False)
        return self._pair_metrics(_with_items(enc, _item_codes(table, a, b)))

    def _pair_metrics(self, enc: Encoded) -> dict[str, Any]:
        from mmfuse.estimators.retrieval_training import embed_encoded
        from mmfuse.retrieval.metrics import bidirectional_metrics

        if len(enc) == 0:
            raise MmfuseError("no pairs to evaluate")
        a, b = self.model_config_.pair
        za, zb = embed_encoded(self.model_, a, enc), embed_encoded(self.model_, b, enc)
        assert enc.targets is not None
        return bidirectional_metrics(za, zb, enc.targets[:, 0], enc.targets[:, 1], (a, b))

    def predict(self, data: DataLike) -> np.ndarray:
        raise MmfuseError("a retrieval model ranks rather than predicts; use search, index or "
                          "zero_shot (mmfuse predict DIR DATA --labels a,b,c)")

    def save(self, path: str | Path) -> None:
        """Writes the model directory (SPEC §4), with retrieval metrics in metrics.json."""
        from mmfuse.estimators.io import model_record, save_model

        self.check_fitted()
        a, b = self.model_config_.pair
        metrics: dict[str, Any] = {
            "task": "retrieval", "pair": [a, b], "modalities": self.preprocessor_.modalities,
            "n_train": self.n_train_, "n_valid": self.n_valid_,
            "train_seconds": round(self.train_seconds_, 3), "epochs_run": len(self.history_),
            "kept_epoch": getattr(self, "kept_epoch_", None),
            "refit_epochs": getattr(self, "refit_epochs_", 0),
            "parameters": self.model_.num_parameters(), "metrics": self.metrics_,
        }  # fmt: skip
        if getattr(self, "projection_scores_", None):
            metrics["projection"] = {"chosen": self.projection_, "valid_recall_mean": self.projection_scores_}
        if getattr(self, "refit_epochs_", 0):
            metrics["note"] = (
                "metrics are those of the held-out validation pairs; the saved model was then "
                f"refit on all {self.n_train_ + self.n_valid_} pairs for {self.refit_epochs_} epochs"
            )
        self.fingerprint_ = save_model(model_record(self, metrics), path)
        self.model_dir_ = str(Path(path).resolve())


def _item_side(df: pd.DataFrame, a: str, b: str, kinds: Mapping[str, str] | None = None) -> str:
    """The side whose items the validation split holds out whole.

    With one text side, the other: the image of five captions, the clip of a transcript that
    several clips repeat (the captions or transcripts are its descriptions; a transcript shared
    by two clips may fall on both sides, as a test set of new recordings would have it).
    Otherwise the side whose values repeat most. No item is trained on and validated on at once.
    """
    if kinds is not None:
        text = [c for c in (a, b) if kinds.get(c) == "text"]
        if len(text) == 1:
            return b if text[0] == a else a
    return b if df[b].astype(str).nunique() < df[a].astype(str).nunique() else a


def _item_codes(table: Table, a: str, b: str) -> pd.DataFrame:
    """Per data row: integer ids of its A value and B value (equal values = same item)."""
    codes = {col: pd.factorize(table.df[col].astype(str))[0] for col in (a, b)}
    return pd.DataFrame(codes, index=table.df.index)[[a, b]]


def _concat_pairs(train: Encoded, valid: Encoded, same_items: bool) -> Encoded:
    """Both sets as one; item ids of a separate validation table are shifted past the training
    ones (its own numbering would otherwise collide with them)."""
    assert train.targets is not None and valid.targets is not None
    shift = 0.0 if same_items else float(train.targets.max()) + 1.0
    return Encoded(
        {m: np.concatenate([train.inputs[m], valid.inputs[m]]) for m in train.inputs},
        {m: np.concatenate([train.mask[m], valid.mask[m]]) for m in train.mask},
        np.concatenate([train.rows, valid.rows]),
        np.concatenate([train.targets, valid.targets + shift]),
    )


def _with_items(enc: Encoded, codes: pd.DataFrame) -> Encoded:
    """Keeps records where both sides decoded; targets = (N, 2) item ids from ``codes``."""
    a, b = codes.columns
    kept = take_records(enc, enc.mask[a] & enc.mask[b])
    kept.targets = codes.loc[kept.rows].to_numpy(dtype=np.float32)
    return kept
