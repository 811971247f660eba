"""Prepared records on disk: written chunk by chunk, read back as arrays that stay on disk.

A streamed ``fit`` prepares its table a chunk at a time and appends each chunk here, so memory
holds one chunk, never the table's prepared inputs. Layout of the folder::

    FOLDER/records.json               # modalities (in file order), shard count, target or not
    FOLDER/<j>.<shard>.npy            # inputs of the j-th modality, one file per chunk
    FOLDER/mask.<shard>.npy           # (rows, M) presence, modalities in the same order
    FOLDER/rows.<shard>.npy           # original data-row numbers
    FOLDER/targets.<shard>.npy        # encoded targets, when the records have them

``open`` gives an ``Encoded`` whose inputs are ``ShardedArray`` (rows copied out per batch)
and whose masks, row numbers and targets (a few bytes a record) are in memory. Files are
named by position, never by column name, so any column name is safe; ``records.json`` is
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
        self.shards = 0
        self.with_targets: bool | None = None

    def append(self, chunk: Encoded) -> None:
        """Writes one chunk's records as the next shard (an empty chunk writes nothing)."""
        if len(chunk) == 0:
            return
        has_targets = chunk.targets is not None
        if self.with_targets is not None and has_targets != self.with_targets:
            raise ValueError("every chunk must have targets, or none")
        self.with_targets = has_targets
        name = f"{self.shards:05d}"
        for j, m in enumerate(self.modalities):
            np.save(self.folder / f"{j}.{name}.npy", np.ascontiguousarray(chunk.inputs[m]), allow_pickle=False)
        mask = np.stack([chunk.mask[m] for m in self.modalities], 1)
        np.save(self.folder / f"mask.{name}.npy", mask, allow_pickle=False)
        np.save(self.folder / f"rows.{name}.npy", chunk.rows.astype(np.int64), allow_pickle=False)
        if chunk.targets is not None:
            np.save(self.folder / f"targets.{name}.npy", chunk.targets, allow_pickle=False)
        self.shards += 1

    def finish(self) -> None:
        """Marks the folder complete (``open`` refuses one without this)."""
        write_json(self.folder / MANIFEST, {"modalities": self.modalities, "shards": self.shards,
                                            "targets": bool(self.with_targets)})


def open_records(folder: str | Path) -> Encoded:
    """The records ``RecordStore`` wrote to ``folder``; inputs stay on disk (see module doc).

    Raises:
        MmfuseError: The folder holds no finished store.
    """
    root = Path(folder)
    try:
        manifest = read_json(root / MANIFEST)
    except (OSError, ValueError):
        raise MmfuseError(f"{root} holds no finished record store (no readable {MANIFEST})") from None
    modalities, shards = list(manifest["modalities"]), int(manifest["shards"])
    names = [f"{s:05d}" for s in range(shards)]

    def joined(prefix: str) -> np.ndarray:
        return np.concatenate([np.load(root / f"{prefix}.{n}.npy", allow_pickle=False) for n in names])

    if shards == 0:
        raise MmfuseError(f"{root}: the record store holds no records")
    mask = joined("mask")
    inputs = {m: ShardedArray(ShardFiles.open([root / f"{j}.{n}.npy" for n in names]))
              for j, m in enumerate(modalities)}
    targets = joined("targets") if manifest["targets"] else None
    return Encoded(inputs, {m: mask[:, j].copy() for j, m in enumerate(modalities)},  # type: ignore[misc]
                   joined("rows"), targets)
