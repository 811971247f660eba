"""Fixtures of the bad-input battery; the helpers are in reliability_harness.py."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from reliability_harness import FAST, Result, run_cli, tiny_frame, write_csv

from mmfuse.cli.main import main


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """``cli("fit", ...)`` -> Result."""
    return lambda *args: run_cli(capsys, *args)


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory, media_writer: type) -> tuple[Path, Path]:
    """(model directory, data CSV) of one tiny from-scratch fit, shared by the battery.

    Never modify them: copy with ``fresh_model`` first.
    """
    root = tmp_path_factory.mktemp("trained")
    data = write_csv(tiny_frame(media_writer(root / "data")), root / "data")
    model = root / "model"
    assert main(["fit", str(data), "--target", "label", "--out", str(model), *FAST]) == 0
    return model, data


@pytest.fixture
def fresh_model(trained: tuple[Path, Path], tmp_path: Path) -> Path:
    """A private copy of the trained model directory, free to damage."""
    copy = tmp_path / "model"
    shutil.copytree(trained[0], copy)
    return copy
