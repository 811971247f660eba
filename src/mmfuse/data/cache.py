"""On-disk cache of frozen-encoder features, keyed by content, encoder and preprocessing.

Layout under the cache root::

    ROOT/CACHEDIR.TAG                       # marks the folder as mmfuse's cache (see below)
    ROOT/<encoder-slug>/info.json           # the readable fingerprint (encoder, versions, prep)
    ROOT/<encoder-slug>/<k[:2]>/<k>.npy     # one feature array per input

``<encoder-slug>`` (16 hex digits) hashes the fingerprint (network + package versions +
preprocessing), ``<k>`` (64 hex digits) hashes the input's content (the file's bytes, the text
itself, or an in-memory cell's bytes: see ``content_key``), so a changed file or a new encoder
version can never hit an old entry. Entries are written to a temporary file and renamed
(atomic: concurrent runs and interrupted writes never leave a partial entry; at worst a
``.tmp`` file that ``clear`` removes). A size limit evicts the least recently used entries.

Deleting only what mmfuse wrote: the folder carries a ``CACHEDIR.TAG`` (the Cache Directory
Tagging Specification, https://bford.info/cachedir/) that names mmfuse. It is written when mmfuse
creates the folder or first writes into an empty one. A folder without it is never written to,
cleared or pruned unless every file in it has mmfuse's layout: such a folder is a cache of an
mmfuse from before the tag and is adopted (tagged) on the first write, clear or prune; any
other file in it shows that it is someone's own folder (MmfuseError). Even in a tagged folder,
only files of the layout above (and mmfuse's own ``.tmp`` leftovers) are ever deleted.

An unwritable folder (read-only, on a read-only ``$HOME``, a file in the way) never fails a
run: the first failed write prints one notice and the cache then only serves what it holds.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from mmfuse._hints import option
from mmfuse._io import atomic_path, read_json, write_json
from mmfuse._progress import log
from mmfuse.data.cache_layout import Scan, blocking_file, read_tag, remove_empty, scan, write_tag
from mmfuse.errors import MmfuseError

CACHE_ENV = "MMFUSE_CACHE_DIR"
DEFAULT_MAX_GB = 20.0
_FIXES = {
    "write features into": f"Point --cache-dir (or ${CACHE_ENV}) at an empty or new folder, which "
    "mmfuse marks as its cache, or at one mmfuse created; or pass --no-cache",
    "clear": "Pass the --cache-dir of a folder mmfuse created (see `mmfuse cache info`)",
    "prune": "Pass the --cache-dir of a folder mmfuse created (see `mmfuse cache info`)",
}


def default_cache_dir() -> Path:
    """``$MMFUSE_CACHE_DIR``, else ``$XDG_CACHE_HOME/mmfuse``, else ``~/.cache/mmfuse``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "mmfuse"
    try:
        return Path.home() / ".cache" / "mmfuse"
    except RuntimeError:  # no $HOME and no password entry
        raise MmfuseError(
            f"cannot find a home folder for the feature cache: set ${CACHE_ENV} or pass --cache-dir"
        ) from None


class Hasher(Protocol):
    """What the content keys feed: a hashlib object (its type has no public name)."""

    def update(self, data: bytes | bytearray | memoryview, /) -> None: ...


def content_key(path: Path | None = None, text: str | None = None, value: Any = None) -> str:
    """SHA-256 of a file's bytes, of a text (for inline text cells) or of an in-memory media
    cell (``value``: bytes hash as a file with those bytes would; a numpy array by its dtype,
    shape and bytes; an ``(array, rate)`` pair also by its rate; a PIL image by its mode, size,
    palette, transparency and pixels)."""
    h = hashlib.sha256()
    if text is not None:
        h.update(b"text\0" + text.encode("utf-8", "surrogatepass"))
        return h.hexdigest()
    if value is not None:
        _hash_value(h, value)
        return h.hexdigest()
    assert path is not None
    if path.is_dir():  # a folder of frames: names and bytes of every file, in order
        for child in sorted(p for p in path.rglob("*") if p.is_file()):
            h.update(str(child.relative_to(path)).encode() + b"\0")
            _hash_file(h, child)
        return h.hexdigest()
    _hash_file(h, path)
    return h.hexdigest()


def _hash_value(h: Hasher, value: Any) -> None:
    if isinstance(value, (bytes, bytearray, memoryview)):
        h.update(value)  # the same bytes as a file: one entry for both
    elif isinstance(value, tuple):  # (array, sample_rate)
        h.update(f"wave\0{int(value[1])}\0".encode())
        _hash_array(h, value[0])
    elif isinstance(value, np.ndarray):
        h.update(b"array\0")
        _hash_array(h, value)
    else:  # a PIL image
        palette = value.getpalette() or []
        head = f"pil\0{value.mode}\0{value.size}\0{palette}\0{value.info.get('transparency')!r}\0"
        h.update(head.encode())
        h.update(value.tobytes())


