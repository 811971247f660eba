"""Atomic writes: the target appears whole or not at all, with normal permissions."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mmfuse._io import atomic_open, read_json, write_json


def test_atomic_write_replaces_and_keeps_normal_permissions(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    write_json(path, {"x": 1})
    write_json(path, {"x": 2})
    assert read_json(path) == {"x": 2}
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_failed_write_leaves_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "b.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_open(path) as handle:
            handle.write("new")
            raise RuntimeError("interrupted")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["b.txt"]


def _normal_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def test_a_writer_that_recreates_the_file_still_gets_normal_permissions(tmp_path: Path) -> None:
    from mmfuse._io import atomic_path

    path = tmp_path / "c.bin"
    with atomic_path(path) as tmp:
        tmp.unlink()  # as safetensors' save_file does: a new, owner-only file in its place
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, b"data")
        os.close(fd)
    assert path.read_bytes() == b"data"
    assert path.stat().st_mode & 0o777 == _normal_mode()


def test_weights_are_written_with_the_permissions_of_every_other_file(tmp_path: Path) -> None:
    import torch

    from mmfuse.training.checkpoint import save_weights

    save_weights(tmp_path / "model.safetensors", {"w": torch.zeros(2)})
    write_json(tmp_path / "config.json", {})
    assert (tmp_path / "model.safetensors").stat().st_mode & 0o777 == _normal_mode()
    assert (tmp_path / "config.json").stat().st_mode & 0o777 == _normal_mode()


def test_a_saved_model_is_one_record_and_loads_as_a_fitted_value(tmp_path, demo_csv) -> None:
    """save_model takes a ModelRecord; load_fitted gives the FittedModel serving needs, whose
    outputs equal the estimator's."""
    import numpy as np

    import mmfuse
    from mmfuse.estimators.io import ModelRecord, model_record, save_model
    from mmfuse.models.fitted import FittedModel

    clf = mmfuse.MultimodalClassifier(epochs=1, dim=8, verbose=False, num_threads=1,
                                      kinds={"score": "ignore"}).fit(demo_csv, target="label")
    record = model_record(clf)
    assert isinstance(record, ModelRecord) and record.estimator == "MultimodalClassifier"
    assert record.rejected is None and record.metrics["kept_epoch"] == 1
    save_model(record, tmp_path / "m")
    fitted = mmfuse.load_fitted(tmp_path / "m")
    assert isinstance(fitted, FittedModel) and fitted.task == "classification"
    enc = clf.prepare(demo_csv)
    np.testing.assert_allclose(fitted.outputs(enc), clf.fitted_model.outputs(enc), atol=1e-6)
