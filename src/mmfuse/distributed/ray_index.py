"""``mmfuse index --engine ray``: a collection's embeddings from Ray Data, its index built here.

A pool of actors each loads the retrieval model once (verified as ``load`` verifies it, with
the run options of the driver's model) and embeds blocks of the collection through
``encode_table``, the local engine's own path; the driver gathers the vectors in table order,
applies the bad-record policy to every rejected row, and hands them to ``build_index``. The
index therefore holds the vectors, row ids and metadata the local engine writes: a block is
``INDEX_BLOCK`` rows, the forward pass the local engine makes (``embed_encoded``), and its
frozen features come from the same cache or the same passes of the networks.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mmfuse._progress import log, track
from mmfuse.data.preprocess import Encoded, Rejection, summarise_rejections
from mmfuse.data.readers import Table
from mmfuse.distributed.session import RaySettings, cli_wording, ray_session, worded
from mmfuse.errors import MmfuseError

if TYPE_CHECKING:
    from mmfuse.estimators.facade import DataLike
    from mmfuse.estimators.retriever import MultimodalRetriever
    from mmfuse.retrieval.index import VectorIndex

ROW, CELL, VECTOR, KEPT, COLUMN, REASON, FINGERPRINT = (
    "row", "cell", "vector", "kept", "column", "reason", "fingerprint")  # fmt: skip
INDEX_BLOCK = 512
"""Rows per block: ``embed_encoded``'s batch, so that each block is one of the local engine's
forward passes through the tower."""


def index_with_ray(
    est: MultimodalRetriever,
    data: DataLike,
    column: str,
    out_dir: str | Path | None,
    approximate: str | None,
    append: bool,
    load_options: dict[str, Any],
    settings: RaySettings,
) -> VectorIndex:
    """``est.index(data, column, out_dir, approximate, append)`` with the embeddings from Ray.

    Args:
        est: The retrieval model, loaded from its directory (``est.model_dir_``).
        load_options: The run options it was loaded with; every actor loads it with these.
        settings: Where Ray runs.

    Raises:
        MmfuseError: As ``index``; Ray is missing or unreachable; the model directory changed
            while the actors loaded it.
    """
    from mmfuse.estimators.retrieval_index import build_index

    if not getattr(est, "model_dir_", None):
        raise MmfuseError("--engine ray loads the model in every actor: save it to a directory first")
    with ray_session(settings) as ray:
        embed = RayEmbedder(ray, est, load_options, settings)
        return build_index(est, est.read(data), column, out_dir, approximate, append, embed)


class RayEmbedder:
    """``encode_table(table, column, tower)`` of a saved retrieval model, run by Ray actors."""

    def __init__(self, ray: ModuleType, est: MultimodalRetriever, load_options: dict[str, Any],
                 settings: RaySettings) -> None:
        self.ray, self.settings, self.load_options = ray, settings, load_options
        self.model_dir, self.fingerprint = str(est.model_dir_), est.fingerprint_
        self.on_bad_record, self.dim = est.on_bad_record, est.model_config_.embed_dim

    def __call__(self, table: Table, column: str, tower: str) -> tuple[np.ndarray, Encoded]:
        """(N, embed_dim) vectors of the kept rows in table order, and those rows."""
        values = table.df[column]
        vectors = np.zeros((len(values), self.dim), dtype=np.float32)
        kept = np.zeros(len(values), dtype=bool)
        position = {int(row): i for i, row in enumerate(table.df.index)}
        rejected = [Rejection(b.row, "", b.reason, table.name) for b in table.bad_lines]
        label = f"embedding {column} ({tower}) on Ray"
        for row, vector, is_kept, bad_column, reason in track(self._rows(table, column, tower), len(values),
                                                              label, self.settings.verbose):
            i = position[row]
            vectors[i], kept[i] = vector, is_kept
            if reason:
                rejected.append(Rejection(row, bad_column, reason, table.name))
        rejected.sort(key=lambda r: (r.row, r.column))
        self._check(table, rejected)
        rows = table.df.index.to_numpy(dtype=np.int64)[kept]
        return vectors[kept], Encoded({}, {}, rows, None, rejected)

    def _rows(self, table: Table, column: str, tower: str) -> Iterator[tuple[int, np.ndarray, bool, str, str]]:
        """(row, vector, kept, rejected column, reason) of every row, in any order."""
        values = table.df[column]
        blocks = [
            pd.DataFrame({ROW: values.index[i : i + INDEX_BLOCK].to_numpy(dtype=np.int64),
                          CELL: values.iloc[i : i + INDEX_BLOCK].to_numpy(dtype=object)})
            for i in range(0, len(values), INDEX_BLOCK)
        ]  # fmt: skip
        if not blocks:
            return
        size = self.settings.pool_size(self.ray.cluster_resources(), len(blocks))
        ds = self.ray.data.from_pandas(blocks).map_batches(
            RetrieverActor, batch_size=None, batch_format="pandas",
            compute=self.ray.data.ActorPoolStrategy(size=size),
            fn_constructor_kwargs={"model_dir": self.model_dir,
                                   "load_options": {**self.load_options, "device": self.settings.actor_device()},
                                   "column": column, "tower": tower, "base_dir": table.base_dir,
                                   "table_name": table.name, "cli": cli_wording()},
            **self.settings.actor_resources(),
        )  # fmt: skip
        for out in ds.iter_batches(batch_size=None, batch_format="numpy"):
            if set(out[FINGERPRINT].tolist()) != {self.fingerprint}:
                raise MmfuseError(f"the model in {self.model_dir} changed while the Ray actors loaded it; run again")
            for row, vector, is_kept, bad_column, reason in zip(out[ROW], out[VECTOR], out[KEPT], out[COLUMN], out[REASON]):
                yield int(row), vector, bool(is_kept), str(bad_column), str(reason)

    def _check(self, table: Table, rejected: list[Rejection]) -> None:
        """The bad-record policy, as ``Preprocessor.transform`` applies it."""
        if not rejected:
            return
        if self.on_bad_record == "raise":
            raise MmfuseError(summarise_rejections(table.name, rejected))
        bad_rows = {r.row for r in rejected if r.column}
        if len(table.df) and bad_rows >= set(table.df.index.tolist()):
            first = rejected[0]
            raise MmfuseError(f"{table.name}: every record is bad ({len(rejected)} bad value(s)); the "
                              f"first: row {first.row}, column {first.column!r}: {first.reason}")
        if self.settings.verbose:
            log(f"{table.name}: skipped {len(bad_rows) + len(table.bad_lines)} bad record(s)")


class RetrieverActor:
    """A Ray actor: the retrieval model loaded once, embedding blocks of one column.

    Args:
        model_dir: The model directory.
        load_options: Run options to load it with (one thread; bad records are returned, not
            raised, so that the driver applies the policy to all of them at once).
        column: The table column embedded.
        tower: The tower that embeds it.
        base_dir: Folder that relative media paths resolve against.
        table_name: The data file, for messages.
        cli: Word messages for the command line.
    """

    def __init__(self, model_dir: str, load_options: dict[str, Any], column: str, tower: str,
                 base_dir: Path, table_name: str, cli: bool) -> None:
        from mmfuse.estimators.io import load

        options = {**load_options, "num_threads": 1, "verbose": False, "on_bad_record": "skip"}
        self.est = load(model_dir, **options)
        self.column, self.tower, self.base_dir, self.table_name = column, tower, base_dir, table_name
        self.cli = cli

    def __call__(self, batch: pd.DataFrame) -> dict[str, np.ndarray]:
        rows = batch[ROW].to_numpy(dtype=np.int64)
        df = pd.DataFrame({self.column: batch[CELL].to_numpy()}, index=rows)
        table = Table(df, self.base_dir, self.table_name)
        with worded(self.cli):
            vectors, enc = self.est.encode_table(table, self.column, self.tower, "skip", allow_empty=True)
        where = {int(row): i for i, row in enumerate(rows)}
        out = np.zeros((len(rows), vectors.shape[1]), dtype=np.float32)
        kept = np.zeros(len(rows), dtype=bool)
        embedded = [where[int(r)] for r in enc.rows]
        out[embedded], kept[embedded] = vectors, True
        columns, reasons = np.full(len(rows), "", dtype=object), np.full(len(rows), "", dtype=object)
        for r in enc.rejected:
            columns[where[r.row]], reasons[where[r.row]] = r.column, r.reason
        return {ROW: rows, VECTOR: out, KEPT: kept, COLUMN: columns, REASON: reasons,
                FINGERPRINT: np.full(len(rows), self.est.fingerprint_, dtype=object)}
