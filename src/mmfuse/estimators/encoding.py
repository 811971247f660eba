"""Filling the feature cache ahead of ``fit``: the frozen networks a fit would run over a table.

``plan_encoding`` reads a table and decides, as ``fit`` does (the same schema inference, the
same pretrained network per column kind from ``plan_pretrained``, the same input preparations),
which modalities feed a frozen pretrained network: one :class:`FrozenColumn` each.
``encode_locally`` runs them in this process along the very path ``fit`` takes
(``FrozenKind.encode_column`` -> ``extract_features``: cache lookups, then decode + encode of
the misses), so a later ``fit`` on the same data finds every feature in the cache;
``mmfuse.distributed.ray_engine`` runs the same plan on a Ray cluster. Either way a
:class:`ColumnReport` per column says how many cells have features, how many distinct contents
were already cached or written now, and every bad cell by file, row and column.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, cast

from mmfuse._hints import option
from mmfuse.data.cache import FeatureCache
from mmfuse.data.kinds.base import Modality, ReadOptions, modalities_of
from mmfuse.data.kinds.frozen import FrozenKind
from mmfuse.data.kinds.prepared import preparation_of, pretrained_input
from mmfuse.data.preprocess import PreprocessConfig, Rejection
from mmfuse.data.readers import Table, read_table
from mmfuse.data.schema import infer_schema
from mmfuse.errors import MmfuseError
from mmfuse.estimators.facade import DataLike
from mmfuse.estimators.pretrained import CLIP_BATCH, plan_pretrained
from mmfuse.params import EstimatorParams

if TYPE_CHECKING:
    from mmfuse.data.frozen import Extractor
    from mmfuse.estimators.pipeline import PipelineOptions

FROZEN_BATCH = 32
"""Items per forward pass of a frozen network (video: ``CLIP_BATCH`` clips), as ``fit`` uses."""


@dataclass(frozen=True)
class FrozenColumn:
    """One modality that a fit would feed to a frozen pretrained network.

    Attributes:
        modality: The modality: its column, kind and pretrained network.
        batch_size: Items per forward pass (the batches decide the float rounding, so both
            engines cut the same ones).
    """

    modality: Modality
    batch_size: int

    @property
    def column(self) -> str:
        return self.modality.column

    @property
    def backbone(self) -> str:
        return pretrained_input(self.modality).backbone

    def processor(self, extractor: Extractor | None = None, cache: FeatureCache | None = None) -> FrozenKind:
        """The processor ``fit`` uses for this modality, with ``extractor`` and ``cache``."""
        return FrozenKind(self.modality, PreprocessConfig(), extractor, cache)

    @property
    def shape(self) -> tuple[int, ...]:
        """Feature shape of one cell: (dim,), or (frames, dim) for a video clip."""
        return tuple(self.processor().spec().shape)

    def fingerprint(self) -> str:
        """The cache fingerprint of its entries: network, package versions and preparation (the
        one ``extract_features`` stores them under)."""
        from mmfuse.encoders.backbones import FrozenExtractor

        return f"{FrozenExtractor(self.backbone).fingerprint}|{preparation_of(self.modality).fingerprint}"


@dataclass(frozen=True)
class EncodePlan:
    """A table and its modalities that feed frozen networks, in schema order."""

    table: Table
    columns: tuple[FrozenColumn, ...]

    def rejection(self, position: int, column: str, reason: str) -> Rejection:
        """A bad cell at record ``position``, named by file, data row and column."""
        return Rejection(int(self.table.df.index[position]), column, reason, self.table.name)

    def unreadable_lines(self) -> list[Rejection]:
        """The table's lines that could not be parsed (no cell of them was encoded)."""
        return [Rejection(b.row, "", b.reason, self.table.name) for b in self.table.bad_lines]


