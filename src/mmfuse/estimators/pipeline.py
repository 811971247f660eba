"""A table's way to model inputs, owned by one object.

``Pipeline.plan`` reads the table's schema and decides how each modality is prepared (which
ones feed a packaged pretrained network, with its frozen feature extractor and cache);
``fit`` learns the preprocessing from training records; ``prepare`` turns any table into
arrays plus presence masks, checking its columns and naming every bad value; ``split`` holds
out validation records. ``fit``, ``compare``, the demo and the retriever all go this way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from mmfuse._hints import option
from mmfuse._progress import log
from mmfuse.data.preprocess import Encoded, PreprocessConfig, Preprocessor
from mmfuse.data.readers import Table
from mmfuse.data.schema import Schema, infer_schema
from mmfuse.errors import MmfuseError


class PipelineOptions(Protocol):
    """The parameters a pipeline reads (an estimator, or its ``frozen_params()``): how columns
    are read, which encoders and networks prepare them, and how bad input is handled."""

    kinds: str | dict[str, str] | None
    features: list[str] | None
    allow_missing_columns: bool
    image_size: int
    encoders: str | dict[str, str] | None
    pretrained: bool
    finetune: str | list[str] | None
    cache_dir: str | None
    use_cache: bool
    device: str
    level: str | None
    fusion: str | None
    on_bad_record: str
    missing_files: str
    num_threads: int | None
    verbose: bool


@dataclass
class Pipeline:
    """Schema, per-kind preprocessing and frozen feature sources, plus how bad input is handled.

    Attributes:
        preprocessor: The preprocessing (fitted once ``fit`` ran, or as loaded from a model).
        on_bad_record: "raise" or "skip".
        missing_files: "error" or "missing".
        num_threads: Threads for decoding media (None: all cores).
        verbose: Show progress.
        allow_missing_columns: A feature column absent from a table is a missing modality
            (said once) rather than an error.
    """

    preprocessor: Preprocessor
    on_bad_record: str = "raise"
    missing_files: str = "error"
    num_threads: int | None = None
    verbose: bool = True
    allow_missing_columns: bool = False

    @classmethod
    def plan(
        cls,
        table: Table,
        target: str | None,
        task: str | None,
        est: PipelineOptions,
        features: list[str] | None = None,
        use_audio_tracks: bool = True,
    ) -> Pipeline:
        """An unfitted pipeline for ``table``: its schema inferred with the estimator's
        ``kinds`` and ``features`` (or ``features`` given here), its pretrained networks chosen
        and attached."""
        try:
            schema = infer_schema(table.df, target, est.kinds, features or est.features,
                                  table.base_dir, use_audio_tracks=use_audio_tracks)
        except MmfuseError as err:
            raise MmfuseError(f"{table.name}: {err}") from None
        return cls.for_schema(schema, task, est)

    @classmethod
    def for_schema(cls, schema: Schema, task: str | None, est: PipelineOptions) -> Pipeline:
        """An unfitted pipeline for a known schema, with the estimator's encoders and options."""
        from mmfuse.estimators.pretrained import feature_source, plan_pretrained

        kinds = schema.modalities()
        plan = plan_pretrained(est, kinds, predicting=task in ("classification", "regression"))
        features = feature_source(plan, kinds, est.device, est.use_cache, est.cache_dir)
        config = PreprocessConfig(image_size=est.image_size)
        return cls.around(Preprocessor(schema, config, task, plan, features), est)

    @classmethod
    def around(cls, pre: Preprocessor, est: PipelineOptions) -> Pipeline:
        """A pipeline over an existing preprocessor, with the estimator's run options."""
        return cls(pre, est.on_bad_record, est.missing_files, est.num_threads, est.verbose,
                   est.allow_missing_columns)

    @property
    def schema(self) -> Schema:
        return self.preprocessor.schema

    @property
    def modalities(self) -> dict[str, str]:
        return self.preprocessor.modalities

    def fit(self, train: Table, everything: Table | None = None) -> Pipeline:
        """Learns the preprocessing from ``train``; the class list of a classification target
        comes from ``everything`` (default: ``train``), so a rare class that fell into the
        validation records is still known."""
        pre = self.preprocessor
        pre.fit(train)
        target = pre.schema.target
        if everything is not None and target and pre.target is not None and pre.target.task == "classification":
            pre.target.fit(everything.df[target], target)
        if self.verbose:
            self.log_schema()
        return self

    def prepare(
        self, table: Table, with_target: bool = True, on_bad_record: str | None = None,
        allow_empty: bool = False,
    ) -> Encoded:
        """The records of ``table`` as arrays and presence masks (bad values raised, or skipped
        and listed in ``Encoded.rejected``; with ``allow_empty``, skipping every record is no
        error)."""
        from mmfuse.training.device import set_threads

        self.check_columns(table)
        return self.preprocessor.transform(
            table,
            with_target=with_target,
            on_bad_record=on_bad_record or self.on_bad_record,
            missing_files=self.missing_files,
            num_threads=set_threads(self.num_threads),
            verbose=self.verbose,
            allow_empty=allow_empty,
        )

    def check_columns(self, table: Table) -> None:
        """Every feature column the model uses is in the table, unless missing ones are allowed."""
        missing = [c for c in self.schema.kinds if c not in table.df.columns]
        if not missing:
            return
        names = ", ".join(map(repr, missing))
        if not self.allow_missing_columns:
            raise MmfuseError(
                f"{table.name}: the model's feature column(s) {names} are not in this table (its "
                f"columns: {', '.join(map(str, table.df.columns))}). Add them, or pass "
                f"{option('allow_missing_columns')} to predict without them, as missing modalities"
            )
        log(f"note: {table.name} lacks the feature column(s) {names}: they count as missing "
            f"for every record ({option('allow_missing_columns')})")

    def log_schema(self) -> None:
        """One line naming each modality, its kind and its pretrained network."""
        pre = self.preprocessor
        mods = ", ".join(
            f"{m} ({k}{', ' + pre.pretrained[m].backbone if m in pre.pretrained else ''})"
            for m, k in pre.modalities.items()
        )
        log(f"modalities: {mods}")
        for col, why in self.schema.ignored.items():
            log(f"ignoring column {col!r}: {why}")

    def restrict(self, modalities: list[str]) -> Pipeline:
        """The same pipeline producing only some modalities (e.g. a unimodal baseline)."""
        return Pipeline(self.preprocessor.restrict(modalities), self.on_bad_record,
                        self.missing_files, self.num_threads, self.verbose, self.allow_missing_columns)


