"""Where a fit writes: a file given as --out, two fits into one folder, --resume on a finished
model or on changed data, kill -9 mid-fit then --resume, a loss that becomes NaN, and output
paths of predict / evaluate / explain that cannot be written."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from reliability_harness import FAST, expect_user_error, snapshot, tiny_frame, write_csv

from mmfuse.estimators.output_dir import directory_lock


@pytest.fixture
def data(media, tmp_path: Path) -> Path:
    return write_csv(tiny_frame(media), tmp_path)  # beside img/


def _fit(cli, data: Path, out: Path, *extra: str):
    return cli("fit", data, "--target", "label", "--out", out, *FAST, *extra)


def test_out_is_a_file(cli, data: Path) -> None:
    before = snapshot(data.parent)
    expect_user_error(_fit(cli, data, data), f"--out {data} is a file", "give a folder")
    assert snapshot(data.parent) == before  # the data file was not overwritten


def test_out_inside_a_file(cli, data: Path) -> None:
    expect_user_error(_fit(cli, data, data / "model"), f"lies inside {data}, which is a file")


def test_second_fit_into_a_locked_folder_is_refused(cli, data: Path, tmp_path: Path) -> None:
    out = tmp_path / "model"
    with directory_lock(out):  # as another process would hold it (re-entrancy is per process)
        from mmfuse.estimators import output_dir

        held = dict(output_dir._HELD)
        output_dir._HELD.clear()  # look like a different process to the lock
        try:
            err = expect_user_error(_fit(cli, data, out), f"{out.resolve()} is being written by another mmfuse fit")
        finally:
            output_dir._HELD.update(held)
    assert f"pid {os.getpid()}" in err and "another folder" in err
    assert not (out / "model.safetensors").exists()


def test_failed_fit_leaves_no_folder(cli, data: Path, tmp_path: Path) -> None:
    out = tmp_path / "model"
    expect_user_error(cli("fit", data, "--target", "nope", "--out", out, *FAST), "unknown target")
    assert not out.exists()


def test_resume_on_a_finished_model_does_not_retrain(cli, data: Path, tmp_path: Path) -> None:
    out = tmp_path / "model"
    assert _fit(cli, data, out).code == 0
    model_files = lambda: {k: v for k, v in snapshot(out).items() if not k.endswith(".mmfuse-lock")}  # noqa: E731
    before = model_files()
    result = _fit(cli, data, out, "--resume")
    assert result.code == 0 and "already holds a finished model: nothing to resume" in result.out
    assert model_files() == before


def _python_fit(data: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "mmfuse.cli.main", "fit", str(data), "--target", "label",
            "--out", str(out), "--epochs", "8", "--patience", "0", "--dim", "16",
            "--threads", "1", "--no-pretrained", "--quiet", "--seed", "3", "--preset", "none", *extra]


def _kill_after_epoch(command: list[str], state: Path, epoch: int) -> None:
    """Starts the fit, waits for its checkpoint of ``epoch``, then kill -9. The fit's temporary
    folder (which kill -9 leaves behind) is made beside the output, not in the system's."""
    env = {**os.environ, "TMPDIR": str(state.parents[2])}
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and process.poll() is None:
            if state.exists() and f'"epoch": {epoch},' in state.read_text():
                break
            time.sleep(0.005)
        assert process.poll() is None, "the fit ended before it could be killed"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()


@pytest.fixture
def bigger(media, tmp_path: Path) -> Path:
    """Enough records that an epoch lasts long enough to be interrupted."""
    frame = pd.concat([tiny_frame(media)] * 8, ignore_index=True)
    return write_csv(frame, tmp_path, "big.csv")


def test_kill_9_then_resume_equals_an_uninterrupted_fit(cli, bigger: Path, tmp_path: Path) -> None:
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    assert subprocess.run(_python_fit(bigger, whole), capture_output=True).returncode == 0
    _kill_after_epoch(_python_fit(bigger, resumed), resumed / "checkpoint" / "state.json", 3)
    assert not (resumed / "model.safetensors").exists()
    second = cli("fit", bigger, "--target", "label", "--out", resumed, "--epochs", "8",
                 "--patience", "0", "--dim", "16", "--threads", "1", "--no-pretrained",
                 "--quiet", "--seed", "3", "--resume")
    assert second.code == 0, second.err
    assert (resumed / "model.safetensors").read_bytes() == (whole / "model.safetensors").read_bytes()
    assert len(pd.read_csv(resumed / "history.csv")) == 8


def test_resume_refuses_changed_data(cli, bigger: Path, tmp_path: Path) -> None:
    out = tmp_path / "model"
    _kill_after_epoch(_python_fit(bigger, out), out / "checkpoint" / "state.json", 2)
    frame = pd.read_csv(bigger)
    frame.loc[0, "price"] = 1000.0
    changed = write_csv(frame, tmp_path, "changed.csv")
    result = cli("fit", changed, "--target", "label", "--out", out, "--epochs", "8",
                 "--patience", "0", "--dim", "16", "--threads", "1", "--no-pretrained",
                 "--quiet", "--seed", "3", "--resume")
    expect_user_error(result, "cannot resume", "data differ from the interrupted run's")


def test_diverging_loss_stops_with_a_reason(cli, data: Path, tmp_path: Path) -> None:
    out = tmp_path / "model"
    result = cli("fit", data, "--target", "label", "--out", out, "--epochs", "3", "--dim", "8",
                 "--threads", "1", "--quiet", "--no-pretrained", "--lr", "1e30")
    expect_user_error(result, "training stopped: the loss became nan at epoch", "batch", "lower --lr")
    assert not (out / "model.safetensors").exists()


def test_predict_out_is_a_folder(cli, trained, tmp_path: Path) -> None:
    expect_user_error(cli("predict", trained[0], trained[1], "--out", tmp_path),
                      f"--out {tmp_path} is a folder", "give a file name")


def test_evaluate_json_inside_a_file(cli, trained, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    expect_user_error(cli("evaluate", trained[0], trained[1], "--json", blocker / "m.json"),
                      f"lies inside {blocker}, which is a file")


def test_explain_out_is_a_file(cli, trained, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    expect_user_error(cli("explain", trained[0], trained[1], "--out", blocker), f"--out {blocker} is a file")
