"""Shared fixtures: a writer of tiny media files and one small demo dataset."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

DEMO_ROWS = 60


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (``make test`` runs one worker per core) each worker, and every
    process it starts, keeps to one torch/OpenMP thread: two workers with a full thread pool
    each on the same cores slow both down."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        for name in ("MMFUSE_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[name] = "1"
        import torch

        torch.set_num_threads(1)


@pytest.fixture(autouse=True, scope="session")
def _scratch_defaults(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Tests default to from-scratch encoders (fast, independent of optional packages), to one
    model per fit (``preset="auto"`` fits one; a preset multiplies every fit's time;
    ``MMFUSE_SUITE_PRESET=fast`` runs it with the users' default instead) and never
    touch the user's feature cache; tests of pretrained encoders and of presets opt in
    explicitly."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MMFUSE_PRETRAINED", "0")
        patch.setenv("MMFUSE_PRESET", os.environ.get("MMFUSE_SUITE_PRESET", "none"))
        patch.setenv("MMFUSE_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "feature-cache"))
        yield


class Media:
    """Writes small, valid media files (images, WAV audio, MP4 video) into a folder."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def png(self, name: str, level: int = 128, size: int = 8) -> str:
        from PIL import Image

        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (size, size), (level, 255 - level, level // 2)).save(path)
        return name

    def wav(self, name: str, freq: float = 440.0, seconds: float = 0.25, rate: int = 16000) -> str:
        import soundfile as sf

        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        t = np.arange(int(seconds * rate)) / rate
        sf.write(str(path), (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32), rate)
        return name

    def mp4(self, name: str, with_audio: bool = False, frames: int = 3) -> str:
        """A 16x16 'mpeg4' clip; with_audio adds an AAC track (as tests/data/test_video.py)."""
        import av

        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with av.open(str(path), "w") as container:
            video = container.add_stream("mpeg4", rate=10)
            video.width, video.height, video.pix_fmt = 16, 16, "yuv420p"
            audio = container.add_stream("aac", rate=16000) if with_audio else None
            for i in range(frames):
                rgb = np.full((16, 16, 3), 40 * i, dtype=np.uint8)
                for packet in video.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                    container.mux(packet)
            container.mux(video.encode())
            if audio is not None:
                tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(4096) / 16000)
                tone = tone.astype(np.float32)
                for start in range(0, tone.size, 1024):
                    frame = av.AudioFrame.from_ndarray(
                        tone[None, start : start + 1024], format="fltp", layout="mono"
                    )
                    frame.sample_rate, frame.pts = 16000, start
                    container.mux(audio.encode(frame))
                container.mux(audio.encode())
        return name


@pytest.fixture(scope="session")
def media_writer() -> type[Media]:
    """The Media class, for session-scoped fixtures that write media files."""
    return Media


@pytest.fixture
def media(tmp_path: Path) -> Media:
    """Media writer rooted at the test's tmp_path."""
    return Media(tmp_path)


@pytest.fixture(scope="session")
def demo_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built-in demo dataset with 60 records (shared by every test; never modify it)."""
    from mmfuse.datasets import make_demo_dataset

    return make_demo_dataset(tmp_path_factory.mktemp("demo"), n=DEMO_ROWS, seed=0)
