"""What every kind processor shares: the modality it serves, how a transform reads cells, the
arrays it returns, and the loop that checks and decodes a column cell by cell.

A processor of a single column derives from :class:`ColumnProcessor`, which gives an absent
column the all-missing arrays; one that decodes each cell on its own derives from
:class:`CellProcessor` and implements ``spec`` and ``decode`` (``validate`` is the one cell
check every encoder path shares, :func:`mmfuse.data.cells.checked_cell`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np

from mmfuse._progress import log, track
from mmfuse.data.cells import Corruption, checked_cell
from mmfuse.data.schema import AUDIO_TRACK_SUFFIX, TABULAR, Schema
from mmfuse.errors import DecodeError, MmfuseError
from mmfuse.types import InputSpec

if TYPE_CHECKING:
    from mmfuse.data.kinds.frozen import FeatureSource
    from mmfuse.data.preprocess import PreprocessConfig, PretrainedInput
    from mmfuse.data.readers import Table

Alter = Callable[[Any], Any]
"""decoded value -> the value the rest of the preparation sees (a corruption, or identity)."""

MEDIA_KINDS = ("image", "audio", "video")
"""Kinds whose cells are decoded in threads, with progress shown."""


@dataclass(frozen=True)
class Modality:
    """One modality of a schema and where its cells come from.

    Attributes:
        name: Modality name (the column's name; "tabular"; "<video column>_audio").
        kind: Modality kind (``mmfuse.types.MODALITY_KINDS``).
        columns: Table column -> field kind of the columns feeding it: one column, except for
            the tabular modality (its numeric and categorical columns, in table order).
        audio_track: The cells are videos whose audio track is wanted.
        pretrained: How it feeds a pretrained network; None for from-scratch processing.
    """

    name: str
    kind: str
    columns: Mapping[str, str] = field(hash=False)
    audio_track: bool = False
    pretrained: PretrainedInput | None = None

    @property
    def column(self) -> str:
        """The column holding its cells (the first one, for tabular)."""
        return next(iter(self.columns))

    @property
    def cell_kind(self) -> str:
        """The kind its cells are checked as: "video" for an audio track, else its own."""
        return "video" if self.audio_track else self.kind

    def columns_of(self, kind: str) -> list[str]:
        """Its columns of one field kind, in table order."""
        return [c for c, k in self.columns.items() if k == kind]


def modalities_of(schema: Schema, pretrained: Mapping[str, PretrainedInput]) -> dict[str, Modality]:
    """Modality name -> :class:`Modality`, in ``schema.modalities()`` order."""
    tracks = {c + AUDIO_TRACK_SUFFIX: c for c in schema.audio_tracks}
    out = {}
    for name, kind in schema.modalities().items():
        if kind == TABULAR:
            columns = {c: k for c, k in schema.kinds.items() if k in ("numeric", "categorical")}
        else:
            columns = {tracks.get(name, name): schema.kinds.get(tracks.get(name, name), kind)}
        out[name] = Modality(name, kind, columns, name in tracks, pretrained.get(name))
    return out


@dataclass(frozen=True)
class ReadOptions:
    """How one ``Preprocessor.transform`` reads cells (see its arguments)."""

    missing_files: str = "error"
    num_threads: int = 2
    verbose: bool = True
    corrupt: Corruption | None = None

    def alter(self, modality: str, rng: np.random.Generator | None) -> Alter:
        """The corruption of one cell of ``modality`` with ``rng`` (identity without one)."""
        corrupt = self.corrupt
        if corrupt is None:
            return _identity
        return lambda value: corrupt(modality, value, rng)


def _identity(value: Any) -> Any:
    return value


@dataclass
class ModalityArrays:
    """One modality of a table, encoded.

    Attributes:
        values: (N, ...) inputs as its ``InputSpec`` describes (zeros where missing or bad).
        present: (N,) bool, True where the modality is present.
        errors: (record position, column, reason) of each bad cell.
    """

    values: np.ndarray
    present: np.ndarray
    errors: list[tuple[int, str, str]] = field(default_factory=list)


class KindProcessor(Protocol):
    """Turns one modality's cells into its model input.

    Attributes:
        section: The preprocess.json section holding what ``fit`` learns ("" for nothing).
        modality: The modality it serves.
        learned: What ``fit`` learned (a vocabulary, tabular statistics, a width); None before.
    """

    section: ClassVar[str]
    modality: Modality
    learned: Any

    @classmethod
    def create(
        cls, modality: Modality, config: PreprocessConfig, features: FeatureSource
    ) -> KindProcessor:
        """The processor of ``modality`` (``features``: where frozen features come from)."""
        ...

    def fit(self, table: Table) -> None:
        """Learns what the kind needs from the training records."""
        ...

    def spec(self) -> InputSpec:
        """The shape and kind of its input, for sizing the encoder."""
        ...

    def encode(self, table: Table, options: ReadOptions) -> ModalityArrays:
        """Every record's input, presence, and the bad cells."""
        ...

    def to_dict(self) -> Any:
        """``learned`` as JSON data."""
        ...

    def load(self, state: Any) -> None:
        """Sets ``learned`` from ``to_dict``'s output."""
        ...


class ColumnProcessor:
    """Base of the processors of one column: an absent column is missing for every record.

    Args:
        modality: The modality it serves.
        config: Sizes and rates.
    """

    section: ClassVar[str] = ""

    def __init__(self, modality: Modality, config: PreprocessConfig) -> None:
        self.modality = modality
        self.config = config
        self.learned: Any = None

    @classmethod
    def create(
        cls, modality: Modality, config: PreprocessConfig, features: FeatureSource
    ) -> ColumnProcessor:
        """The processor of ``modality``; only frozen features need ``features``."""
        return cls(modality, config)

    @property
    def dtype(self) -> type:
        """numpy type of its input: token ids for text, floats otherwise."""
        return np.int64 if self.modality.kind == "text" else np.float32

    def fit(self, table: Table) -> None:
        """Nothing to learn (kinds with fitted state override this)."""

    def spec(self) -> InputSpec:
        raise NotImplementedError

    @property
    def subject(self) -> str:
        """How messages name this modality."""
        return f"{self.modality.kind} modality {self.modality.name!r}"

    def fitted_state(self, what: str) -> Any:
        """``learned``, or MmfuseError saying ``fit`` has not run (``what``: what it learns)."""
        if self.learned is None:
            raise MmfuseError(f"{self.subject} has no {what} yet: fit the preprocessor")
        return self.learned

    def to_dict(self) -> Any:
        """``learned`` as JSON data: its own ``to_dict()``, or the plain value (None: nothing)."""
        state = self.learned
        return state.to_dict() if hasattr(state, "to_dict") else state

    def load(self, state: Any) -> None:
        """Nothing to restore (kinds with fitted state override this)."""

    def encode(self, table: Table, options: ReadOptions) -> ModalityArrays:
        """All-missing zeros when the column is absent, else ``encode_column``."""
        n, column = len(table.df), self.modality.column
        if column not in table.df.columns:
            name = self.modality.name
            log(f"{table.name}: column {column!r} is absent; {name} is missing for every record")
            values = np.zeros((n, *self.spec().shape), dtype=self.dtype)
            return ModalityArrays(values, np.zeros(n, dtype=bool))
        return self.encode_column(table, options)

    def encode_column(self, table: Table, options: ReadOptions) -> ModalityArrays:
        raise NotImplementedError


class CellProcessor(ColumnProcessor):
    """Base of the processors that check and decode each cell on its own (in threads for media)."""

    def validate(self, value: Any, base_dir: Path, missing_files: str) -> Any:
        """The checked cell (see ``checked_cell``); None for a missing modality.

        Raises:
            DecodeError: A bad cell, with the message the user sees.
        """
        m = self.modality
        return checked_cell(value, m.cell_kind, base_dir, missing_files, m.audio_track)

    def decode(self, cell: Any, base_dir: Path, alter: Alter) -> np.ndarray:
        """The input array of one checked cell; ``alter`` is applied to the decoded value
        before its last step.

        Raises:
            DecodeError: Content that cannot be decoded.
        """
        raise NotImplementedError

    def encode_column(self, table: Table, options: ReadOptions) -> ModalityArrays:
        """Validates and decodes every cell; bad cells become errors naming the column."""
        m, values = self.modality, list(table.df[self.modality.column])
        n = len(values)
        x = np.zeros((n, *self.spec().shape), dtype=self.dtype)
        out = ModalityArrays(x, np.zeros(n, dtype=bool))

        def work(pos: int) -> tuple[np.ndarray | None, str | None]:
            rng = np.random.default_rng(pos) if options.corrupt is not None else None
            try:
                cell = self.validate(values[pos], table.base_dir, options.missing_files)
                if cell is None:
                    return None, None
                return self.decode(cell, table.base_dir, options.alter(m.name, rng)), None
            except DecodeError as err:
                return None, str(err)

        media = m.kind in MEDIA_KINDS
        with ThreadPoolExecutor(max_workers=max(1, options.num_threads if media else 1)) as pool:
            label = f"decoding {m.name} ({m.kind})"
            results = track(pool.map(work, range(n)), n, label, options.verbose and media)
            for pos, (array, error) in enumerate(results):
                if error is not None:
                    out.errors.append((pos, m.column, error))
                elif array is not None:
                    out.values[pos], out.present[pos] = array, True
        return out
