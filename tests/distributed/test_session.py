"""Tests for mmfuse.distributed.session: where a local Ray keeps its sockets."""

from __future__ import annotations

import os

import pytest

from mmfuse.distributed.session import RAY_SOCKET_SUFFIX, SOCKET_PATH_MAX, socket_safe_temp_dir


def test_the_default_temporary_folder_is_kept_while_ray_socket_paths_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAY_TMPDIR", raising=False)
    monkeypatch.setenv("TMPDIR", "/tmp")
    assert socket_safe_temp_dir() is None


def test_a_long_temporary_folder_gives_way_to_one_under_tmp(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    import tempfile

    deep = tmp_path / ("x" * (SOCKET_PATH_MAX - RAY_SOCKET_SUFFIX))
    deep.mkdir()
    monkeypatch.delenv("RAY_TMPDIR", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(deep))
    assert socket_safe_temp_dir() == f"/tmp/ray-{os.getuid()}"
    monkeypatch.setenv("RAY_TMPDIR", "/tmp/r")  # Ray's own setting, short: kept
    assert socket_safe_temp_dir() is None
