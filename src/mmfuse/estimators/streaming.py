"""Streaming a table's prepared records to disk, and deciding when to.

``fit`` prepares every record before training. In memory that costs the records' prepared size
twice over (the arrays, then the training and validation parts); a 224-pixel image is 600 KB,
so a few hundred thousand records exhaust a workstation. Streamed, the table is prepared a
chunk at a time into a ``RecordStore`` and training reads batches from it, so memory holds a
chunk and a batch whatever the row count. The result is the same record for record: chunks
are prepared by the same code in table order, bad records are rejected by the same rules and
reported together at the end, and frozen features come from the same cache entries.

``should_stream`` streams when ``--stream`` asks, when training runs on several processes (they share
one store instead of each preparing the table), or when the estimated prepared size does not
fit comfortably in the memory available now.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from mmfuse._hints import option
from mmfuse._progress import log, track
from mmfuse.data.preprocess import Encoded, Rejection, every_record_bad, summarise_rejections
from mmfuse.data.readers import Table
from mmfuse.data.record_store import RecordStore, open_records
from mmfuse.errors import MmfuseError
from mmfuse.estimators.pipeline import Pipeline, split_encoded
from mmfuse.training import distributed
from mmfuse.types import InputSpec

CHUNK_BYTES = 128 * 2**20
"""Prepared bytes per chunk, at most ``CHUNK_ROWS`` records."""
CHUNK_ROWS = (256, 8192)
"""Fewest and most records per chunk: decoding holds a few Python objects per cell, so small
records (a feature vector, a few numbers) are capped by count, not bytes."""
MEMORY_SHARE = 0.25
"""Stream when the prepared records would take more than this share of the available memory:
in memory they are held about twice (all records, then the training and validation parts),
beside the model and the table."""
_ITEM_BYTES = {"text": 8}  # token ids are int64; every other input is float32


def record_bytes(specs: dict[str, InputSpec]) -> int:
    """Prepared bytes of one record, every modality present."""
    return sum(int(np.prod(s.shape)) * _ITEM_BYTES.get(s.kind, 4) for s in specs.values())


def available_memory() -> int | None:
    """Bytes of memory available to new work now (Linux ``MemAvailable``), or None if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def should_stream(rows: int, specs: dict[str, InputSpec], forced: bool, verbose: bool) -> bool:
    """Whether to stream ``rows`` records of this shape, saying why when it does."""
    size = f"the prepared records take about {_gb(rows * record_bytes(specs))}"
    if forced:
        log(f"streaming ({option('stream')}): {size}; they are read from disk in batches", verbose)
        return True
    if distributed.active():
        log(f"streaming: {size}; the training processes share them on disk", verbose)
        return True
    short = memory_shortfall(rows, specs)
    if short is not None:
        log(f"streaming: {short}; preparing them to disk and reading them from there in batches "
            f"({option('stream')} always does)", verbose)
        return True
    return False


def memory_shortfall(rows: int, specs: dict[str, InputSpec]) -> str | None:
    """Why ``rows`` records of this shape would not fit in memory (their size against the memory
    available, more than ``MEMORY_SHARE`` of it), or None where they fit."""
    need, free = rows * record_bytes(specs), available_memory()
    if free is not None and need > MEMORY_SHARE * free:
        return f"the prepared records take about {_gb(need)} and {_gb(free)} of memory is available"
    return None


def _gb(count: int) -> str:
    return f"{count / 2**30:.2f} GB" if count >= 2**28 else f"{count / 2**20:.0f} MB"


