"""Data-parallel training: two gloo processes under torchrun train like one process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mmfuse.training import distributed

HERE = Path(__file__).parent
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]


def _torchrun(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HERE)}
    return subprocess.run([*TORCHRUN, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=240)


def test_two_processes_train_like_one(tmp_path: Path) -> None:
    import ddp_worker  # noqa: PLC0415 - the worker lives next to this test

    done = _torchrun([str(HERE / "ddp_worker.py"), str(tmp_path)], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)]
    alone = tmp_path / "alone"
    alone.mkdir()
    ddp_worker.train(alone)
    one = torch.load(alone / "rank0.pt")
    for name, value in one["weights"].items():
        assert torch.equal(ranks[0]["weights"][name], ranks[1]["weights"][name])  # kept in step
        # each process steps on half of every batch of 32 and the gradients are averaged:
        # the same step as one process on the whole batch, up to the order of float sums
        torch.testing.assert_close(ranks[0]["weights"][name], value, rtol=1e-4, atol=1e-5)
    assert len(one["history"]) == len(ranks[0]["history"]) == 4
    for mine, theirs in zip(ranks[0]["history"], one["history"]):
        assert mine["train_loss"] == pytest.approx(theirs["train_loss"], rel=1e-4)  # summed over processes
        assert mine["valid_loss"] == pytest.approx(theirs["valid_loss"], rel=1e-4)


def test_without_torchrun_nothing_is_distributed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    assert (distributed.world_size(), distributed.rank(), distributed.size()) == (1, 0, 1)
    assert distributed.is_main() and not distributed.is_distributed() and not distributed.start("cpu")
    index = torch.arange(5)
    assert torch.equal(distributed.share(index), index)
    assert distributed.summed([1.5, 2.0]) == [1.5, 2.0]


def _table(path: Path, n: int = 160) -> Path:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 3))
    words = np.where(x[:, 0] + x[:, 1] > 0, "bright sunny", "dark rainy")
    pd.DataFrame({"a": x[:, 0].round(4), "b": x[:, 1].round(4), "c": x[:, 2].round(4),
                  "note": [f"{w} day {i % 7}" for i, w in enumerate(words)],
                  "label": np.where(x[:, 0] + x[:, 1] > 0, "up", "down")}).to_csv(path, index=False)
    return path


def test_cli_fit_under_torchrun_writes_one_model(tmp_path: Path) -> None:
    data = _table(tmp_path / "data.csv")
    common = ["fit", str(data), "--target", "label", "--epochs", "4", "--threads", "1", "--seed", "3"]
    done = _torchrun(["-m", "mmfuse", *common, "--out", str(tmp_path / "two")], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("model written to") == 1  # only the first process prints
    assert "the training processes share them on disk" in done.stderr
    assert not (tmp_path / "two" / ".records").exists()  # the shared records are deleted
    one = subprocess.run([sys.executable, "-m", "mmfuse", *common, "--out", str(tmp_path / "one")],
                         capture_output=True, text=True, timeout=240, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert one.returncode == 0, one.stderr[-3000:]
    import json

    two_metrics = json.loads((tmp_path / "two" / "metrics.json").read_text())
    one_metrics = json.loads((tmp_path / "one" / "metrics.json").read_text())
    assert two_metrics["n_train"] == one_metrics["n_train"] == 128
    # dropout draws differ between one process and two, so the runs agree within noise only
    assert abs(two_metrics["metrics"]["accuracy"] - one_metrics["metrics"]["accuracy"]) <= 0.1
    assert two_metrics["metrics"]["accuracy"] >= 0.85


def test_torchrun_needs_an_output_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    from mmfuse import MultimodalClassifier
    from mmfuse.errors import MmfuseError

    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(MmfuseError, match="needs out_dir"):
        MultimodalClassifier().fit("unused.csv", target="label")
