"""On-disk cache of frozen-encoder features, keyed by content, encoder and preprocessing.

Layout under the cache root::

    ROOT/<encoder-slug>/info.json           # the readable fingerprint (encoder, versions, prep)
    ROOT/<encoder-slug>/<k[:2]>/<k>.npy     # one feature array per input

``<encoder-slug>`` hashes the fingerprint (network + package versions + preprocessing), ``<k>``
hashes the input's content (the file's bytes, or the text itself), so a changed file or a new
encoder version can never hit an old entry. Entries are written to a temporary file and renamed
(atomic: concurrent runs and interrupted writes never leave a partial entry; at worst a
``.tmp`` file that ``clear`` removes). A size limit evicts the least recently used entries.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmfuse._io import atomic_path, read_json, write_json

CACHE_ENV = "MMFUSE_CACHE_DIR"
DEFAULT_MAX_GB = 20.0


def default_cache_dir() -> Path:
    """``$MMFUSE_CACHE_DIR``, else ``$XDG_CACHE_HOME/mmfuse``, else ``~/.cache/mmfuse``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mmfuse"


def content_key(path: Path | None = None, text: str | None = None) -> str:
    """SHA-256 of a file's bytes, or of a text (for inline text cells)."""
    h = hashlib.sha256()
    if text is not None:
        h.update(b"text\0" + text.encode("utf-8", "surrogatepass"))
        return h.hexdigest()
    assert path is not None
    if path.is_dir():  # a folder of frames: names and bytes of every file, in order
        for child in sorted(p for p in path.rglob("*") if p.is_file()):
            h.update(str(child.relative_to(path)).encode() + b"\0")
            _hash_file(h, child)
        return h.hexdigest()
    _hash_file(h, path)
    return h.hexdigest()


def _hash_file(h: hashlib._Hash, path: Path) -> None:
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            h.update(chunk)


@dataclass
class CacheStats:
    """What one ``FeatureCache`` saw: hits, misses, writes, rejected (corrupt) entries, and hits
    whose recency could not be recorded (a read-only cache folder)."""

    hits: int = 0
    misses: int = 0
    writes: int = 0
    corrupt: int = 0
    stale_recency: int = 0


class FeatureCache:
    """Feature arrays stored by (fingerprint, content key).

    Args:
        root: Cache folder (created on first write).
        max_bytes: Size limit; ``prune`` evicts least recently used entries above it.
    """

    def __init__(self, root: str | Path | None = None, max_bytes: float | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else default_cache_dir()
        self.max_bytes = max_bytes if max_bytes is not None else DEFAULT_MAX_GB * 1024**3
        self.stats = CacheStats()

    def _folder(self, fingerprint: str) -> Path:
        return self.root / hashlib.sha256(fingerprint.encode()).hexdigest()[:16]

    def _entry(self, fingerprint: str, key: str) -> Path:
        return self._folder(fingerprint) / key[:2] / f"{key}.npy"

    def get(self, fingerprint: str, key: str) -> np.ndarray | None:
        """The stored features, or None (a corrupt entry is deleted and counts as a miss)."""
        path = self._entry(fingerprint, key)
        try:
            value = np.load(path, allow_pickle=False)
        except FileNotFoundError:
            self.stats.misses += 1
            return None
        except (OSError, ValueError, EOFError):
            self.stats.corrupt += 1
            self.stats.misses += 1
            path.unlink(missing_ok=True)
            return None
        self.stats.hits += 1
        try:
            os.utime(path)  # recency for least-recently-used eviction
        except OSError:  # a read-only cache still serves hits; only its eviction order ages
            self.stats.stale_recency += 1
        return value

    def put(self, fingerprint: str, key: str, value: np.ndarray) -> None:
        """Stores ``value`` atomically (temporary file + rename)."""
        folder = self._folder(fingerprint)
        if not (folder / "info.json").exists():
            write_json(folder / "info.json", {"fingerprint": fingerprint})
        with atomic_path(self._entry(fingerprint, key)) as tmp:
            with open(tmp, "wb") as handle:
                np.save(handle, np.ascontiguousarray(value), allow_pickle=False)
        self.stats.writes += 1

    # ---------------------------------------------------------------- maintenance
    def info(self) -> dict[str, object]:
        """Size and entry count per encoder fingerprint, plus leftover temporary files."""
        encoders = []
        total = entries = temp = 0
        if self.root.is_dir():
            for folder in sorted(p for p in self.root.iterdir() if p.is_dir()):
                files = [p for p in folder.rglob("*") if p.is_file() and p.name != "info.json"]
                done = [p for p in files if p.suffix == ".npy"]
                size = sum(p.stat().st_size for p in files)
                temp += len(files) - len(done)
                total += size
                entries += len(done)
                fingerprint = _read_fingerprint(folder)
                encoders.append({"fingerprint": fingerprint, "entries": len(done), "bytes": size})
        return {
            "root": str(self.root),
            "entries": entries,
            "bytes": total,
            "max_bytes": int(self.max_bytes),
            "temporary_files": temp,
            "encoders": encoders,
        }

    def clear(self) -> int:
        """Deletes every entry; returns the number of bytes freed."""
        freed = int(self.info()["bytes"])  # type: ignore[call-overload]
        if self.root.is_dir():
            for folder in self.root.iterdir():
                if folder.is_dir():
                    shutil.rmtree(folder, ignore_errors=True)
        return freed

    def prune(self) -> int:
        """Evicts least recently used entries until the cache fits ``max_bytes``; returns the
        number of entries removed."""
        if not self.root.is_dir():
            return 0
        files = [(p.stat(), p) for p in self.root.glob("*/*/*") if p.is_file()]
        total = sum(st.st_size for st, _ in files)
        removed = 0
        for st, path in sorted(files, key=lambda item: item[0].st_mtime):
            if total <= self.max_bytes:
                break
            path.unlink(missing_ok=True)
            total -= st.st_size
            removed += 1
        return removed


def _read_fingerprint(folder: Path) -> str:
    try:
        return str(read_json(folder / "info.json")["fingerprint"])
    except (OSError, ValueError, KeyError, TypeError):
        return "?"