def chunk_rows(specs: dict[str, InputSpec]) -> int:
    """Records per chunk: about ``CHUNK_BYTES`` of prepared inputs, within ``CHUNK_ROWS``."""
    return int(np.clip(CHUNK_BYTES // max(record_bytes(specs), 1), *CHUNK_ROWS))


def prepared_chunks(pipeline: Pipeline, table: Table, with_target: bool = True, allow_empty: bool = False,
                    task: str = "preparing records") -> Iterator[Encoded]:
    """The records of ``table`` prepared ``chunk_rows`` at a time, in table order; memory holds
    one chunk. Each chunk's ``rejected`` lists its bad records. After the last chunk, bad records
    follow the pipeline's policy as in ``Pipeline.prepare``: every bad value of the table is
    listed in one error, or the records are left out (said once); a table of bad records only
    is an error unless ``allow_empty``."""
    pipeline.check_columns(table)
    quiet = dataclasses.replace(pipeline, verbose=False)
    size = chunk_rows(pipeline.preprocessor.input_specs())
    rejected: list[Rejection] = []
    kept, n = 0, len(table.df)
    for start in track(range(0, n, size), -(-n // size), task, pipeline.verbose and n > size):
        lines = table.bad_lines if start == 0 else []
        part = Table(table.df.iloc[start : start + size], table.base_dir, table.name, lines)
        chunk = quiet.prepare(part, with_target, on_bad_record="skip", allow_empty=True)
        rejected += chunk.rejected
        kept += len(chunk)
        yield chunk
    if rejected and pipeline.on_bad_record == "raise":
        raise MmfuseError(summarise_rejections(table.name, sorted(rejected, key=lambda r: (r.row, r.column))))
    if kept == 0 and not allow_empty:
        raise MmfuseError(every_record_bad(table.name, rejected))
    if rejected:
        log(f"{table.name}: skipped {len({r.row for r in rejected})} bad record(s)", pipeline.verbose)


def prepare_streamed(pipeline: Pipeline, table: Table, folder: Path, with_target: bool = True) -> Encoded:
    """The records of ``table`` prepared into ``folder`` a chunk at a time (``prepared_chunks``)
    and opened from there."""
    store = RecordStore(folder, list(pipeline.modalities))
    rejected: list[Rejection] = []
    for chunk in prepared_chunks(pipeline, table, with_target, task="preparing records to disk"):
        rejected += chunk.rejected
        store.append(chunk)
    store.finish()
    records = open_records(folder)
    records.rejected = rejected
    return records


def prepared_streamed(pipeline: Pipeline, tables: dict[str, Table], train_rows: np.ndarray | None, folder: Path
                      ) -> tuple[Encoded, Encoded]:
    """Training and validation records streamed into ``folder``: ``tables`` is {"all": table},
    prepared in one pass and split like ``split_encoded`` does in memory (``train_rows``: the
    training part's row numbers), or {"train": ..., "valid": ...}, each in its own store. With
    several processes the first prepares and the others open what it wrote; a failure there
    stops them all."""
    failure: MmfuseError | None = None
    records: dict[str, Encoded] = {}
    if distributed.is_main():
        try:
            records = {name: prepare_streamed(pipeline, part, folder / name) for name, part in tables.items()}
        except MmfuseError as err:
            failure = err
    if distributed.any_process(failure is not None):  # every process waits here for the first
        raise failure or MmfuseError("the first training process could not prepare the records; see its message")
    if not records:
        records = {name: open_records(folder / name) for name in tables}
    if train_rows is None:
        return records["train"], records["valid"]
    return split_encoded(records["all"], train_rows)


@contextmanager
def record_folder(store_dir: str | None, shared: Path | None) -> Iterator[Path]:
    """A folder for one fit's streamed records, deleted afterwards: ``shared`` when processes
    must find the same one (several training processes), else a new folder under ``store_dir``
    (default: the system's temporary folder)."""
    if shared is not None:
        if distributed.is_main():  # a crashed run's records must not be taken for this one's
            shutil.rmtree(shared, ignore_errors=True)
        shared.mkdir(parents=True, exist_ok=True)
        folder = shared
    else:
        if store_dir is not None:
            os.makedirs(store_dir, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix="mmfuse-records-", dir=store_dir))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
