"""``mmfuse encode --engine ray``: the frozen networks of an ``EncodePlan`` as Ray Data pipelines.

For each column, in three steps:

1. key: Ray tasks check every non-empty cell (``checked_cell``, the one check of every encoder
   path) and hash its content (``content_key``), so the driver never reads the media;
2. triage, on the driver: a content seen before is encoded once, one already in the feature
   cache not at all; what is left is cut into the forward passes ``extract_features`` would make
   (``batch_size`` items in record order), a few of them to a Ray block;
3. encode: a pool of actors, each building the frozen network once, runs every block through
   ``FrozenKind.encode_column`` (the path ``fit`` takes) on one torch thread; the driver writes
   each feature into the cache under the fingerprint and content key ``fit`` looks up.

The same forward passes on one thread give the same floats: the entries equal those of
``--engine local --threads 1`` byte for byte (more threads may round a network's sums
differently in the last bit). Workers must see the media at the same paths as the driver (a
shared filesystem) and run the same package versions (checked: the fingerprint each worker
computes must be the driver's). Only the driver writes the cache, so its folder need not be shared.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd

from mmfuse._progress import log, track
from mmfuse.data.cache import FeatureCache
from mmfuse.data.frozen import source_key
from mmfuse.data.cells import checked_cell, is_empty
from mmfuse.data.kinds.base import ReadOptions
from mmfuse.data.readers import Table
from mmfuse.distributed.session import RaySettings, cli_wording, ray_session, worded
from mmfuse.errors import DecodeError, MmfuseError
from mmfuse.estimators.encoding import ColumnReport, EncodePlan, FrozenColumn

POS, CELL, KEY, PRESENT, ERROR, FEATURES, FINGERPRINT = (
    "pos", "cell", "key", "present", "error", "features", "fingerprint")  # fmt: skip
KEY_BLOCK = 4096
"""Cells per block of the key step."""
BLOCK_ITEMS = 1024
"""Most items per block of the encode step (whole forward passes; fewer when that leaves an
actor fewer than 4 blocks)."""


def encode_with_ray(
    plan: EncodePlan,
    cache: FeatureCache,
    settings: RaySettings,
    missing_files: str = "error",
) -> list[ColumnReport]:
    """Runs every column of ``plan`` on Ray, filling ``cache`` as ``encode_locally`` does.

    Raises:
        MmfuseError: Ray is missing or unreachable; a worker's packages differ from the driver's.
    """
    with ray_session(settings) as ray:
        return [_encode_column(ray, plan, job, cache, settings, missing_files) for job in plan.columns]


@dataclass
class Triage:
    """One column's cells sorted for the network.

    Attributes:
        todo: Positions to encode, in record order (the first of each content).
        keys: Position -> content key, where the content could be hashed.
        copies: First position of a content -> the later positions holding it.
        encoded: Cells that have features (found in the cache so far).
        bad: (position, reason) of every bad cell.
    """

    todo: list[int] = field(default_factory=list)
    keys: dict[int, str] = field(default_factory=dict)
    copies: dict[int, list[int]] = field(default_factory=dict)
    encoded: int = 0
    bad: list[tuple[int, str]] = field(default_factory=list)

    @classmethod
    def of(cls, keyed: pd.DataFrame, cache: FeatureCache, fingerprint: str, shape: tuple[int, ...]) -> Triage:
        """From the key step's rows (sorted by position), as ``extract_features`` sorts cells."""
        out = cls()
        first_of: dict[str, int] = {}  # content key -> its first position
        hits: list[int] = []
        for pos, key, present, error in keyed[[POS, KEY, PRESENT, ERROR]].itertuples(index=False):
            pos = int(pos)
            if error:
                out.bad.append((pos, error))
            elif not present:  # a missing modality
                continue
            elif key in first_of:  # the same file or text again: encoded once
                out.copies[first_of[key]].append(pos)
            elif not key:  # unreadable content: its decoder says why
                out.todo.append(pos)
            else:
                first_of[key], out.copies[pos], out.keys[pos] = pos, [], key
                hit = cache.get(fingerprint, key)
                if hit is not None and hit.shape == shape:
                    hits.append(pos)
                else:
                    out.todo.append(pos)
        out.encoded = sum(1 + len(out.copies[p]) for p in hits)
        return out

    def record(self, pos: int, present: bool, error: str) -> None:
        """The network's result for the first cell of a content, shared with its copies."""
        later = self.copies.get(pos, [])
        if error:
            self.bad += [(p, error) for p in (pos, *later)]
        elif present:
            self.encoded += 1 + len(later)