def _hash_array(h: Hasher, array: np.ndarray) -> None:
    h.update(f"{array.dtype.str}\0{array.shape}\0".encode())
    h.update(np.ascontiguousarray(array).tobytes())


def _hash_file(h: Hasher, path: Path) -> None:
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
        root: Cache folder (created, with its ``CACHEDIR.TAG``, on first write).
        max_bytes: Size limit; ``prune`` evicts least recently used entries above it.
        read_only: Only read entries: never create, write, touch or delete anything in
            ``root`` (for a folder named by a file mmfuse did not write, e.g. a model's
            config.json).
    """

    def __init__(
        self,
        root: str | Path | None = None,
        max_bytes: float | None = None,
        read_only: bool = False,
    ) -> None:
        self.root = Path(root).expanduser() if root is not None else default_cache_dir()
        self.max_bytes = max_bytes if max_bytes is not None else DEFAULT_MAX_GB * 1024**3
        self.read_only = read_only
        self.stats = CacheStats()
        self._writable: bool | None = False if read_only else None  # None: not checked yet

    def _folder(self, fingerprint: str) -> Path:
        return self.root / hashlib.sha256(fingerprint.encode()).hexdigest()[:16]

    def _entry(self, fingerprint: str, key: str) -> Path:
        return self._folder(fingerprint) / key[:2] / f"{key}.npy"

    def get(self, fingerprint: str, key: str) -> np.ndarray | None:
        """The stored features, or None (a corrupt entry counts as a miss and, where this cache
        may write, is deleted)."""
        path = self._entry(fingerprint, key)
        try:
            value = np.load(path, allow_pickle=False)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError):
            self.stats.misses += 1
            return None
        except (OSError, ValueError, EOFError):
            self.stats.corrupt += 1
            self.stats.misses += 1
            if self._writable:
                self._write_or_give_up(lambda: path.unlink(missing_ok=True))
            return None
        self.stats.hits += 1
        if not (self._writable and self._write_or_give_up(lambda: os.utime(path))):
            self.stats.stale_recency += 1  # recency feeds least-recently-used eviction
        return value

    def put(self, fingerprint: str, key: str, value: np.ndarray) -> None:
        """Stores ``value`` atomically (temporary file + rename); does nothing in a cache that
        cannot be written (see ``prepare``).

        Raises:
            MmfuseError: ``root`` is someone's own folder (see ``prepare``).
        """
        if not self.prepare():
            return
        folder = self._folder(fingerprint)

        def write() -> None:
            if not (folder / "info.json").exists():
                write_json(folder / "info.json", {"fingerprint": fingerprint})
            with atomic_path(self._entry(fingerprint, key)) as tmp:
                with open(tmp, "wb") as handle:
                    np.save(handle, np.ascontiguousarray(value), allow_pickle=False)

        if self._write_or_give_up(write):
            self.stats.writes += 1

    def prepare(self) -> bool:
        """Readies ``root`` for writing (once per cache object) and says whether it can be written.

        Creates the folder with its ``CACHEDIR.TAG``, tags an empty or pre-tag one, or checks the
        tag of an existing cache. A folder that cannot be written (a file in the way, read-only,
        no permission) prints one notice and this cache then only reads.

        Raises:
            MmfuseError: ``root`` holds files mmfuse did not write and has no mmfuse tag.
        """
        if self._writable is None:
            blocker = blocking_file(self.root)
            if blocker is not None:
                return self._give_up(f"{blocker} is a file, not a folder")
            self._writable = self._write_or_give_up(self._claim_for_writing)
        return bool(self._writable)

    def _claim_for_writing(self) -> None:
        if not self._owned("write features into"):
            self.root.mkdir(parents=True, exist_ok=True)
            self._owned("write features into")  # tags the new (or concurrently created) folder

    def _write_or_give_up(self, write: Callable[[], object]) -> bool:
        """Runs ``write()``; an OSError turns this cache read-only after one notice."""
        try:
            write()
        except OSError as err:
            return self._give_up(_reason(err))
        return True

    def _give_up(self, reason: str) -> bool:
        if self._writable is not False:
            log(f"note: the feature cache {self.root} cannot be written ({reason}); continuing "
                f"without caching new features. To cache them, point {option('cache_dir', 'DIR')} "
                f"or ${CACHE_ENV} at a writable folder ({option('use_cache', False)} turns the "
                "cache off).")
        self._writable = False
        return False

    def _owned(self, action: str) -> bool:
        """Whether ``root`` is a folder of mmfuse's cache; tags (adopts) an empty or pre-tag one.

        Raises:
            MmfuseError: ``root`` holds files mmfuse did not write.
            OSError: The folder cannot be read, or the tag cannot be written.
        """
        if not self.root.is_dir():
            return False
        tag = read_tag(self.root)
        if tag == "mmfuse":
            return True
        other = [p for f in scan(self.root).all() for p in f.other]
        names = [repr(str(p.relative_to(self.root))) for p in other]
        names += ["a CACHEDIR.TAG of another program"] if tag else []
        if names:
            raise MmfuseError(
                f"refusing to {action} {self.root}: it is not an mmfuse feature cache (it has no "
                f"CACHEDIR.TAG written by mmfuse, and holds files mmfuse did not write: "
                f"{', '.join(names[:3])}{' ...' if len(names) > 3 else ''}); mmfuse writes to and "
                f"deletes from its own cache folders only, and changed nothing here. "
                f"{_FIXES[action]}"
            )
        write_tag(self.root)  # an empty folder, or one of only mmfuse's layout: adopt it
        return True

    # ---------------------------------------------------------------- maintenance
    def info(self) -> dict[str, object]:
        """Size and entry count per encoder fingerprint, leftover temporary files, whether the
        folder is tagged as mmfuse's and how many other files lie in it. Reads only.

        Raises:
            MmfuseError: ``root`` is in a file's way or cannot be read.
        """
        with self._user_error("read"):
            found = scan(self.root) if self._exists("read") else Scan()
            tagged = self.root.is_dir() and read_tag(self.root) == "mmfuse"
        per = sorted(found.per_encoder.items())
        return {
            "root": str(self.root),
            "tagged": tagged,
            "entries": sum(len(f.entries) for _, f in per),
            "bytes": sum(f.size for _, f in per),
            "max_bytes": int(self.max_bytes),
            "temporary_files": sum(len(f.temporary) for f in found.all()),
            "other_files": sum(len(f.other) for f in found.all()),
            "encoders": [
                {"fingerprint": _read_fingerprint(d), "entries": len(f.entries), "bytes": f.size}
                for d, f in per
            ],
        }

    def clear(self) -> int:
        """Deletes every entry and leftover temporary file (never other files); returns the
        number of bytes freed.

        Raises:
            MmfuseError: ``root`` is not mmfuse's cache, or a file cannot be deleted.
        """
        freed = 0
        with self._user_error("clear"):
            if not self._maintainable("clear"):
                return 0
            for f in scan(self.root).all():
                doomed = [(p, size) for p, size, _ in f.entries] + f.temporary
                for path, size in doomed + [(p, 0) for p in f.infos]:
                    path.unlink(missing_ok=True)
                    freed += size
                remove_empty(f.folders)
        return freed

    def prune(self) -> int:
        """Evicts least recently used entries until the cache fits ``max_bytes``; returns the
        number of entries removed (0 for a read-only cache).

        Raises:
            MmfuseError: ``root`` is not mmfuse's cache, or a file cannot be deleted.
        """
        if self.read_only:
            return 0
        with self._user_error("prune"):
            return self._evict() if self._maintainable("prune") else 0

    def prune_after_writes(self) -> None:
        """``prune`` after a run wrote features: only in a folder this cache prepared for writing;
        a file that cannot be deleted turns the cache read-only after one notice."""
        if self._writable:
            self._write_or_give_up(self._evict)

    def _maintainable(self, action: str) -> bool:
        """Whether there is a cache to clear or prune (raises where mmfuse may not)."""
        if self.read_only:
            raise MmfuseError(f"cannot {action} {self.root} through a read-only cache (a folder "
                              f"named by a model directory); run `mmfuse cache {action} "
                              f"--cache-dir {self.root}` to {action} it")
        return self._exists(action) and self._owned(action)

    def _exists(self, action: str) -> bool:
        blocker = blocking_file(self.root)
        if blocker is not None:
            raise MmfuseError(f"cannot {action} the feature cache {self.root}: {blocker} is a "
                              f"file, not a folder; remove it or pass another --cache-dir")
        return self.root.is_dir()

    def _evict(self) -> int:
        found = scan(self.root).all()
        entries = sorted((e for f in found for e in f.entries), key=lambda e: e[2])  # oldest first
        total = sum(f.size for f in found)
        removed = 0
        for path, size, _ in entries:
            if total <= self.max_bytes:
                break
            path.unlink(missing_ok=True)
            total -= size
            removed += 1
        return removed

    @contextlib.contextmanager
    def _user_error(self, action: str) -> Iterator[None]:
        """Turns an OSError of a cache command into a MmfuseError that says what to do."""
        try:
            yield
        except OSError as err:
            message = (f"cannot {action} the feature cache {self.root}: {_reason(err)}; check the "
                       f"folder's permissions, or pass another --cache-dir")
            raise MmfuseError(message) from None


def _reason(err: OSError) -> str:
    where = f": {err.filename}" if err.filename else ""
    return f"{err.strerror or err}{where}"


def _read_fingerprint(folder: Path) -> str:
    try:
        return str(read_json(folder / "info.json")["fingerprint"])
    except (OSError, ValueError, KeyError, TypeError):
        return "?"
