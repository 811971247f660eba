"""Where commands write: output files and folders are checked before any work; the folder of a
fit is locked while it is written and recognised as finished, so that ``--resume`` never
retrains a complete model.

The lock is an advisory ``flock`` on ``DIR/.mmfuse-lock``: the operating system releases it
when the holder exits, even after ``kill -9``, so a crashed fit never blocks the next one. The
file records who holds it (pid, host, start time, command) for the message a second writer gets.
It is deleted only with a folder the lock itself created and nothing else was written to (a fit
that failed early leaves no trace); otherwise it stays, since removing a lock file races with a
process that is about to lock it.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from mmfuse.errors import MmfuseError

LOCK_NAME = ".mmfuse-lock"
_HELD: dict[Path, int] = {}  # folder -> nesting depth within this process


def check_output_dir(path: str | Path, option: str = "--out", model: str | Path | None = None) -> Path:
    """A folder a command will write: refused up front when it is a file or lies inside one, or
    inside the ``model`` directory the command reads."""
    folder = Path(path)
    blocker = _file_in_the_way([folder, *folder.parents])
    if blocker is not None:
        where = "is a file" if blocker == folder else f"lies inside {blocker}, which is a file"
        raise MmfuseError(f"{option} {folder} {where}; give a folder (it is created if needed)")
    _refuse_inputs(folder, option, None, model)
    return folder


def check_output_file(
    path: str | Path, option: str = "--out", data: str | Path | None = None, model: str | Path | None = None
) -> Path:
    """A file a command will write: refused up front when it is a folder or lies inside a file,
    or would replace the ``data`` file or a file of the ``model`` directory the command reads."""
    target = Path(path)
    if target.is_dir():
        raise MmfuseError(f"{option} {target} is a folder; give a file name, e.g. {target / 'out.csv'}")
    blocker = _file_in_the_way(target.parents)
    if blocker is not None:
        raise MmfuseError(f"{option} {target} lies inside {blocker}, which is a file; give another path")
    _refuse_inputs(target, option, data, model)
    return target


def _file_in_the_way(paths: Iterable[Path]) -> Path | None:
    """The first of ``paths`` that exists and is not a folder."""
    return next((p for p in paths if p.exists() and not p.is_dir()), None)


def _refuse_inputs(target: Path, option: str, data: str | Path | None, model: str | Path | None) -> None:
    """An output never overwrites what the command reads: its data file or its model directory."""
    where = target.resolve()
    if data is not None:
        source = Path(data) / "data.csv" if Path(data).is_dir() else Path(data)
        if where == source.resolve():
            raise MmfuseError(f"{option} {target} is the input data file; write the output to another file")
    if model is not None and (where == Path(model).resolve() or Path(model).resolve() in where.parents):
        place = "is" if where == Path(model).resolve() else "lies inside"
        raise MmfuseError(f"{option} {target} {place} the model directory {model}; write the output "
                          "elsewhere (the model's files stay as fit wrote them)")


@contextmanager
def directory_lock(path: str | Path) -> Iterator[Path]:
    """Holds the folder's lock for the block; a second holder gets MmfuseError naming the first.

    Re-entrant within one process (the CLI and the estimator it calls both take it).
    """
    folder = check_output_dir(path).resolve()
    if folder in _HELD:
        _HELD[folder] += 1
        try:
            yield folder
        finally:
            _HELD[folder] -= 1
        return
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    handle = open(folder / LOCK_NAME, "a+", encoding="utf-8")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise MmfuseError(
                f"{folder} is being written by another mmfuse fit ({_holder(handle)}); wait for "
                "it to finish, or write this model to another folder"
            ) from None
        handle.seek(0)
        handle.truncate()
        json.dump({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(),
                   "command": " ".join(sys.argv)[:300]}, handle)
        handle.flush()
        _HELD[folder] = 1
        try:
            yield folder
        finally:
            del _HELD[folder]
            if created and [p.name for p in folder.iterdir()] == [LOCK_NAME]:
                shutil.rmtree(folder)  # a fit that failed before writing leaves no trace
    finally:
        handle.close()  # releases the flock


def _holder(handle: object) -> str:
    try:
        handle.seek(0)  # type: ignore[attr-defined]
        info = json.loads(handle.read())  # type: ignore[attr-defined]
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(info["started"])))
        return f"pid {info['pid']} on {info['host']}, since {started}: {info['command']}"
    except (ValueError, KeyError, TypeError, OSError):
        return "holder unknown"


def finished_model(path: str | Path) -> bool:
    """True when the folder holds a saved model and no checkpoint of an interrupted fit."""
    folder = Path(path)
    saved = (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()
    interrupted = any((c / "state.json").exists() for c in folder.glob("checkpoint*"))
    return saved and not interrupted
