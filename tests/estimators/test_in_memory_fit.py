"""fit and predict on a DataFrame whose media cells hold the media itself (PIL images, numpy
arrays, encoded bytes) instead of file paths: from-scratch encoders, and the pretrained image
encoder (EfficientNet-Lite0) with its feature cache."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from PIL import Image

from mmfuse import MultimodalClassifier
from mmfuse.data.cache import FeatureCache
from mmfuse.pretrained import BACKBONES

ROWS = 16
RATE = 8000
FAST: dict[str, Any] = {"epochs": 2, "dim": 8, "num_threads": 1, "verbose": False, "seed": 0}


def _picture(i: int) -> Image.Image:
    bright = 200 if i % 2 else 40
    pixels = np.random.default_rng(i).integers(0, 50, (16, 16, 3)) + bright
    return Image.fromarray(pixels.clip(0, 255).astype(np.uint8))


def _tone(i: int) -> np.ndarray:
    t = np.arange(RATE // 4) / RATE
    return (0.4 * np.sin(2 * np.pi * (300.0 if i % 2 else 900.0) * t)).astype(np.float32)


def _wav(wave: np.ndarray) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, wave, RATE, format="WAV", subtype="FLOAT")
    return buf.getvalue()


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _in_memory_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "photo": [_picture(i) for i in range(ROWS)],
            "pixels": pd.Series([np.asarray(_picture(i + 100)) for i in range(ROWS)], dtype=object),
            "scan": [_png(_picture(i + 200)) for i in range(ROWS)],
            "voice": [_wav(_tone(i)) for i in range(ROWS)],
            "clip": [(_tone(i + 1), RATE) for i in range(ROWS)],
            "size": [float(i % 5) for i in range(ROWS)],
            "label": ["bright" if i % 2 else "dark" for i in range(ROWS)],
        }
    )


def _as_files(frame: pd.DataFrame, folder: Path) -> pd.DataFrame:
    """The same records with every in-memory cell written to a file (absolute paths)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = frame.copy()
    for col, name in (("photo", "p{}.png"), ("pixels", "x{}.png"), ("scan", "s{}.png")):
        paths = []
        for i, cell in enumerate(frame[col]):
            path = folder / name.format(i)
            if isinstance(cell, bytes):
                path.write_bytes(cell)
            else:
                (cell if isinstance(cell, Image.Image) else Image.fromarray(cell)).save(path)
            paths.append(str(path))
        out[col] = paths
    for col in ("voice", "clip"):
        paths = []
        for i, cell in enumerate(frame[col]):
            path = folder / f"{col}{i}.wav"
            path.write_bytes(cell if isinstance(cell, bytes) else _wav(cell[0]))
            paths.append(str(path))
        out[col] = paths
    return out


def test_fit_and_predict_with_in_memory_cells(tmp_path: Path) -> None:
    frame = _in_memory_frame()
    clf = MultimodalClassifier(**FAST).fit(frame, target="label")
    assert clf.schema_.kinds == {
        "photo": "image",
        "pixels": "image",
        "scan": "image",
        "voice": "audio",
        "clip": "audio",
        "size": "numeric",
    }
    assert clf.rejected_ == []
    features = frame.drop(columns=["label"])
    predicted = clf.predict(features)
    assert predicted.shape == (ROWS,) and set(predicted) <= {"bright", "dark"}

    # the same media as files give exactly the same probabilities
    files = _as_files(features, tmp_path / "media")
    np.testing.assert_array_equal(clf.predict_proba(files), clf.predict_proba(features))


def test_fit_x_y_with_in_memory_cells_and_a_bad_cell_skipped() -> None:
    frame = _in_memory_frame()
    scans = list(frame["scan"])
    scans[5] = b"\x89PNG\r\n\x1a\n" + b"\0" * 40  # a PNG signature over nothing
    frame["scan"] = scans
    clf = MultimodalClassifier(on_bad_record="skip", **FAST)
    clf.fit(frame.drop(columns=["label"]), frame["label"])
    assert [(r.row, r.column) for r in clf.rejected_] == [(5, "scan")]
    assert clf.rejected_[0].reason.startswith("cannot decode image <bytes 48>: ")
    predicted = clf.predict(frame.drop(columns=["label"]))
    assert predicted[5] is None and all(p in ("bright", "dark") for i, p in enumerate(predicted)
                                        if i != 5)


def test_pretrained_image_encoder_reads_and_caches_in_memory_images(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if BACKBONES["efficientnet-lite0"].missing():
        pytest.skip("efficientnet-lite0 is not installed")
    monkeypatch.setenv("MMFUSE_PRETRAINED", "1")
    frame = _in_memory_frame()[["photo", "pixels", "size", "label"]].iloc[:8]
    cache = tmp_path / "cache"
    params = {**FAST, "epochs": 1, "cache_dir": str(cache), "encoders": "image=efficientnet-lite0"}
    first = MultimodalClassifier(**params).fit(frame, target="label")
    assert first.model_config_.encoders["photo"] == "efficientnet-lite0"
    assert first.model_config_.encoders["pixels"] == "efficientnet-lite0"
    assert FeatureCache(cache).info()["entries"] == 16  # 8 PIL images + 8 distinct arrays

    from mmfuse.encoders import backbones

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the network ran although every image is cached")

    monkeypatch.setattr(backbones.FrozenExtractor, "__call__", refuse)
    second = MultimodalClassifier(**params).fit(frame, target="label")
    np.testing.assert_array_equal(
        second.predict_proba(frame.drop(columns=["label"])),
        first.predict_proba(frame.drop(columns=["label"])),
    )
