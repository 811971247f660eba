"""Which files of a feature-cache folder are mmfuse's: its ``CACHEDIR.TAG`` and its layout.

The layout (see ``mmfuse.data.cache``)::

    ROOT/CACHEDIR.TAG                         # Cache Directory Tagging Specification, names mmfuse
    ROOT/<16 hex>/info.json                   # one folder per encoder fingerprint
    ROOT/<16 hex>/<2 hex>/<64 hex>.npy        # entries; the 2 hex digits begin the 64
    .<name>.<random>.tmp next to any of them  # leftovers of interrupted atomic writes

``scan`` sorts what a folder holds into these kinds and "other"; only the former are ever
deleted. It descends only into folders of the layout and never follows a symbolic link.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from mmfuse._io import atomic_open

TAG_NAME = "CACHEDIR.TAG"
TAG_SIGNATURE = "Signature: 8a477f597d28d172789f06886806bc55"
TAG_TEXT = (
    f"{TAG_SIGNATURE}\n"
    "# This file is a cache directory tag created by mmfuse for its feature cache.\n"
    "# mmfuse deletes only its own entries here. See https://bford.info/cachedir/\n"
)
_SLUG = re.compile(r"[0-9a-f]{16}")
_SHARD = re.compile(r"[0-9a-f]{2}")
_ENTRY = re.compile(r"[0-9a-f]{64}\.npy")
# leftovers of mmfuse._io.atomic_path: ".<name>.<random>.tmp"
_TEMP = re.compile(r"\.(?:[0-9a-f]{64}\.npy|info\.json|CACHEDIR\.TAG)\.[a-z0-9_]+\.tmp")


@dataclass
class Found:
    """Files of one folder level by kind; only ``entries``, ``temporary`` and ``infos`` are
    ever deleted, ``folders`` only when empty."""

    entries: list[tuple[Path, int, float]] = field(default_factory=list)  # (path, bytes, mtime)
    temporary: list[tuple[Path, int]] = field(default_factory=list)
    infos: list[Path] = field(default_factory=list)
    other: list[Path] = field(default_factory=list)
    folders: list[Path] = field(default_factory=list)  # children before parents

    @property
    def size(self) -> int:
        return sum(e[1] for e in self.entries) + sum(t[1] for t in self.temporary)


@dataclass
class Scan:
    """The cache folder: what lies directly in it, and per encoder folder."""

    top: Found = field(default_factory=Found)
    per_encoder: dict[Path, Found] = field(default_factory=dict)

    def all(self) -> list[Found]:
        return [self.top, *self.per_encoder.values()]


def scan(root: Path) -> Scan:
    """What ``root`` holds; descends only into folders of mmfuse's layout, never follows links."""
    result = Scan()
    for item in _children(root):
        path = Path(item.path)
        if item.is_dir(follow_symlinks=False) and _SLUG.fullmatch(item.name):
            found = result.per_encoder[path] = Found()
            for child in _children(path):
                if child.is_dir(follow_symlinks=False) and _SHARD.fullmatch(child.name):
                    _sort_files(Path(child.path), found, child.name)
                    found.folders.append(Path(child.path))
                else:
                    _sort_file(child, found, None)
            found.folders.append(path)
        elif not (item.name == TAG_NAME and item.is_file(follow_symlinks=False)):
            _sort_file(item, result.top, "")
    return result


def _sort_files(folder: Path, found: Found, shard: str) -> None:
    for item in _children(folder):
        _sort_file(item, found, shard)


def _sort_file(item: os.DirEntry[str], found: Found, shard: str | None) -> None:
    """Files an item by kind. ``shard``: the 2 hex digits of a shard folder (entries live
    there), None in an encoder folder (its info.json), "" directly in the cache folder."""
    path = Path(item.path)
    if not item.is_file(follow_symlinks=False):
        found.other.append(path)
    elif shard and _ENTRY.fullmatch(item.name) and item.name.startswith(shard):
        st = item.stat(follow_symlinks=False)
        found.entries.append((path, st.st_size, st.st_mtime))
    elif shard is None and item.name == "info.json" and _is_info(path):
        found.infos.append(path)
    elif _TEMP.fullmatch(item.name):
        found.temporary.append((path, item.stat(follow_symlinks=False).st_size))
    else:
        found.other.append(path)


def _is_info(path: Path) -> bool:
    """Whether an info.json is mmfuse's: ``{"fingerprint": "..."}`` and nothing else."""
    try:
        with open(path, encoding="utf-8") as handle:
            content = json.loads(handle.read(1 << 16))
    except (OSError, ValueError):
        return False
    return isinstance(content, dict) and list(content) == ["fingerprint"]


def _children(folder: Path) -> list[os.DirEntry[str]]:
    with os.scandir(folder) as items:
        return sorted(items, key=lambda e: e.name)


def read_tag(root: Path) -> str | None:
    """"mmfuse" for mmfuse's CACHEDIR.TAG, "other" for another program's, None for none."""
    try:
        with open(root / TAG_NAME, "rb") as handle:
            head = handle.read(512)
    except FileNotFoundError:
        return None
    except OSError:  # a folder or an unreadable file by that name
        return "other"
    ours = head.startswith(TAG_SIGNATURE.encode()) and b"mmfuse" in head
    return "mmfuse" if ours else "other"


def blocking_file(path: Path) -> Path | None:
    """The file (or other non-folder) at ``path`` or above it that keeps it from being a folder."""
    for p in (path, *path.parents):
        if p.exists() or p.is_symlink():
            return None if p.is_dir() else p
    return None


def remove_empty(folders: list[Path]) -> None:
    """Removes those of ``folders`` (children listed before parents) that are empty."""
    for folder in folders:
        with contextlib.suppress(OSError):  # a folder that still holds other files stays
            folder.rmdir()


def write_tag(root: Path) -> None:
    """Marks ``root`` as mmfuse's cache folder."""
    with atomic_open(root / TAG_NAME) as handle:
        handle.write(TAG_TEXT)
