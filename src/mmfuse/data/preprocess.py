"""Turns a table into per-modality arrays plus a presence mask, fitted on training data.

``Preprocessor`` holds one kind processor per modality (``mmfuse.data.kinds``): ``fit`` lets
each learn what it needs (text vocabularies, tabular statistics, embedding sizes) and fits the
target encoding; ``transform`` has each decode its cells, marks empty cells as missing
modalities, and collects every bad cell as a ``Rejection`` naming the file, row and column.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from mmfuse._progress import log
from mmfuse.data.cells import Corruption
from mmfuse.data.kinds import create_processor
from mmfuse.data.kinds.base import KindProcessor, ReadOptions, modalities_of
from mmfuse.data.kinds.frozen import FeatureSource
from mmfuse.data.readers import Table
from mmfuse.data.rejections import Rejection, every_record_bad, summarise_rejections
from mmfuse.data.schema import AUDIO_TRACK_SUFFIX, TABULAR, Schema
from mmfuse.data.target import TargetEncoder
from mmfuse.errors import MmfuseError
from mmfuse.types import InputSpec

if TYPE_CHECKING:
    from mmfuse.data.cache import FeatureCache
    from mmfuse.data.frozen import Extractor
    from mmfuse.data.tabular import TabularProcessor
    from mmfuse.data.text import Vocabulary

__all__ = [  # FeatureSource and the rejections are re-exported: callers use them with a Preprocessor
    "Encoded",
    "FeatureSource",
    "PreprocessConfig",
    "Preprocessor",
    "PretrainedInput",
    "Rejection",
    "every_record_bad",
    "summarise_rejections",
]

BAD_RECORD_POLICIES = ("raise", "skip")
MISSING_FILE_POLICIES = ("error", "missing")
LEARNED_SECTIONS = ("vocabularies", "tabular", "embedding_dims")
"""Sections of preprocess.json that hold what kind processors learn (``section``)."""


@dataclass(frozen=True)
class PreprocessConfig:
    """Preprocessing settings (stored in preprocess.json)."""

    image_size: int = 32
    text_max_length: int = 64
    vocab_size: int = 20000
    sample_rate: int = 16000
    n_mels: int = 40
    audio_frames: int = 100
    video_frames: int = 8
    video_size: int = 32

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if value < 1:
                raise MmfuseError(f"preprocessing setting {name} must be at least 1, got {value}")


@dataclass(frozen=True)
class PretrainedInput:
    """How one modality feeds a pretrained network (stored in preprocess.json).

    Attributes:
        backbone: Network name (``mmfuse.pretrained.BACKBONES``).
        preparation: Input preparation name (``mmfuse.data.preparations``).
        frozen: True: the modality's input is the network's cached output features;
            False (fine-tuning): the prepared input itself.
        dim: Feature width of the network.
    """

    backbone: str
    preparation: str
    frozen: bool
    dim: int


@dataclass
class Encoded:
    """Preprocessed records.

    Attributes:
        inputs: Modality -> array (N, ...) as described by ``InputSpec``.
        mask: Modality -> (N,) bool, True where the modality is present.
        rows: (N,) original data-row numbers of the kept records.
        targets: (N,) encoded targets, or None when the table has none.
        rejected: Records that were dropped and why (empty unless skipping bad records).
    """

    inputs: dict[str, np.ndarray]
    mask: dict[str, np.ndarray]
    rows: np.ndarray
    targets: np.ndarray | None = None
    rejected: list[Rejection] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.rows)

    def select(self, modalities: list[str]) -> Encoded:
        """The same records restricted to some modalities."""
        return Encoded(
            {m: self.inputs[m] for m in modalities},
            {m: self.mask[m] for m in modalities},
            self.rows,
            self.targets,
            self.rejected,
        )


class Preprocessor:
    """Fits per-modality preprocessing on training data and applies it to any table.

    Each modality has a kind processor (``mmfuse.data.kinds``), looked up by its kind, or by
    how it feeds a pretrained network: ``pretrained`` modalities are prepared the way their
    network expects, and frozen ones become the network's features, computed by the networks
    of ``features`` (made by the caller, since networks live above the data layer) and kept in
    its cache.

    Args:
        schema: Column kinds.
        config: Sizes and rates.
        task: "classification" or "regression" when the table has a target.
        pretrained: Modality -> how it feeds a pretrained network.
        features: Frozen networks and feature cache (default: none, and no cache).
    """

    def __init__(
        self,
        schema: Schema,
        config: PreprocessConfig,
        task: str | None = None,
        pretrained: Mapping[str, PretrainedInput] | None = None,
        features: FeatureSource | None = None,
    ) -> None:
        self.schema = schema
        self.config = config
        self.modalities = schema.modalities()
        self.target = TargetEncoder(task) if task and schema.target else None
        self.pretrained = dict(pretrained or {})
        self.features = features or FeatureSource()
        self.processors: dict[str, KindProcessor] = {
            name: create_processor(m, config, self.features)
            for name, m in modalities_of(schema, self.pretrained).items()
        }

    # ----------------------------------------------------------------- fitting
    def fit(self, table: Table) -> Preprocessor:
        """Learns vocabularies, tabular statistics, embedding sizes and target encoding."""
        for processor in self.processors.values():
            processor.fit(table)
        if self.target is not None:
            assert self.schema.target is not None
            try:
                self.target.fit(table.df[self.schema.target], self.schema.target)
            except MmfuseError as err:
                raise MmfuseError(f"{table.name}: {err}") from None
        return self

    def input_specs(self) -> dict[str, InputSpec]:
        """Modality -> InputSpec describing its preprocessed input."""
        return {name: processor.spec() for name, processor in self.processors.items()}

    # ------------------------------------------------------- what was learned
    @property
    def vocabularies(self) -> dict[str, Vocabulary]:
        """Text modality -> its word vocabulary (from-scratch text only)."""
        return self._learned("vocabularies")

    @property
    def tabular(self) -> TabularProcessor | None:
        """The tabular statistics, or None without a (fitted) tabular modality."""
        return self._learned("tabular").get(TABULAR)

    @property
    def embedding_dims(self) -> dict[str, int]:
        """Embedding modality -> its width."""
        return self._learned("embedding_dims")

    @property
    def extractors(self) -> Mapping[str, Extractor]:
        """Frozen modality -> its network (from ``features``)."""
        return self.features.extractors

    @property
    def cache(self) -> FeatureCache | None:
        """The feature cache of the frozen networks (from ``features``)."""
        return self.features.cache

    def _learned(self, section: str) -> dict[str, Any]:
        return {
            name: p.learned
            for name, p in self.processors.items()
            if p.section == section and p.learned is not None
        }

    # ------------------------------------------------------------- transforming
    def transform(
        self,
        table: Table,
        with_target: bool = True,
        on_bad_record: str = "raise",
        missing_files: str = "error",
        num_threads: int = 2,
        verbose: bool = True,
        corrupt: Corruption | None = None,
        allow_empty: bool = False,
    ) -> Encoded:
        """Decodes every record.

        Args:
            table: Records to encode.
            with_target: Encode the target column too (required to be present).
            on_bad_record: "raise" (MmfuseError listing the bad cells) or "skip" (drop the
                records, listing them in ``Encoded.rejected``).
            missing_files: "error" (a missing media file is a bad cell) or "missing" (it
                counts as a missing modality for that record).
            num_threads: Threads used to decode media.
            verbose: Show progress.
            corrupt: Optional ``(modality, value, rng) -> value`` applied to each decoded value
                before feature extraction (for robustness tests): images and video frames
                (..., 3, H, W) in [0, 1], audio waveforms (T,) at the configured sample rate,
                text strings, embedding vectors, and the whole standardised tabular matrix.
                ``rng`` is seeded by the record position, so results are reproducible.
            allow_empty: With "skip", a table whose every record is bad gives an empty result
                (with the rejections) instead of an error (a server answering each request).
        """
        _check_choice(on_bad_record, BAD_RECORD_POLICIES, "on_bad_record")
        _check_choice(missing_files, MISSING_FILE_POLICIES, "missing_files")
        df = table.df
        n = len(df)
        errors: list[Rejection] = [Rejection(b.row, "", b.reason, table.name) for b in table.bad_lines]
        bad_rows = np.zeros(n, dtype=bool)
        options = ReadOptions(missing_files, num_threads, verbose, corrupt)
        encoded = {name: p.encode(table, options) for name, p in self.processors.items()}
        bad = [e for arrays in encoded.values() for e in arrays.errors]
        targets = None
        if with_target and self.target is not None:
            targets, target_errors = self._encode_target(table)
            bad += target_errors
        for pos, column, reason in bad:
            bad_rows[pos] = True
            errors.append(Rejection(int(df.index[pos]), column, reason, table.name))
        errors.sort(key=lambda r: (r.row, r.column))
        if errors and on_bad_record == "raise":
            raise MmfuseError(summarise_rejections(table.name, errors))
        keep = ~bad_rows
        if n and not keep.any() and not allow_empty:
            raise MmfuseError(every_record_bad(table.name, errors))
        if errors and verbose:
            log(f"{table.name}: skipped {int(bad_rows.sum()) + len(table.bad_lines)} bad record(s)")
        return Encoded(
            {m: a.values[keep] for m, a in encoded.items()},
            {m: a.present[keep] for m, a in encoded.items()},
            df.index.to_numpy(dtype=np.int64)[keep],
            None if targets is None else targets[keep],
            errors,
        )

    def _encode_target(self, table: Table) -> tuple[np.ndarray, list[tuple[int, str, str]]]:
        assert self.target is not None and self.schema.target is not None
        col = self.schema.target
        if col not in table.df.columns:
            raise MmfuseError(f"{table.name}: target column {col!r} is missing")
        values = np.zeros(len(table.df), dtype=np.float32)
        errs = []
        for pos, value in enumerate(table.df[col]):
            try:
                values[pos] = self.target.encode_one(value)
            except ValueError as err:
                errs.append((pos, col, str(err)))
        return values, errs

    def track_modalities(self) -> set[str]:
        """The modalities that are the audio tracks of video columns."""
        return {c + AUDIO_TRACK_SUFFIX for c in self.schema.audio_tracks}

    @property
    def fitted_target(self) -> TargetEncoder:
        """The target encoding (raises if this preprocessor was built without a target)."""
        if self.target is None:
            raise MmfuseError("this model was trained without a target column")
        return self.target

    def restrict(self, modalities: list[str]) -> Preprocessor:
        """A copy that only produces some of the modalities (e.g. for unimodal baselines)."""
        unknown = sorted(set(modalities) - set(self.modalities))
        if unknown:
            raise MmfuseError(f"unknown modalities {unknown}; known: {', '.join(self.modalities)}")
        kinds = {
            c: k
            for c, k in self.schema.kinds.items()
            if c in modalities or (k in ("numeric", "categorical") and TABULAR in modalities)
        }
        tracks = tuple(c for c in self.schema.audio_tracks if c + AUDIO_TRACK_SUFFIX in modalities)
        schema = Schema(kinds, self.schema.target, dict(self.schema.ignored), tracks)
        pretrained = {m: asdict(p) for m, p in self.pretrained.items() if m in modalities}
        stored = {**self.to_dict(), "schema": schema.to_dict(), "pretrained": pretrained}
        return Preprocessor.from_dict(stored, self.features.restrict(modalities))

    def with_features(self, features: FeatureSource) -> Preprocessor:
        """A copy whose frozen modalities take their features from ``features``."""
        return Preprocessor.from_dict(self.to_dict(), features)

    # ------------------------------------------------------------------ storage
    def to_dict(self) -> dict[str, Any]:
        """Everything needed to rebuild the fitted preprocessing (preprocess.json)."""
        stored = {s: self._stored(s) for s in LEARNED_SECTIONS}
        return {
            "config": asdict(self.config),
            "schema": self.schema.to_dict(),
            "vocabularies": stored["vocabularies"],
            "tabular": stored["tabular"].get(TABULAR),
            "embedding_dims": stored["embedding_dims"],
            "target": None if self.target is None else self.target.to_dict(),
            "pretrained": {m: asdict(p) for m, p in self.pretrained.items()},
        }

    def _stored(self, section: str) -> dict[str, Any]:
        return {
            name: p.to_dict()
            for name, p in self.processors.items()
            if p.section == section and p.learned is not None
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], features: FeatureSource | None = None) -> Preprocessor:
        """The preprocessing ``to_dict`` describes, taking frozen features from ``features``."""
        schema = Schema.from_dict(d["schema"])
        target = d.get("target")
        pretrained = {m: PretrainedInput(**p) for m, p in d.get("pretrained", {}).items()}
        task = target["task"] if target else None
        pre = cls(schema, PreprocessConfig(**d["config"]), task, pretrained, features)
        stored = {
            "vocabularies": d["vocabularies"],
            "tabular": {TABULAR: d["tabular"]} if d.get("tabular") else {},
            "embedding_dims": d["embedding_dims"],
        }
        for section, states in stored.items():
            for name, state in states.items():
                processor = pre.processors.get(name)
                if processor is not None and processor.section == section:
                    processor.load(state)
        if target:
            pre.target = TargetEncoder.from_dict(target)
        return pre


def _check_choice(value: str, choices: tuple[str, ...], option: str) -> None:
    if value not in choices:
        raise MmfuseError(f"unknown {option} {value!r}; choose one of: {', '.join(choices)}")