def _encode_column(
    ray: ModuleType, plan: EncodePlan, job: FrozenColumn, cache: FeatureCache,
    settings: RaySettings, missing_files: str,
) -> ColumnReport:
    """Key step, triage, encode step and cache writes of one column."""
    fingerprint, before = job.fingerprint(), replace(cache.stats)
    values = plan.table.df[job.column].tolist()
    cells = pd.DataFrame({POS: np.arange(len(values)), CELL: pd.Series(values, dtype=object)})
    cells = cells[~cells[CELL].map(is_empty)]
    keyed = _keys(ray, cells, job, plan.table.base_dir, missing_files)
    triage = Triage.of(keyed, cache, fingerprint, job.shape)
    label = f"encoding {job.modality.name} ({job.backbone}) on Ray"
    if settings.verbose:
        log(f"{label}: {len(cells)} cell(s), {len(triage.todo)} to encode")
    if triage.todo:
        todo = cells.set_index(POS).loc[triage.todo, CELL]
        for pos, features, present, error in track(
            _run_network(ray, todo, job, plan, settings, missing_files, fingerprint),
            len(triage.todo), label, settings.verbose,
        ):
            if present and not error and pos in triage.keys:
                cache.put(fingerprint, triage.keys[pos], features)
            triage.record(pos, present, error)
        cache.prune_after_writes()
    bad = tuple(plan.rejection(pos, job.column, reason) for pos, reason in sorted(triage.bad))
    return ColumnReport(job.column, job.modality.name, job.backbone, fingerprint, triage.encoded,
                        cache.stats.hits - before.hits, cache.stats.writes - before.writes, bad)


# ------------------------------------------------------------------------ key step
def _keys(ray: ModuleType, cells: pd.DataFrame, job: FrozenColumn, base_dir: Path, missing_files: str) -> pd.DataFrame:
    """The key step's rows for ``cells``, sorted by position."""
    if cells.empty:
        return pd.DataFrame({POS: [], KEY: [], PRESENT: [], ERROR: []})
    blocks = [cells.iloc[i : i + KEY_BLOCK] for i in range(0, len(cells), KEY_BLOCK)]
    ds = ray.data.from_pandas(blocks).map_batches(
        key_cells, batch_size=None, batch_format="pandas", num_cpus=1,
        fn_kwargs={"job": job, "base_dir": base_dir, "missing_files": missing_files, "cli": cli_wording()},
    )  # fmt: skip
    parts = list(ds.iter_batches(batch_size=None, batch_format="pandas"))
    return pd.concat(parts, ignore_index=True).sort_values(POS, kind="stable")


def key_cells(
    batch: pd.DataFrame, job: FrozenColumn, base_dir: Path, missing_files: str, cli: bool = False
) -> pd.DataFrame:
    """Per cell: its content key ("" where the content cannot be hashed: its decoder will say
    why), whether it holds a value (not a missing modality), and why it is bad ("" if not;
    worded for the command line when ``cli``)."""
    m = job.modality
    keys, present, errors = [], [], []
    for value in batch[CELL]:
        source, error = None, ""
        try:
            with worded(cli):
                source = checked_cell(value, m.cell_kind, base_dir, missing_files, m.audio_track)
        except DecodeError as err:
            error = str(err)
        keys.append("" if source is None else source_key(source) or "")
        present.append(source is not None)
        errors.append(error)
    return pd.DataFrame({POS: batch[POS].to_numpy(), KEY: keys, PRESENT: present, ERROR: errors})


