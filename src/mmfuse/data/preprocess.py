"""Turns a table into per-modality arrays plus a presence mask, fitted on training data.

``Preprocessor.fit`` learns what needs learning (text vocabularies, tabular statistics,
embedding sizes); ``transform`` decodes every cell, marks empty cells as missing modalities,
and collects every bad cell as a ``Rejection`` naming the file, row and column.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mmfuse._hints import option
from mmfuse._progress import log, track
from mmfuse.data.cells import Corruption, cell_decoder, is_empty, printable, valid_texts
from mmfuse.data.readers import Table
from mmfuse.data.schema import AUDIO_TRACK_SUFFIX, TABULAR, Schema
from mmfuse.data.target import TargetEncoder
from mmfuse.errors import DecodeError, MmfuseError
from mmfuse.types import InputSpec

if TYPE_CHECKING:
    from mmfuse.data.cache import FeatureCache
    from mmfuse.data.frozen import Extractor

BAD_RECORD_POLICIES = ("raise", "skip")
MISSING_FILE_POLICIES = ("error", "missing")


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
class Rejection:
    """One bad cell or line: where it is and why it was rejected."""

    row: int
    column: str
    reason: str
    file: str = ""

    def __post_init__(self) -> None:
        # undecodable bytes in a path or header (kept as lone surrogates) must not stop the
        # message or rejected.csv from being written: show them as \xNN
        for name in ("column", "reason", "file"):
            object.__setattr__(self, name, printable(getattr(self, name)))


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

    Modalities listed in ``pretrained`` are prepared the way their pretrained network expects;
    frozen ones become the network's features, computed by ``extractors[modality]`` (set by the
    caller, since networks live above the data layer) and stored in ``cache``.

    Args:
        schema: Column kinds.
        config: Sizes and rates.
        task: "classification" or "regression" when the table has a target.
        pretrained: Modality -> how it feeds a pretrained network.
    """

    def __init__(
        self,
        schema: Schema,
        config: PreprocessConfig,
        task: str | None = None,
        pretrained: Mapping[str, PretrainedInput] | None = None,
    ) -> None:
        self.schema = schema
        self.config = config
        self.modalities = schema.modalities()
        self.target = TargetEncoder(task) if task and schema.target else None
        self.vocabularies: dict[str, Any] = {}
        self.tabular: Any = None
        self.embedding_dims: dict[str, int] = {}
        self.pretrained = dict(pretrained or {})
        self.extractors: dict[str, Extractor] = {}
        self.cache: FeatureCache | None = None

    # ----------------------------------------------------------------- fitting
    def fit(self, table: Table) -> Preprocessor:
        """Learns vocabularies, tabular statistics, embedding sizes and target encoding."""
        from mmfuse.data.tabular import TabularProcessor
        from mmfuse.data.text import Vocabulary

        df = table.df
        for col in self.schema.columns_of("text"):
            if col in self.pretrained:  # the network brings its own tokenizer
                continue
            texts = valid_texts(df[col])  # undecodable cells are reported by transform
            self.vocabularies[col] = Vocabulary.build(texts, max_size=self.config.vocab_size)
        numeric = self.schema.columns_of("numeric")
        categorical = self.schema.columns_of("categorical")
        if numeric or categorical:
            self.tabular = TabularProcessor(numeric, categorical).fit(df)
        for col in self.schema.columns_of("embedding"):
            self.embedding_dims[col] = self._embedding_dim(table, col)
        if self.target is not None:
            assert self.schema.target is not None
            try:
                self.target.fit(df[self.schema.target], self.schema.target)
            except MmfuseError as err:
                raise MmfuseError(f"{table.name}: {err}") from None
        return self

    def _embedding_dim(self, table: Table, col: str) -> int:
        from mmfuse.data.embedding import parse_embedding

        for value in table.df[col]:
            if is_empty(value):
                continue
            try:
                return int(parse_embedding(value, table.base_dir).shape[0])
            except DecodeError:
                continue
        raise MmfuseError(f"{table.name}, column {col!r}: no readable embedding vector")

    def input_specs(self) -> dict[str, InputSpec]:
        """Modality -> InputSpec describing its preprocessed input."""
        c = self.config
        specs = {}
        for name, kind in self.modalities.items():
            if name in self.pretrained:
                specs[name] = self._pretrained_spec(name, kind)
            elif kind == "image":
                specs[name] = InputSpec("image", (3, c.image_size, c.image_size))
            elif kind == "text":
                specs[name] = InputSpec(
                    "text", (c.text_max_length,), vocab_size=len(self.vocabularies[name])
                )
            elif kind == "audio":
                specs[name] = InputSpec("audio", (c.n_mels, c.audio_frames))
            elif kind == "video":
                specs[name] = InputSpec("video", (c.video_frames, 3, c.video_size, c.video_size))
            elif kind == "tabular":
                cards = tuple(self.tabular.cardinalities)
                width = self.tabular.num_numeric + len(cards)
                specs[name] = InputSpec(
                    "tabular", (width,), num_numeric=self.tabular.num_numeric, cardinalities=cards
                )
            else:
                specs[name] = InputSpec("embedding", (self.embedding_dims[name],))
        return specs

    def _pretrained_spec(self, name: str, kind: str) -> InputSpec:
        from mmfuse.data.preparations import get_preparation

        p = self.pretrained[name]
        prep = get_preparation(p.preparation)
        if not p.frozen:
            return InputSpec(kind, prep.shape, backbone=p.backbone)
        shape = (prep.shape[0], p.dim) if kind == "video" else (p.dim,)  # per frame for clips
        return InputSpec(kind, shape, backbone=p.backbone, features=True)

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
        """
        _check_choice(on_bad_record, BAD_RECORD_POLICIES, "on_bad_record")
        _check_choice(missing_files, MISSING_FILE_POLICIES, "missing_files")
        df = table.df
        n = len(df)
        errors: list[Rejection] = [Rejection(b.row, "", b.reason, table.name) for b in table.bad_lines]
        bad_rows = np.zeros(n, dtype=bool)
        inputs: dict[str, np.ndarray] = {}
        mask: dict[str, np.ndarray] = {}
        specs = self.input_specs()
        for name, kind in self.modalities.items():
            x, present, errs = self._encode_modality(
                table, name, kind, specs[name], missing_files, num_threads, verbose, corrupt
            )
            inputs[name], mask[name] = x, present
            for pos, column, reason in errs:
                bad_rows[pos] = True
                errors.append(Rejection(int(df.index[pos]), column, reason, table.name))
        targets = None
        if with_target and self.target is not None:
            targets, errs = self._encode_target(table)
            for pos, column, reason in errs:
                bad_rows[pos] = True
                errors.append(Rejection(int(df.index[pos]), column, reason, table.name))
        errors.sort(key=lambda r: (r.row, r.column))
        if errors and on_bad_record == "raise":
            raise MmfuseError(summarise_rejections(table.name, errors))
        keep = ~bad_rows
        if n and not keep.any():
            raise MmfuseError(f"{table.name}: every record is bad:\n" + _summarise_lines(errors))
        if errors and verbose:
            log(f"{table.name}: skipped {int(bad_rows.sum()) + len(table.bad_lines)} bad record(s)")
        return Encoded(
            {m: v[keep] for m, v in inputs.items()},
            {m: v[keep] for m, v in mask.items()},
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

    def _encode_modality(
        self,
        table: Table,
        name: str,
        kind: str,
        spec: InputSpec,
        missing_files: str,
        num_threads: int,
        verbose: bool,
        corrupt: Corruption | None = None,
    ) -> tuple[np.ndarray, np.ndarray, list[tuple[int, str, str]]]:
        n = len(table.df)
        if kind == TABULAR:
            matrix, rows_present, bad = self._encode_tabular(table)
            if corrupt is not None:
                matrix = np.asarray(corrupt(name, matrix, np.random.default_rng(0)), dtype=np.float32)
            return matrix, rows_present, bad
        column = name[: -len(AUDIO_TRACK_SUFFIX)] if name in self.track_modalities() else name
        integer = kind == "text" and not spec.features
        x = np.zeros((n,) + spec.shape, dtype=np.int64 if integer else np.float32)
        present = np.zeros(n, dtype=bool)
        if column not in table.df.columns:
            log(f"{table.name}: column {column!r} is absent; {name} is missing for every record")
            return x, present, []
        if spec.features:
            return self._encode_frozen(
                table, name, column, kind, spec, missing_files, num_threads, verbose, corrupt
            )
        decode = cell_decoder(self, name, kind, table.base_dir, missing_files, corrupt)
        values = list(table.df[column])
        errs: list[tuple[int, str, str]] = []

        def work(pos: int) -> tuple[int, np.ndarray | None, str | None]:
            rng = np.random.default_rng(pos) if corrupt is not None else None
            try:
                return pos, decode(values[pos], rng), None
            except DecodeError as err:
                return pos, None, str(err)

        media = kind in ("image", "audio", "video")
        with ThreadPoolExecutor(max_workers=max(1, num_threads if media else 1)) as pool:
            results = pool.map(work, range(n))
            label = f"decoding {name} ({kind})"
            for pos, array, error in track(results, n, label, verbose and media):
                if error is not None:
                    errs.append((pos, column, error))
                elif array is not None:
                    x[pos] = array
                    present[pos] = True
        return x, present, errs

    def _encode_frozen(
        self,
        table: Table,
        name: str,
        column: str,
        kind: str,
        spec: InputSpec,
        missing_files: str,
        num_threads: int,
        verbose: bool,
        corrupt: Corruption | None,
    ) -> tuple[np.ndarray, np.ndarray, list[tuple[int, str, str]]]:
        from mmfuse.data.frozen import Column, extract_features
        from mmfuse.data.preparations import get_preparation

        if name not in self.extractors:
            raise MmfuseError(f"no feature extractor for the frozen {kind} modality {name!r}")
        alter = None
        if corrupt is not None:
            alter = lambda pos, v: corrupt(name, v, np.random.default_rng(pos))  # noqa: E731
        track = name in self.track_modalities()
        cells = list(table.df[column])
        x, present, errs = extract_features(
            Column(cells, "video" if track else kind, table.base_dir, missing_files, track),
            get_preparation(self.pretrained[name].preparation),
            self.extractors[name],
            spec.shape,
            self.cache,
            alter,
            num_threads,
            f"encoding {name} ({self.pretrained[name].backbone})",
            verbose,
        )
        return x, present, [(pos, column, reason) for pos, reason in errs]

    def track_modalities(self) -> set[str]:
        """The modalities that are the audio tracks of video columns."""
        return {c + AUDIO_TRACK_SUFFIX for c in self.schema.audio_tracks}

    def _encode_tabular(self, table: Table) -> tuple[np.ndarray, np.ndarray, list[tuple[int, str, str]]]:
        df = table.df
        errs = []
        cols = self.tabular.numeric + self.tabular.categorical
        frame = pd.DataFrame({c: df[c] if c in df.columns else None for c in cols}, index=df.index)
        for col in self.tabular.numeric:
            for pos, value in enumerate(frame[col]):
                try:
                    self.tabular.check_value(col, value)
                except DecodeError as err:
                    errs.append((pos, col, str(err)))
        x = self.tabular.transform(frame).astype(np.float32)
        # a record with every tabular cell empty lacks the tabular modality
        present = ~frame.map(is_empty).all(axis=1).to_numpy() if cols else np.ones(len(df), bool)
        return x, present, errs

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
        pre = Preprocessor.from_dict({**self.to_dict(), "schema": schema.to_dict()})
        pre.vocabularies = {c: v for c, v in pre.vocabularies.items() if c in kinds}
        pre.embedding_dims = {c: v for c, v in pre.embedding_dims.items() if c in kinds}
        pre.pretrained = {m: p for m, p in self.pretrained.items() if m in modalities}
        pre.extractors = {m: e for m, e in self.extractors.items() if m in modalities}
        pre.cache = self.cache
        if TABULAR not in modalities:
            pre.tabular = None
        return pre

    # ------------------------------------------------------------------ storage
    def to_dict(self) -> dict[str, Any]:
        return {
            "config": asdict(self.config),
            "schema": self.schema.to_dict(),
            "vocabularies": {c: v.to_dict() for c, v in self.vocabularies.items()},
            "tabular": None if self.tabular is None else self.tabular.to_dict(),
            "embedding_dims": self.embedding_dims,
            "target": None if self.target is None else self.target.to_dict(),
            "pretrained": {m: asdict(p) for m, p in self.pretrained.items()},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Preprocessor:
        from mmfuse.data.tabular import TabularProcessor
        from mmfuse.data.text import Vocabulary

        schema = Schema.from_dict(d["schema"])
        target = d.get("target")
        pretrained = {m: PretrainedInput(**p) for m, p in d.get("pretrained", {}).items()}
        task = target["task"] if target else None
        pre = cls(schema, PreprocessConfig(**d["config"]), task, pretrained)
        pre.vocabularies = {c: Vocabulary.from_dict(v) for c, v in d["vocabularies"].items()}
        pre.tabular = TabularProcessor.from_dict(d["tabular"]) if d.get("tabular") else None
        pre.embedding_dims = {c: int(v) for c, v in d["embedding_dims"].items()}
        if target:
            pre.target = TargetEncoder.from_dict(target)
        return pre


def _check_choice(value: str, choices: tuple[str, ...], option: str) -> None:
    if value not in choices:
        raise MmfuseError(f"unknown {option} {value!r}; choose one of: {', '.join(choices)}")


def _summarise_lines(errors: list[Rejection], limit: int = 10) -> str:
    lines = [
        f"  row {e.row}" + (f", column {e.column!r}" if e.column else "") + f": {e.reason}"
        for e in errors[:limit]
    ]
    if len(errors) > limit:
        lines.append(f"  ... and {len(errors) - limit} more")
    return "\n".join(lines)


def summarise_rejections(name: str, errors: list[Rejection]) -> str:
    """The message for bad values: how many, the first ten by row and column, and the fix."""
    rows = len({e.row for e in errors})
    return (
        f"{name}: {len(errors)} bad value(s) in {rows} record(s):\n"
        + _summarise_lines(errors)
        + f"\nFix them, or pass {option('on_bad_record', 'skip')} to leave these records out "
        "(they are listed in rejected.csv)."
    )
