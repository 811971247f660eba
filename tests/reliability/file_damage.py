"""Damaging files on purpose, for the model- and index-directory batteries: truncate, flip
bytes, edit JSON, replace a file by a folder, and plant a pickle that proves it was loaded."""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from pathlib import Path


class Planted:
    """A pickle whose loading creates ``path``: proof that something unpickled it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Callable[..., object], tuple[str, str]]:
        return open, (str(self.path), "w")


def plant(target: Path, marker: Path) -> None:
    target.write_bytes(pickle.dumps(Planted(marker)))


def edit_json(path: Path, change: Callable[[dict], object]) -> None:
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


def halve(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def flip_bytes(path: Path, count: int = 2000) -> None:
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    for i in range(middle, min(middle + count, len(data))):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def replace_with_folder(path: Path) -> None:
    path.unlink()
    path.mkdir()