def plan_encoding(
    data: DataLike,
    target: str | None = None,
    columns: Sequence[str] | None = None,
    kinds: str | dict[str, str] | None = None,
    encoders: str | dict[str, str] | None = None,
    pretrained: bool = True,
    base_dir: str | None = None,
    batch_size: int | None = None,
    verbose: bool = True,
) -> EncodePlan:
    """The frozen networks a ``fit`` on ``data`` would run, column by column.

    Args:
        data: The records (file, folder with data.csv, or DataFrame).
        target: The column a later fit predicts: left out, and audio then gets the prediction
            default (``voice+prosody``) as in ``fit``; without one, the defaults of retrieval
            and recommendation (``voice``).
        columns: Only these columns (default: every column but the target).
        kinds: Kind overrides, as ``fit --kinds``.
        encoders: Encoders per kind or column, as ``fit --encoder``.
        pretrained: Use the packaged pretrained networks by default where installed.
        base_dir: Folder that relative media paths resolve against (default: the data's).
        batch_size: Items per forward pass (default: ``FROZEN_BATCH``; ``CLIP_BATCH`` for video).
        verbose: Print the notices ``fit`` prints (a default network whose package is missing).

    Raises:
        MmfuseError: Unreadable data, unknown columns, a bad override or batch size, or a
            requested network whose packages are missing.
    """
    if batch_size is not None and batch_size < 1:
        raise MmfuseError(f"{option('batch_size', batch_size)}: a forward pass needs at least 1 item")
    table = read_table(data, base_dir)
    try:
        schema = infer_schema(table.df, target, kinds, columns, table.base_dir)
    except MmfuseError as err:
        raise MmfuseError(f"{table.name}: {err}") from None
    # a fit's parameters with these values (frozen, where PipelineOptions declares settable fields)
    options = cast("PipelineOptions", EstimatorParams(encoders=encoders, pretrained=pretrained, verbose=verbose))
    plan = plan_pretrained(options, schema.modalities(), predicting=target is not None)
    chosen = [
        FrozenColumn(m, batch_size or (CLIP_BATCH if m.kind == "video" else FROZEN_BATCH))
        for m in modalities_of(schema, plan).values()
        if m.pretrained is not None and m.pretrained.frozen
    ]
    return EncodePlan(table, tuple(chosen))


@dataclass(frozen=True)
class ColumnReport:
    """What encoding one column did.

    Attributes:
        column: The table column.
        modality: Its modality (``<video>_audio`` for a video's sound).
        encoder: The pretrained network.
        fingerprint: The cache fingerprint its entries are stored under.
        encoded: Cells that now have features in the cache (a repeated content counts each time).
        cached: Distinct contents found in the cache already.
        written: Distinct contents encoded and written now.
        bad: Every bad cell, by file, row and column.
    """

    column: str
    modality: str
    encoder: str
    fingerprint: str
    encoded: int
    cached: int
    written: int
    bad: tuple[Rejection, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"column": self.column, "modality": self.modality, "encoder": self.encoder,
                "fingerprint": self.fingerprint, "encoded": self.encoded, "cached": self.cached,
                "written": self.written, "bad": len(self.bad)}


def encode_locally(
    plan: EncodePlan,
    cache: FeatureCache,
    device: str = "auto",
    num_threads: int | None = None,
    missing_files: str = "error",
    verbose: bool = True,
) -> list[ColumnReport]:
    """Runs every column of ``plan`` in this process, as ``fit`` would, filling ``cache``.

    Args:
        plan: What to encode (``plan_encoding``).
        cache: The feature cache to fill (``estimators.pretrained.feature_cache``).
        device: "auto", "cpu" or "cuda".
        num_threads: Torch and decoding threads (None: all cores).
        missing_files: "error" (a missing media file is a bad cell) or "missing".
        verbose: Show progress.
    """
    from mmfuse.encoders.backbones import FrozenExtractor
    from mmfuse.training.device import resolve_device, set_threads

    options = ReadOptions(missing_files, set_threads(num_threads), verbose)
    where = resolve_device(device)
    reports = []
    for job in plan.columns:
        before = replace(cache.stats)
        extractor = FrozenExtractor(job.backbone, where, job.batch_size)
        arrays = job.processor(extractor, cache).encode_column(plan.table, options)
        bad = tuple(plan.rejection(pos, column, reason) for pos, column, reason in arrays.errors)
        reports.append(ColumnReport(
            job.column, job.modality.name, job.backbone, job.fingerprint(), int(arrays.present.sum()),
            cache.stats.hits - before.hits, cache.stats.writes - before.writes, bad,
        ))  # fmt: skip
    return reports


@dataclass(frozen=True)
class EncodeReport:
    """What ``mmfuse encode`` did, as printed and as JSON.

    Attributes:
        data: The table's file name.
        engine: "local" or "ray".
        cache_dir: The feature cache folder that was filled.
        records: Records in the table.
        seconds: Wall time of the encoding.
        columns: One report per encoded column.
        unreadable_lines: Lines of the file that could not be parsed.
    """

    data: str
    engine: str
    cache_dir: str
    records: int
    seconds: float
    columns: tuple[ColumnReport, ...]
    unreadable_lines: tuple[Rejection, ...] = ()

    @property
    def bad(self) -> list[Rejection]:
        """Every bad line and cell, by row then column."""
        cells = [r for c in self.columns for r in c.bad]
        return sorted([*self.unreadable_lines, *cells], key=lambda r: (r.row, r.column))

    def to_dict(self) -> dict[str, Any]:
        return {
            "data": self.data, "engine": self.engine, "cache_dir": self.cache_dir,
            "records": self.records, "seconds": round(self.seconds, 3),
            "records_per_second": round(self.records / self.seconds, 2) if self.seconds > 0 else None,
            "columns": [c.to_dict() for c in self.columns],
            "bad": [{"file": r.file, "row": r.row, "column": r.column, "reason": r.reason} for r in self.bad],
        }  # fmt: skip
