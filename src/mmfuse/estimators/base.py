"""The shared estimator: table -> schema -> preprocessing -> builder -> trainer.

``__init__`` only stores parameters (sklearn's contract); everything is validated in ``fit``;
learned state ends in ``_``.
"""

from __future__ import annotations

import inspect
import time
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import pandas as pd

from mmfuse._progress import log
from mmfuse.data.preprocess import Encoded, PreprocessConfig, Preprocessor, Rejection, summarise_rejections
from mmfuse.data.readers import Table, read_table
from mmfuse.data.schema import Schema, infer_schema
from mmfuse.errors import MmfuseError

DataLike: TypeAlias = "str | Path | pd.DataFrame | Table"


class MultimodalEstimator:
    """Base class of MultimodalClassifier and MultimodalRegressor.

    Args:
        fusion: Fusion operator name (None: the level's default; see ``mmfuse list fusions``).
        level: "early", "feature" or "late" (None: from the fusion, else "feature").
        encoders: Encoder per modality or kind, e.g. ``{"text": "transformer"}`` or
            ``"text=transformer,audio=gru"``; pretrained ones: ``image=efficientnet-lite0``,
            ``video=efficientnet-lite0``, ``text=minilm``, ``audio=voice``.
        pretrained: Use the pretrained image and text encoders by default where their
            packages are installed (else, or when False: from-scratch encoders).
        finetune: Modalities or kinds whose pretrained network is trained too (at a lower
            learning rate), e.g. ``"image"``; the others stay frozen.
        cache_dir: Feature cache of frozen pretrained encoders (None: ``$MMFUSE_CACHE_DIR``
            or ``~/.cache/mmfuse``).
        use_cache: Read and write the feature cache.
        epochs: Maximum epochs (early stopping may end sooner).
        batch_size: Records per step.
        lr: Learning rate (AdamW).
        weight_decay: AdamW weight decay.
        patience: Early-stopping patience in epochs.
        dim: Width of embeddings and of the fused vector.
        seed: Random seed (same data + seed -> same model on CPU).
        device: "auto", "cpu" or "cuda".
        augment: "none", "light" or "strong" training-time augmentation.
        modality_dropout: Probability of hiding each modality of a training sample.
        on_bad_record: "raise" or "skip" (skipped records are listed in ``rejected_``).
        missing_files: "error" or "missing" (a missing media file = a missing modality).
        kinds: Column kind overrides, e.g. ``{"zip": "categorical"}``.
        features: Columns to use (None: all but the target).
        image_size: Side of the square images fed to image encoders.
        valid_fraction: Share of the training data held out for validation when no
            validation data is given.
        num_threads: CPU threads for torch and media decoding (None: all cores).
        verbose: Print progress.
        allow_missing_columns: At predict/evaluate time, a feature column the model was
            trained on that is absent from the table is a missing modality (said once) rather
            than an error.
    """

    _task = "classification"

    def __init__(
        self,
        fusion: str | None = None,
        level: str | None = None,
        encoders: str | dict[str, str] | None = None,
        pretrained: bool = True,
        finetune: str | list[str] | None = None,
        cache_dir: str | None = None,
        use_cache: bool = True,
        epochs: int = 30,
        batch_size: int = 64,
        lr: float = 2e-3,
        weight_decay: float = 1e-4,
        patience: int = 6,
        dim: int = 128,
        seed: int = 0,
        device: str = "auto",
        augment: str = "light",
        modality_dropout: float = 0.0,
        on_bad_record: str = "raise",
        missing_files: str = "error",
        kinds: str | dict[str, str] | None = None,
        features: list[str] | None = None,
        image_size: int = 32,
        valid_fraction: float = 0.2,
        num_threads: int | None = None,
        verbose: bool = True,
        allow_missing_columns: bool = False,
    ) -> None:
        self.fusion = fusion
        self.level = level
        self.encoders = encoders
        self.pretrained = pretrained
        self.finetune = finetune
        self.cache_dir = cache_dir
        self.use_cache = use_cache
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.patience = patience
        self.dim = dim
        self.seed = seed
        self.device = device
        self.augment = augment
        self.modality_dropout = modality_dropout
        self.on_bad_record = on_bad_record
        self.missing_files = missing_files
        self.kinds = kinds
        self.features = features
        self.image_size = image_size
        self.valid_fraction = valid_fraction
        self.num_threads = num_threads
        self.verbose = verbose
        self.allow_missing_columns = allow_missing_columns

    # ------------------------------------------------------------ sklearn API
    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Constructor parameters and their current values."""
        names = inspect.signature(MultimodalEstimator.__init__).parameters
        return {name: getattr(self, name) for name in names if name != "self"}

    def set_params(self, **params: Any) -> MultimodalEstimator:
        """Sets constructor parameters; unknown names raise."""
        valid = self.get_params()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(f"unknown parameter {name!r}; valid: {', '.join(valid)}")
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        defaults = MultimodalEstimator(**{}).get_params()
        changed = {k: v for k, v in self.get_params().items() if v != defaults[k]}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in changed.items())})"

    # ---------------------------------------------------------------- fitting
    def fit(
        self,
        data: DataLike,
        target: str,
        valid: DataLike | None = None,
        out_dir: str | Path | None = None,
        resume: bool = False,
    ) -> MultimodalEstimator:
        """Infers the schema, preprocesses, trains and evaluates on validation data.

        Args:
            data: Training records (file path or DataFrame).
            target: Target column.
            valid: Validation records; None holds out ``valid_fraction`` of ``data``.
            out_dir: If given, per-epoch checkpoints go to ``out_dir/checkpoint`` and the
                finished model is saved to ``out_dir``.
            resume: Continue from the checkpoint in ``out_dir``.
        """
        if out_dir is None:
            return self._fit(data, target, valid, None, resume)
        from mmfuse.estimators.output_dir import directory_lock

        with directory_lock(out_dir):
            return self._fit(data, target, valid, out_dir, resume)

    def _fit(
        self, data: DataLike, target: str, valid: DataLike | None, out_dir: str | Path | None,
        resume: bool,
    ) -> MultimodalEstimator:
        from mmfuse.training.device import set_threads
        from mmfuse.training.trainer import check_seed

        check_seed(self.seed)
        set_threads(self.num_threads)
        table = read_table(data)
        if table.df.empty:
            header = " (the file has a header line only)" if len(table.df.columns) else ""
            raise MmfuseError(f"{table.name}: no records to train on{header}")
        try:
            schema = infer_schema(table.df, target, self.kinds, self.features, table.base_dir)
        except MmfuseError as err:
            raise MmfuseError(f"{table.name}: {err}") from None
        train_table, valid_table = self._split(table, valid, schema)
        pre = self._preprocessor(schema, self._resolve_task(table, target))
        pre.fit(train_table)
        if pre.target is not None and pre.target.task == "classification":
            # the class list is not a feature statistic: take it from every record, so a rare
            # class that fell into the validation split is still known
            pre.target.fit(table.df[target], target)
        self._log_schema(schema, pre)
        if valid is None:  # one pass over the whole table reports every bad record at once
            encoded = self._encode(pre, table)
            in_train = np.isin(encoded.rows, train_table.df.index.to_numpy())
            train_enc, valid_enc = take_records(encoded, in_train), take_records(encoded, ~in_train)
            valid_enc.rejected = []  # listed once, with the training part
        else:
            train_enc = self._encode(pre, train_table)
            valid_enc = self._encode(pre, valid_table)
        return self.fit_encoded(pre, train_enc, valid_enc, out_dir, resume)

    def fit_encoded(
        self,
        pre: Preprocessor,
        train: Encoded,
        valid: Encoded,
        out_dir: str | Path | None = None,
        resume: bool = False,
    ) -> MultimodalEstimator:
        """Trains on already preprocessed records (used to share preprocessing across fits)."""
        from mmfuse.estimators.training import train_model

        if len(train) == 0 or len(valid) == 0:
            raise MmfuseError("no training or validation records left after removing bad ones")
        started = time.perf_counter()
        self.preprocessor_ = pre
        self.schema_ = pre.schema
        self.rejected_ = train.rejected + valid.rejected
        result = train_model(self, pre, train, valid, out_dir, resume)
        self.model_, self.model_config_, self.train_config_, self.history_ = result
        self.train_seconds_ = time.perf_counter() - started
        self.n_train_, self.n_valid_ = len(train), len(valid)
        self.metrics_ = self._evaluate_encoded(valid)
        if out_dir is not None:
            from mmfuse.estimators.io import save_model

            save_model(self, out_dir)
        return self

    def _split(self, table: Table, valid: DataLike | None, schema: Schema) -> tuple[Table, Table]:
        if valid is not None:
            valid_table = read_table(valid)
            if valid_table.df.empty:
                raise MmfuseError(f"{valid_table.name}: no validation records (--valid)")
            return table, valid_table
        from sklearn.model_selection import train_test_split

        index = np.arange(len(table.df))
        labels = None
        if schema.target:  # object dtype: pandas' string dtype rejects undecodable bytes
            labels = np.array([str(v) for v in table.df[schema.target]], dtype=object)
        stratify = labels if self._task == "classification" and stratifiable(labels, self.valid_fraction) else None
        train_idx, valid_idx = train_test_split(
            index, test_size=self.valid_fraction, random_state=self.seed, stratify=stratify
        )
        sub = lambda idx: Table(table.df.iloc[np.sort(idx)], table.base_dir, table.name)  # noqa: E731
        first = sub(train_idx)
        first.bad_lines = table.bad_lines
        return first, sub(valid_idx)

    def _resolve_task(self, table: Table, target: str) -> str:
        return self._task

    def _preprocess_config(self) -> PreprocessConfig:
        return PreprocessConfig(image_size=self.image_size)

    def _preprocessor(self, schema: Schema, task: str | None) -> Preprocessor:
        """An unfitted Preprocessor for ``schema``, with the pretrained networks attached."""
        from mmfuse.estimators.pretrained import attach_extractors, plan_pretrained

        plan = plan_pretrained(self, schema.modalities())
        pre = Preprocessor(schema, self._preprocess_config(), task, plan)
        attach_extractors(pre, self)
        return pre

    def _encode(
        self, pre: Preprocessor, table: Table, with_target: bool = True, on_bad_record: str | None = None
    ) -> Encoded:
        from mmfuse.training.device import set_threads

        self._check_columns(pre.schema, table)
        return pre.transform(
            table,
            with_target=with_target,
            on_bad_record=on_bad_record or self.on_bad_record,
            missing_files=self.missing_files,
            num_threads=set_threads(self.num_threads),
            verbose=self.verbose,
        )

    def _check_columns(self, schema: Schema, table: Table) -> None:
        """Every feature column the model uses is in the table, unless missing ones are allowed."""
        missing = [c for c in schema.kinds if c not in table.df.columns]
        if not missing:
            return
        names = ", ".join(map(repr, missing))
        if not self.allow_missing_columns:
            raise MmfuseError(
                f"{table.name}: the model's feature column(s) {names} are not in this table (its "
                f"columns: {', '.join(map(str, table.df.columns))}). Add them, or pass "
                "--allow-missing-columns (Python: allow_missing_columns=True) to predict "
                "without them, as missing modalities"
            )
        log(f"note: {table.name} lacks the feature column(s) {names}: they count as missing "
            "for every record (--allow-missing-columns)")

    def _log_schema(self, schema: Schema, pre: Preprocessor) -> None:
        if not self.verbose:
            return
        mods = ", ".join(
            f"{m} ({k}{', ' + pre.pretrained[m].backbone if m in pre.pretrained else ''})"
            for m, k in pre.modalities.items()
        )
        log(f"modalities: {mods}")
        for col, why in schema.ignored.items():
            log(f"ignoring column {col!r}: {why}")

    # ------------------------------------------------------------- predicting
    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise MmfuseError(f"this {type(self).__name__} is not fitted yet; call fit first")

    def _outputs(self, data: DataLike, with_target: bool = False) -> tuple[np.ndarray, Encoded]:
        """Raw model outputs (probabilities / standardised values) for the kept records."""
        from mmfuse.estimators.training import predict_outputs

        self._check_fitted()
        table = read_table(data)
        enc = self._encode(self.preprocessor_, table, with_target=with_target)
        outputs = predict_outputs(self, enc)
        finite = np.isfinite(outputs.reshape(len(enc), -1)).all(axis=1)
        if finite.all():
            return outputs, enc
        return self._drop_non_finite(table, enc, outputs, finite)

    def _drop_non_finite(
        self, table: Table, enc: Encoded, outputs: np.ndarray, finite: np.ndarray
    ) -> tuple[np.ndarray, Encoded]:
        """Records whose output is NaN/inf are bad records: raised, or skipped and listed."""
        reason = ("the model's output is not finite for this record (an input far outside the "
                  "training data?)")
        bad = [Rejection(int(r), "", reason, table.name) for r in enc.rows[~finite]]
        if self.on_bad_record != "skip":
            raise MmfuseError(summarise_rejections(table.name, bad))
        kept = take_records(enc, finite)
        kept.rejected = sorted(kept.rejected + bad, key=lambda r: (r.row, r.column))
        return outputs[finite], kept

    def _aligned_outputs(self, data: DataLike) -> np.ndarray:
        """Outputs with one entry per input record, in order; NaN for skipped bad records."""
        self._check_fitted()
        table = read_table(data)
        outputs, enc = self._outputs(table)
        if len(enc) == len(table.df):
            return outputs
        full = np.full((len(table.df),) + outputs.shape[1:], np.nan, dtype=np.float64)
        full[table.df.index.get_indexer(enc.rows)] = outputs
        return full

    def _evaluate_encoded(self, enc: Encoded) -> dict[str, float]:
        from mmfuse.estimators.training import predict_outputs
        from mmfuse.evaluation.metrics import task_metrics

        if len(enc) == 0:
            raise MmfuseError("no records to evaluate")
        outputs = predict_outputs(self, enc)
        assert enc.targets is not None
        y_true, y_pred = enc.targets, outputs
        if self._task == "regression":
            target = self.preprocessor_.fitted_target
            y_true, y_pred = target.decode(y_true), target.decode(outputs)
        return task_metrics(self._task, y_true, y_pred)

    def evaluate(self, data: DataLike) -> dict[str, float]:
        """Metrics on labelled records."""
        self._check_fitted()
        enc = self._encode(self.preprocessor_, read_table(data), with_target=True)
        return self._evaluate_encoded(enc)

    def explain(
        self, data: DataLike, out_dir: str | Path | None = None, sample: int | None = None
    ) -> pd.DataFrame:
        """Per-record Shapley values of the modalities (index: data row; at most 2000 records).

        ``.attrs["summary"]`` holds the means with 95% intervals, ablation deltas (when
        ``data`` has the target) and fusion weights. ``out_dir`` receives contributions.json
        and .png; ``sample`` (a data row) adds occlusion maps under ``out_dir/samples``.
        """
        from mmfuse.estimators.explain import explain

        result = explain(self, data, None if out_dir is None else Path(out_dir), sample)
        frame: pd.DataFrame = result["values"]
        frame.attrs["summary"] = result["summary"]
        return frame

    def save(self, path: str | Path) -> None:
        """Writes the model directory (config.json, model.safetensors, preprocess.json, ...)."""
        from mmfuse.estimators.io import save_model

        self._check_fitted()
        save_model(self, path)


def take_records(enc: Encoded, keep: np.ndarray) -> Encoded:
    """The records of ``enc`` where ``keep`` is True (rejections are carried over)."""
    return Encoded(
        {m: x[keep] for m, x in enc.inputs.items()},
        {m: v[keep] for m, v in enc.mask.items()},
        enc.rows[keep],
        None if enc.targets is None else enc.targets[keep],
        list(enc.rejected),
    )


def stratifiable(labels: np.ndarray | None, test_size: float = 0.2) -> bool:
    """Whether a stratified split is possible: every class twice, and room for every class
    on both sides of the split."""
    if labels is None:
        return False
    _, counts = np.unique(labels, return_counts=True)
    held_out = int(np.ceil(test_size * len(labels)))
    enough = held_out >= len(counts) and len(labels) - held_out >= len(counts)
    return bool(len(counts) > 1 and counts.min() >= 2 and enough)