def split_table(table: Table, fraction: float, seed: int, labels: np.ndarray | None) -> tuple[Table, Table]:
    """(train, validation) rows of ``table``; stratified by ``labels`` where that is possible.
    Unparsable lines stay with the training part, so they are reported once."""
    from sklearn.model_selection import train_test_split

    check_valid_fraction(fraction, len(table.df), table.name)
    index = np.arange(len(table.df))
    stratify = labels if stratifiable(labels, fraction) else None
    train_idx, valid_idx = train_test_split(index, test_size=fraction, random_state=seed, stratify=stratify)
    first = Table(table.df.iloc[np.sort(train_idx)], table.base_dir, table.name, table.bad_lines)
    return first, Table(table.df.iloc[np.sort(valid_idx)], table.base_dir, table.name)


def check_valid_fraction(fraction: float, records: int, name: str) -> None:
    """Refuses a validation share outside (0, 1), or one that leaves no record to train on."""
    if not 0.0 < fraction < 1.0:
        raise MmfuseError(f"{option('valid_fraction', fraction)}: the share held out for validation must be "
                          "between 0 and 1 (e.g. 0.2); to validate on other records, pass validation data")
    if math.ceil(fraction * records) >= records:
        raise MmfuseError(f"{name}: {option('valid_fraction', fraction)} holds out all {records} records, "
                          "leaving none to train on; use a smaller share (e.g. 0.2)")


def take_records(enc: Encoded, keep: np.ndarray) -> Encoded:
    """The records of ``enc`` where ``keep`` is True (rejections are carried over)."""
    return Encoded(
        {m: x[keep] for m, x in enc.inputs.items()},
        {m: v[keep] for m, v in enc.mask.items()},
        enc.rows[keep],
        None if enc.targets is None else enc.targets[keep],
        list(enc.rejected),
    )


def split_encoded(encoded: Encoded, train_rows: np.ndarray) -> tuple[Encoded, Encoded]:
    """(train, validation) parts of records prepared in one pass; rejections stay with train."""
    in_train = np.isin(encoded.rows, train_rows)
    train, valid = take_records(encoded, in_train), take_records(encoded, ~in_train)
    valid.rejected = []
    return train, valid


def stratifiable(labels: np.ndarray | None, test_size: float = 0.2) -> bool:
    """Whether a stratified split is possible: every class twice, and room for every class
    on both sides of the split."""
    if labels is None:
        return False
    _, counts = np.unique(labels, return_counts=True)
    held_out = int(np.ceil(test_size * len(labels)))
    enough = held_out >= len(counts) and len(labels) - held_out >= len(counts)
    return bool(len(counts) > 1 and counts.min() >= 2 and enough)
