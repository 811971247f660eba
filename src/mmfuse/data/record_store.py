"""Prepared records on disk: written chunk by chunk, read back as arrays that stay on disk.

A streamed ``fit`` prepares its table a chunk at a time and appends each chunk here, so memory
holds one chunk, never the table's prepared inputs. Layout of the folder::

    FOLDER/records.json               # modalities, their dtypes and row shapes, rows per shard
    FOLDER/<j>.<shard>.bin            # raw rows of the j-th modality (C order, no header)
    FOLDER/mask.<chunk>.npy           # (rows, M) presence, modalities in the same order
    FOLDER/rows.<chunk>.npy           # original data-row numbers
    FOLDER/targets.<chunk>.npy        # encoded targets, when the records have them

Chunks are appended to the current shard until it holds ``SHARD_BYTES``; then the next shard
begins (every modality at the same record, so shard s covers the same records in each).
``open_records`` gives an ``Encoded`` whose inputs are ``ShardedArray`` (rows read per
batch) and whose masks, row numbers and targets (a few bytes a record) are in memory. Files
are named by position, never by column name, so any column name is safe; ``records.json`` is
written last, so a folder without it is an interrupted write.

The frozen pretrained features inside the records come from the feature cache
(``mmfuse.data.cache``), content-addressed as always: a streamed and an in-memory fit read the
same cache entries and so see the same features.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mmfuse._io import read_json, write_json
from mmfuse.data.preprocess import Encoded
from mmfuse.data.sharded import ShardedArray, ShardFiles
from mmfuse.errors import MmfuseError

MANIFEST = "records.json"
SHARD_BYTES = 2**30
"""Bytes of one shard (summed over modalities) before the next one begins."""


class RecordStore:
    """Appends prepared chunks to ``folder`` (created); ``finish`` writes the manifest.

    Args:
        folder: Where the shards go.
        modalities: The modalities every chunk holds, in the order files are numbered.
    """

    def __init__(self, folder: str | Path, modalities: list[str]) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.modalities = list(modalities)
        self.chunks = 0
        self.shard_rows: list[int] = []
        self.shard_bytes = 0
        self.rows: dict[str, tuple[str, list[int]]] = {}  # modality -> (dtype, row shape)
        self.with_targets: bool | None = None

    def append(self, chunk: Encoded) -> None:
        """Writes one chunk's records (an empty chunk writes nothing)."""
        if len(chunk) == 0:
            return
        has_targets = chunk.targets is not None
        if self.with_targets is not None and has_targets != self.with_targets:
            raise ValueError("every chunk must have targets, or none")
        self.with_targets = has_targets
        if not self.shard_rows or self.shard_bytes >= SHARD_BYTES:
            self.shard_rows.append(0)
            self.shard_bytes = 0
        shard = len(self.shard_rows) - 1
        for j, m in enumerate(self.modalities):
            values = np.ascontiguousarray(chunk.inputs[m])
            layout = (values.dtype.str, list(values.shape[1:]))
            if self.rows.setdefault(m, layout) != layout:
                raise ValueError(f"modality {m!r}: chunk of {layout}, earlier chunks {self.rows[m]}")
            with open(self.folder / f"{j}.{shard:05d}.bin", "ab") as handle:
                handle.write(values.data)
            self.shard_bytes += values.nbytes
        self.shard_rows[-1] += len(chunk)
        name = f"{self.chunks:05d}"
        np.save(self.folder / f"mask.{name}.npy", np.stack([chunk.mask[m] for m in self.modalities], 1))
        np.save(self.folder / f"rows.{name}.npy", chunk.rows.astype(np.int64))
        if chunk.targets is not None:
            np.save(self.folder / f"targets.{name}.npy", chunk.targets)
        self.chunks += 1

    def finish(self) -> None:
        """Marks the folder complete (``open_records`` refuses one without this)."""
        layouts = [self.rows.get(m) for m in self.modalities]
        write_json(self.folder / MANIFEST, {"modalities": self.modalities, "layouts": layouts,
                                            "shard_rows": self.shard_rows, "chunks": self.chunks,
                                            "targets": bool(self.with_targets)})


def open_records(folder: str | Path) -> Encoded:
    """The records ``RecordStore`` wrote to ``folder``; inputs stay on disk (see module doc).

    Raises:
        MmfuseError: The folder holds no finished store, or no records.
    """
    root = Path(folder)
    try:
        manifest = read_json(root / MANIFEST)
    except (OSError, ValueError):
        raise MmfuseError(f"{root} holds no finished record store (no readable {MANIFEST})") from None
    modalities, chunks = list(manifest["modalities"]), int(manifest["chunks"])
    if chunks == 0:
        raise MmfuseError(f"{root}: the record store holds no records")
    shard_rows = [int(n) for n in manifest["shard_rows"]]

    def joined(prefix: str) -> np.ndarray:
        return np.concatenate([np.load(root / f"{prefix}.{c:05d}.npy") for c in range(chunks)])

    mask = joined("mask")
    inputs = {}
    for j, (m, (dtype, item)) in enumerate(zip(modalities, manifest["layouts"])):
        paths = [root / f"{j}.{s:05d}.bin" for s in range(len(shard_rows))]
        inputs[m] = ShardedArray(ShardFiles(paths, shard_rows, np.dtype(dtype), tuple(item)))
    targets = joined("targets") if manifest["targets"] else None
    return Encoded(inputs, {m: mask[:, j].copy() for j, m in enumerate(modalities)},  # type: ignore[arg-type]
                   joined("rows"), targets)