# --------------------------------------------------------------------- encode step
def _run_network(
    ray: ModuleType, todo: pd.Series, job: FrozenColumn, plan: EncodePlan, settings: RaySettings,
    missing_files: str, fingerprint: str,
) -> Iterator[tuple[int, np.ndarray, bool, str]]:
    """(position, features, present, error) of every cell in ``todo`` (any order)."""
    passes = [todo.iloc[i : i + job.batch_size] for i in range(0, len(todo), job.batch_size)]
    workers = settings.pool_size(ray.cluster_resources(), len(passes))
    per_block = max(1, min(BLOCK_ITEMS // job.batch_size, math.ceil(len(passes) / (4 * workers))))
    blocks = [
        pd.DataFrame({POS: part.index.to_numpy(), CELL: part.to_numpy()})
        for part in (pd.concat(passes[i : i + per_block]) for i in range(0, len(passes), per_block))
    ]
    ds = ray.data.from_pandas(blocks).map_batches(
        FrozenNetworkActor, batch_size=None, batch_format="pandas",  # a block = whole passes
        compute=ray.data.ActorPoolStrategy(size=min(workers, len(blocks))),
        fn_constructor_kwargs={"job": job, "base_dir": plan.table.base_dir, "table_name": plan.table.name,
                               "device": settings.actor_device(), "missing_files": missing_files,
                               "cli": cli_wording()},
        **settings.actor_resources(),
    )  # fmt: skip
    for out in ds.iter_batches(batch_size=None, batch_format="numpy"):
        check_fingerprint(set(out[FINGERPRINT].tolist()), fingerprint)
        for pos, features, present, error in zip(out[POS], out[FEATURES], out[PRESENT], out[ERROR]):
            yield int(pos), features, bool(present), str(error)


def check_fingerprint(workers: set[str], driver: str) -> None:
    """Refuses features computed with other package versions than the driver's."""
    other = workers - {driver}
    if other:
        raise MmfuseError(f"a Ray worker computes features with other packages than this machine "
                          f"({other.pop()}; here: {driver}): install the same versions everywhere")


class FrozenNetworkActor:
    """A Ray actor: the frozen network of one column, built once, run on blocks of its cells.

    Args:
        job: The column and its network.
        base_dir: Folder that relative media paths resolve against.
        table_name: The data file, for messages.
        device: "auto", "cpu" or "cuda".
        missing_files: "error" or "missing".
        cli: Word messages for the command line.
    """

    def __init__(self, job: FrozenColumn, base_dir: Path, table_name: str, device: str, missing_files: str,
                 cli: bool) -> None:
        import torch

        from mmfuse.encoders.backbones import FrozenExtractor
        from mmfuse.training.device import resolve_device

        torch.set_num_threads(1)
        extractor = FrozenExtractor(job.backbone, resolve_device(device), job.batch_size)
        extractor.network()  # loaded once, before the first block
        self.processor = job.processor(extractor)
        self.column, self.base_dir, self.table_name = job.column, base_dir, table_name
        self.options = ReadOptions(missing_files, num_threads=1, verbose=False)
        self.fingerprint = job.fingerprint()  # this worker's package versions
        self.cli = cli

    def __call__(self, batch: pd.DataFrame) -> dict[str, np.ndarray]:
        table = Table(pd.DataFrame({self.column: batch[CELL].to_numpy()}), self.base_dir, self.table_name)
        with worded(self.cli):
            arrays = self.processor.encode_column(table, self.options)
        errors = np.full(len(batch), "", dtype=object)
        for pos, _, reason in arrays.errors:
            errors[pos] = reason
        return {POS: batch[POS].to_numpy(), FEATURES: arrays.values, PRESENT: arrays.present,
                ERROR: errors, FINGERPRINT: np.full(len(batch), self.fingerprint, dtype=object)}
