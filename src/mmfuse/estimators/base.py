"""The shared estimator: a Pipeline (table -> schema -> preprocessing) -> builder -> trainer.

``__init__`` only stores parameters (sklearn's contract); everything is validated in ``fit``;
learned state ends in ``_``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mmfuse.data.preprocess import Encoded, Preprocessor, Rejection, summarise_rejections
from mmfuse.data.readers import Table
from mmfuse.errors import MmfuseError
from mmfuse.estimators.pipeline import Pipeline, split_encoded, split_table, take_records
from mmfuse.estimators.facade import DataLike, Facade
from mmfuse.params import EstimatorParams, takes_params

if TYPE_CHECKING:
    from mmfuse.models.fitted import FittedModel

@takes_params(EstimatorParams)
class MultimodalEstimator(Facade):
    """Base class of MultimodalClassifier and MultimodalRegressor.

    The parameters are declared once, with their defaults and help, in
    ``mmfuse.params.EstimatorParams`` (the CLI's flags come from the same declarations); see
    ``help(MultimodalClassifier.__init__)``. Pretrained encoders are chosen with ``encoders``:
    ``image=efficientnet-lite0``, ``video=efficientnet-lite0``, ``text=minilm``, ``audio=voice``.
    """

    _task = "classification"

    def __sklearn_tags__(self) -> Any:
        """scikit-learn's tags: a classifier or regressor that takes a DataFrame of mixed
        columns (strings, paths, media) and needs ``y``."""
        from sklearn.utils import InputTags, Tags, TargetTags

        return Tags(
            estimator_type="regressor" if self._task == "regression" else "classifier",
            target_tags=TargetTags(required=True),
            input_tags=InputTags(two_d_array=True, string=True, categorical=True, allow_nan=True),
            non_deterministic=self.device != "cpu",
        )

    # ---------------------------------------------------------------- fitting
    def fit(
        self,
        data: DataLike,
        y: Any = None,
        *,
        target: str | None = None,
        valid: DataLike | None = None,
        out_dir: str | Path | None = None,
        resume: bool = False,
    ) -> MultimodalEstimator:
        """Infers the schema, preprocesses, trains and evaluates on validation data.

        Either scikit-learn's ``fit(X, y)`` or mmfuse's ``fit(table, target="label")``.

        Args:
            data: Training records (file path or DataFrame); with ``y``, the features only.
            y: The targets (array or Series, one per row of ``data``), or the target column's
                name (``fit(df, "label")``).
            target: The target column of ``data``.
            valid: Validation records; None holds out ``valid_fraction`` of ``data``.
            out_dir: If given, per-epoch checkpoints go to ``out_dir/checkpoint`` and the
                finished model is saved to ``out_dir``.
            resume: Continue from the checkpoint in ``out_dir``.
        """
        from mmfuse.training import distributed

        data, target = with_target_column(data, y, target)
        if distributed.is_distributed() and out_dir is None:
            raise MmfuseError("training on several processes (torchrun) needs out_dir (--out): the "
                              "processes share their prepared records and the first writes the model there")
        joined = distributed.start(self.device)
        try:
            if out_dir is None or not distributed.is_main():  # only the first process locks and writes
                self.verbose = self.verbose and distributed.is_main()
                return self._fit(data, target, valid, out_dir, resume)
            from mmfuse.estimators.output_dir import directory_lock

            with directory_lock(out_dir):
                return self._fit(data, target, valid, out_dir, resume)
        finally:
            if joined:
                distributed.stop()

    def _fit(
        self, data: DataLike, target: str, valid: DataLike | None, out_dir: str | Path | None,
        resume: bool,
    ) -> MultimodalEstimator:
        from mmfuse.estimators.streaming import record_folder
        from mmfuse.estimators.training import train_config
        from mmfuse.training import distributed
        from mmfuse.training.device import set_threads

        started = time.perf_counter()
        train_config(self.frozen_params())  # checks every training setting first, preset or not
        set_threads(self.num_threads)
        if self.time_limit is not None and not 0 < self.time_limit < float("inf"):
            raise MmfuseError(f"--time-limit must be a positive number of seconds, got {self.time_limit}")
        table = self.read(data)
        if table.df.empty:
            header = " (the file has a header line only)" if len(table.df.columns) else ""
            raise MmfuseError(f"{table.name}: no records to train on{header}")
        for stale in ("search_", "leaderboard_"):  # an earlier fit's search is not this one's
            self.__dict__.pop(stale, None)
        preset = self._preset_to_run(table, target, resume)
        if preset is not None:
            from mmfuse.search.halving import fit_preset

            return fit_preset(self, table, target, valid, out_dir, started, preset)
        shared = Path(out_dir) / ".records" if distributed.active() and out_dir is not None else None
        with record_folder(self.store_dir, shared) as folder:
            pre, train_enc, valid_enc = self.prepared(table, target, valid, folder)
            del table  # prepared: its cells (a Python string per path or text) need not outlive it
            deadline = None if self.time_limit is None else started + self.time_limit
            return self.fit_encoded(pre, train_enc, valid_enc, out_dir, resume, deadline)

    def resolved_preset(self, resume: bool = False) -> str | None:
        """The preset a fit runs, None for one model (``search.presets.preset_to_run``)."""
        from mmfuse.search.presets import preset_to_run

        return preset_to_run(self.frozen_params(), resume)

    def _preset_to_run(self, table: Table, target: str, resume: bool) -> str | None:
        """``resolved_preset``, refused where a preset cannot run (``--resume``, ``--stream``,
        several processes, records that would not fit in memory); "auto" fits one model there."""
        from mmfuse._hints import option
        from mmfuse._progress import log
        from mmfuse.training import distributed

        preset = self.resolved_preset(resume)
        if preset is None:
            return None
        if resume:
            raise MmfuseError("--resume does not apply to --preset: a preset's search is not "
                              "checkpointed; run it again without --resume")
        if self.stream or distributed.is_distributed():
            raise MmfuseError("--preset keeps its records in memory and runs in one process; "
                              "drop --stream (or torchrun), or fit one model without --preset")
        short = self._memory_shortfall(table, target)
        if short is not None and self.preset != "auto":
            raise MmfuseError(f"{option('preset', preset)} holds every prepared record in memory, "
                              f"but {short}; fit one model, which streams them from disk "
                              f"({option('preset', 'none')})")
        if short is not None:
            log(f"one model, not the {preset} preset: {short}", self.verbose)
            return None  # its records are streamed
        return preset

    def _memory_shortfall(self, table: Table, target: str) -> str | None:
        """Why ``table``'s prepared records would not fit in memory
        (``streaming.memory_shortfall``), or None, from a preprocessing fitted on it (a fraction
        of a second: no media is decoded)."""
        from mmfuse.estimators.streaming import memory_shortfall

        # quiet, no feature cache: the fit that follows opens it and says what it prepares
        sizing = dataclasses.replace(self.frozen_params(), verbose=False, use_cache=False)
        pipeline = Pipeline.plan(table, target, self._resolve_task(table, target), sizing)
        pipeline.fit(table)
        return memory_shortfall(len(table.df), pipeline.preprocessor.input_specs())

    def prepared(self, table: Table, target: str, valid: DataLike | None, folder: Path | None = None,
                 ) -> tuple[Preprocessor, Encoded, Encoded]:
        """The fitted preprocessing and the training and validation records of ``table`` (with
        ``valid``: those records; else ``valid_fraction`` of ``table`` held out). With a
        ``folder``, records too big for memory (or all, with ``stream``) are streamed there."""
        from mmfuse.estimators.streaming import prepared_streamed, should_stream

        pipeline = Pipeline.plan(table, target, self._resolve_task(table, target), self)
        train_table, valid_table = self._split(table, valid, pipeline.schema.target)
        pipeline.fit(train_table, everything=table)
        rows = len(table.df) + (len(valid_table.df) if valid is not None else 0)
        if folder is not None and should_stream(rows, pipeline.preprocessor.input_specs(), self.stream, self.verbose):
            if valid is not None:
                parts = prepared_streamed(pipeline, {"train": train_table, "valid": valid_table}, None, folder)
            else:  # the split's row numbers are all it needs of the two parts' tables
                train_rows = train_table.df.index.to_numpy()
                del train_table, valid_table
                parts = prepared_streamed(pipeline, {"all": table}, train_rows, folder)
            return pipeline.preprocessor, *parts
        if valid is None:  # one pass over the whole table reports every bad record at once
            train_enc, valid_enc = split_encoded(pipeline.prepare(table), train_table.df.index.to_numpy())
        else:
            train_enc, valid_enc = pipeline.prepare(train_table), pipeline.prepare(valid_table)
        return pipeline.preprocessor, train_enc, valid_enc

    def fit_encoded(
        self,
        pre: Preprocessor,
        train: Encoded,
        valid: Encoded,
        out_dir: str | Path | None = None,
        resume: bool = False,
        deadline: float | None = None,
    ) -> MultimodalEstimator:
        """Trains on already prepared records (used to share preprocessing across fits);
        no epoch starts that would end after ``deadline`` (a ``time.perf_counter()`` value)."""
        from mmfuse.estimators.training import train_model
        from mmfuse.evaluation.scoring import score
        from mmfuse.training.distributed import is_main

        if len(train) == 0 or len(valid) == 0:
            raise MmfuseError("no training or validation records left after removing bad ones")
        started = time.perf_counter()
        self.preprocessor_ = pre
        self.schema_ = pre.schema
        self.rejected_ = train.rejected + valid.rejected
        trained = train_model(self.frozen_params(), pre, train, valid, out_dir, resume, deadline)
        self.model_, self.model_config_, self.train_config_ = trained.model, trained.config, trained.train_config
        self.history_, self.kept_epoch_ = trained.history, trained.kept_epoch
        self.calibration_ = trained.calibration
        self.train_seconds_ = time.perf_counter() - started
        self.n_train_, self.n_valid_ = len(train), len(valid)
        self.metrics_ = score(self.fitted_model, valid)
        if out_dir is not None and is_main():
            self.save(out_dir)
        return self

    def _split(self, table: Table, valid: DataLike | None, target: str | None) -> tuple[Table, Table]:
        if valid is not None:
            valid_table = self.read(valid)
            if valid_table.df.empty:
                raise MmfuseError(f"{valid_table.name}: no validation records (--valid)")
            return table, valid_table
        labels = None
        if target and self._task == "classification":  # object dtype: undecodable bytes stay
            names = np.array([str(v) for v in table.df[target]], dtype=object)
            labels = pd.factorize(names, sort=True)[0]  # codes in np.unique's order: the same split,
            # without sorting a million strings twice (np.unique, then the stratified split)
        return split_table(table, self.valid_fraction, self.seed, labels)

    def _resolve_task(self, table: Table, target: str) -> str:
        return self._task

    # ------------------------------------------------------------- predicting
    @property
    def fitted_model(self) -> FittedModel:
        """The fitted model as one value (for evaluation, explanation and serving)."""
        from mmfuse.models.fitted import FittedModel

        self.check_fitted()
        return FittedModel(self.model_, self.model_config_, self.preprocessor_, self.batch_size,
                           self.num_threads, self.on_bad_record, self.missing_files)

    def prepare(self, data: DataLike, with_target: bool = True) -> Encoded:
        """``data`` as the model's inputs (arrays, presence masks, targets where present)."""
        pipeline = self.pipeline_
        return pipeline.prepare(self.read(data), with_target=with_target)

    def score_prepared(self, enc: Encoded) -> dict[str, float]:
        """Every metric of the task on prepared, labelled records."""
        from mmfuse.evaluation.scoring import score

        return score(self.fitted_model, enc)

    def _outputs(self, data: DataLike, with_target: bool = False
                 ) -> tuple[np.ndarray, Encoded, dict[str, np.ndarray]]:
        """Raw model outputs (probabilities / standardised values) for the kept records, those
        records (their row numbers and rejections: streamed inputs are gone by then) and the
        modalities the guard distrusted in each (``FittedModel.run``)."""
        table = self.read(data)
        with self._records(table, with_target) as enc:
            outputs, distrusted = self.fitted_model.run(enc)
            finite = np.isfinite(outputs.reshape(len(enc), -1)).all(axis=1)
            if finite.all():
                return outputs, enc, distrusted
            outputs, enc = self._drop_non_finite(table, enc, outputs, finite)
            return outputs, enc, {m: v[finite] for m, v in distrusted.items()}

    def _distrusted_column(self, distrusted: dict[str, np.ndarray]) -> dict[str, list[str]]:
        """``{"distrusted": [...]}``: for each record, the modalities the guard treated as
        missing, joined by ";" ("" for none); empty for a model without a guard."""
        if not self.model_config_.guarded:
            return {}
        names = sorted(distrusted)
        n = len(next(iter(distrusted.values()))) if names else 0
        return {"distrusted": [";".join(m for m in names if distrusted[m][i]) for i in range(n)]}

    @contextmanager
    def _records(self, table: Table, with_target: bool) -> Iterator[Encoded]:
        """The prepared records of ``table``: in memory, or streamed to disk for the block's
        duration when they would not fit comfortably (or with ``stream``), as ``fit`` does."""
        from mmfuse.estimators.streaming import prepare_streamed, record_folder, should_stream

        pipeline = self.pipeline_
        if not should_stream(len(table.df), pipeline.preprocessor.input_specs(), self.stream, self.verbose):
            yield pipeline.prepare(table, with_target=with_target)
            return
        with record_folder(self.store_dir, None) as folder:
            yield prepare_streamed(pipeline, table, folder, with_target=with_target)

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
        self.check_fitted()
        table = self.read(data)
        outputs, enc, _ = self._outputs(table)
        if len(enc) == len(table.df):
            return outputs
        full = np.full((len(table.df),) + outputs.shape[1:], np.nan, dtype=np.float64)
        full[table.df.index.get_indexer(enc.rows)] = outputs
        return full

    def evaluate(self, data: DataLike, y: Any = None) -> dict[str, float]:
        """Metrics on labelled records: a table with the target column, or features and ``y``."""
        if y is not None:
            self.check_fitted()
            data, _ = with_target_column(data, y, self.schema_.target)
        self.check_fitted()
        with self._records(self.read(data), with_target=True) as enc:
            return self.score_prepared(enc)

    def explain(
        self, data: DataLike, out_dir: str | Path | None = None, sample: int | None = None
    ) -> pd.DataFrame:
        """Per-record Shapley values of the modalities (index: data row; at most 2000 records).

        ``.attrs["summary"]`` holds the means with 95% intervals, ablation deltas (when
        ``data`` has the target) and fusion weights. ``out_dir`` receives contributions.json
        and .png; ``sample`` (a data row) adds occlusion maps under ``out_dir/samples``.
        """
        from mmfuse.estimators.explain import explain

        pipeline, fitted = self.pipeline_, self.fitted_model
        result = explain(fitted, pipeline, data, None if out_dir is None else Path(out_dir), sample,
                         seed=self.seed)
        frame: pd.DataFrame = result["values"]
        frame.attrs["summary"] = result["summary"]
        return frame

    def save(self, path: str | Path) -> None:
        """Writes the model directory (config.json, model.safetensors, preprocess.json, ...)."""
        from mmfuse.estimators.io import model_record, save_model

        self.check_fitted()
        save_model(model_record(self), path)


def with_target_column(data: DataLike, y: Any, target: str | None) -> tuple[DataLike, str]:
    """(table, target column) from either ``fit(X, y)`` or ``fit(table, target=...)``."""
    if isinstance(y, str):
        if target is not None and target != y:
            raise MmfuseError(f"two targets given: {y!r} and target={target!r}")
        return data, y
    if y is None:
        if target is None:
            raise MmfuseError("fit needs the targets: fit(X, y) or fit(table, target=\"column\")")
        return data, target
    if not isinstance(data, pd.DataFrame):
        raise MmfuseError("fit(X, y) takes X as a pandas DataFrame (or give a table with its target column)")
    labels = pd.Series(np.asarray(y, dtype=object) if not isinstance(y, pd.Series) else y.to_numpy())
    if len(labels) != len(data):
        raise MmfuseError(f"X has {len(data)} rows but y has {len(labels)}")
    name = target or (y.name if isinstance(y, pd.Series) and y.name is not None else "target")
    if name in data.columns:
        raise MmfuseError(f"X already has a column {name!r}; name the target otherwise (target=...)")
    return data.reset_index(drop=True).assign(**{str(name): labels.to_numpy()}), str(name)
