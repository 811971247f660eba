"""The bad-input battery's helpers (fixtures are in conftest.py): run the CLI in-process, fail on any escaped exception or
traceback, hash folders before and after, and build tiny datasets and models.

Every test in this folder follows the same pattern::

    before = snapshot(tmp_path / "data")
    result = cli("fit", str(path), "--target", "label", "--out", str(out), *FAST)
    expect_user_error(result, str(path), "row 3", "'price'")
    assert snapshot(tmp_path / "data") == before
"""

from __future__ import annotations

import hashlib
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from mmfuse.cli.main import main

FAST = ["--epochs", "1", "--dim", "8", "--threads", "1", "--quiet", "--no-pretrained"]
"""Flags that keep a battery fit to about a second."""

N_ROWS = 24


@dataclass(frozen=True)
class Result:
    """What one CLI call did."""

    code: int
    out: str
    err: str


OUTPUT_OPTIONS = ("--out", "--json", "--cache-dir")
"""Options whose value a command may write; everything else it is given is input."""


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> Result:
    """Runs ``mmfuse ARGS`` in-process; an exception escaping ``main`` fails the test, and so
    does a change to any file in the folders of its input paths outside its output paths."""
    argv = [str(a) for a in args]
    outputs = [Path(v).resolve() for k, v in zip(argv, argv[1:]) if k in OUTPUT_OPTIONS]
    watched = _input_folders(argv, outputs)
    before = snapshot(*watched)
    try:
        code = main(argv)
    except BaseException:  # noqa: BLE001 - any escape is what the battery exists to catch
        pytest.fail(f"mmfuse {' '.join(argv)} raised:\n{traceback.format_exc()}")
    captured = capsys.readouterr()
    for stream in (captured.out, captured.err):
        assert "Traceback (most recent call last)" not in stream, stream
    after = snapshot(*watched)
    differ = (set(before) ^ set(after)) | {p for p in before if p in after and before[p] != after[p]}
    changed = sorted(p for p in differ if not _under(p, outputs))
    assert not changed, f"mmfuse {' '.join(argv)} changed files outside its outputs: {changed}"
    return Result(code, captured.out, captured.err)


def _input_folders(argv: list[str], outputs: list[Path]) -> list[Path]:
    """The folders of the existing paths among the arguments (a folder itself, a file's parent)."""
    folders = set()
    for arg in argv:
        path = Path(arg)
        if "/" in arg and path.exists() and path.resolve() not in outputs:
            folders.add(path.resolve() if path.is_dir() else path.resolve().parent)
    return sorted(folders)


def _under(path: str, outputs: list[Path]) -> bool:
    return any(Path(path) == o or o in Path(path).parents for o in outputs)


def expect_user_error(result: Result, *needles: str) -> str:
    """Exit 2, one ``error:`` message that contains every needle; returns the message."""
    assert result.code == 2, f"exit {result.code}, expected 2\nstdout: {result.out}\nstderr: {result.err}"
    assert "error: " in result.err, result.err
    for needle in needles:
        assert needle in result.err, f"{needle!r} not in the message:\n{result.err}"
    return result.err


def snapshot(*folders: Path) -> dict[str, str]:
    """SHA-256 of every file under the folders (path -> digest), plus the folders' listing."""
    digests: dict[str, str] = {}
    for folder in folders:
        for path in sorted(Path(folder).rglob("*")):
            if path.is_file():
                digests[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
            elif path.is_dir():
                digests[str(path)] = "<dir>"
    return digests


def tiny_frame(media, n: int = N_ROWS) -> pd.DataFrame:
    """An image, a text, a number, a category and a two-class label; media under ``img/``."""
    return pd.DataFrame(
        {
            "photo": [media.png(f"img/{i}.png", level=10 * i) for i in range(n)],
            "note": [f"note number {i} is {'good' if i % 2 else 'bad'}" for i in range(n)],
            "price": [float(i) for i in range(n)],
            "colour": ["red", "green", "blue"] * (n // 3),
            "label": ["yes", "no"] * (n // 2),
        }
    )


def write_csv(frame: pd.DataFrame, folder: Path, name: str = "data.csv") -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path


def trained_frame(data: Path) -> pd.DataFrame:
    """The ``trained`` fixture's records with absolute media paths, to edit and write anywhere."""
    frame = pd.read_csv(data)
    frame["photo"] = [str(data.parent / p) for p in frame["photo"]]
    return frame
