"""Occlusion of raw cells for modalities fed to a pretrained network: each hidden part is
prepared and re-encoded, and the map is the score drop against the unhidden cell.

The "networks" here are tiny numpy functions, so the expected values can be computed by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from mmfuse.data.preparations import IMAGENET_MEAN, ImageNetFrames, ImageNetImage, Preparation
from mmfuse.evaluation.occlusion import (
    RawInput,
    hidden_parts,
    image_cells,
    occlusion_attribution,
    raw_occlusions,
    raw_parts,
)
from mmfuse.models import ModelConfig, MultimodalModel, build_model
from mmfuse.models.multimodal import all_present
from mmfuse.types import InputSpec


@dataclass(frozen=True)
class Letters(Preparation):
    """Text -> counts of the letters a..e and the number of characters."""

    def decode(self, value: Any, path: Path | None) -> str:
        return str(value)

    def finish(self, decoded: str) -> np.ndarray:
        return np.asarray([decoded.count(c) for c in "abcde"] + [len(decoded)], dtype=np.float32)


@dataclass(frozen=True)
class Loudness(Preparation):
    """Waveform -> root mean square of each eighth of it."""

    sample_rate: int = 800

    def decode(self, value: Any, path: Path | None) -> np.ndarray:
        return np.asarray(value, dtype=np.float32)

    def finish(self, decoded: np.ndarray) -> np.ndarray:
        return np.sqrt((decoded.reshape(8, -1) ** 2).mean(1)).astype(np.float32)


def quadrant_means(batch: np.ndarray) -> np.ndarray:
    """A frozen "network": (B, 3, 16, 16) -> (B, 12) channel means of each quadrant."""
    return batch.reshape(len(batch), 3, 2, 8, 2, 8).mean((3, 5)).reshape(len(batch), 12)



def _model(width: int) -> MultimodalModel:
    """A model whose ``cell`` input has ``width`` values, next to a 4-d ``vector``."""
    torch.manual_seed(0)
    specs = {"cell": InputSpec("embedding", (width,)), "vector": InputSpec("embedding", (4,))}
    config = ModelConfig("feature", "concat", {"cell": "mlp", "vector": "mlp"}, "classification", 3,
                         dim=16)  # fmt: skip
    return build_model(config, specs).eval()


def _maps(model: MultimodalModel, raw: RawInput, cell: np.ndarray) -> dict[str, np.ndarray]:
    inputs = {"cell": cell, "vector": np.linspace(-1.0, 1.0, 4, dtype=np.float32)}
    specs = {"cell": InputSpec("embedding", cell.shape), "vector": InputSpec("embedding", (4,))}
    return occlusion_attribution(model, inputs, {"cell": True, "vector": True}, specs,
                                 "classification", target_class=1, raw={"cell": raw})  # fmt: skip


def _p1(model: MultimodalModel, cell: np.ndarray) -> float:
    x = {"cell": torch.as_tensor(cell)[None], "vector": torch.linspace(-1.0, 1.0, 4)[None]}
    with torch.no_grad():
        return float(model(x, all_present(x)).logits.softmax(-1)[0, 1])


def test_raw_image_map_is_the_drop_of_re_encoding_each_hidden_patch() -> None:
    prep = ImageNetImage("test-16", "image", (3, 16, 16), size=16, resize=16)
    image = np.random.default_rng(0).uniform(0.0, 1.0, (3, 16, 16)).astype(np.float32)
    raw = RawInput(image, prep, quadrant_means)
    model = _model(12)
    features = quadrant_means(prep.finish(image)[None])[0]
    maps = _maps(model, raw, features)
    assert maps["cell"].shape == (16, 16)
    hidden = image.copy()
    hidden[:, :4, :4] = IMAGENET_MEAN  # the only 4 x 4 patch (of 7 x 7) covering pixel (0, 0)
    drop = _p1(model, features) - _p1(model, quadrant_means(prep.finish(hidden)[None])[0])
    assert maps["cell"][0, 0] == pytest.approx(drop, abs=1e-6)
    assert np.abs(maps["cell"]).max() > 1e-4
    cells, regions, shape = raw_occlusions(raw)
    assert len(cells) == 49 and shape == (16, 16)
    assert image_cells(16, 16) == (list(range(0, 17, 2)), list(range(0, 17, 2)))
    rows, cols = image_cells(16, 16)  # the map is constant on each cell
    for r0, r1 in zip(rows, rows[1:]):
        for c0, c1 in zip(cols, cols[1:]):
            assert np.ptp(maps["cell"][r0:r1, c0:c1]) == 0.0
    assert hidden_parts(raw, (16, 16)).startswith("overlapping 4 x 4 px patches")


def test_raw_text_map_has_one_value_per_word_and_removes_it() -> None:
    text = "a bad cab faced a deed"
    raw = RawInput(text, Letters("letters", "text", (6,)))  # no network: a fine-tuned input
    model = _model(6)
    maps = _maps(model, raw, raw.preparation.finish(text))
    assert maps["cell"].shape == (6,)
    finish = raw.preparation.finish
    drop = _p1(model, finish(text)) - _p1(model, finish("a cab faced a deed"))
    assert maps["cell"][1] == pytest.approx(drop, abs=1e-6)
    assert raw_parts(raw, 6) == text.split() and hidden_parts(raw, (6,)) == "each word removed"


def test_long_text_is_hidden_in_runs_of_adjacent_words() -> None:
    text = " ".join(f"w{i}" for i in range(100))
    raw = RawInput(text, Letters("letters", "text", (6,)))
    cells, regions, shape = raw_occlusions(raw)
    assert len(cells) == 64 and shape == (100,)  # 36 pairs of words, then 28 single words
    assert regions[0] == (slice(0, 2),) and regions[-1] == (slice(99, 100),)
    assert cells[0] == " ".join(f"w{i}" for i in range(2, 100))
    maps = _maps(_model(6), raw, raw.preparation.finish(text))
    assert maps["cell"].shape == (100,) and maps["cell"][0] == maps["cell"][1]
    assert hidden_parts(raw, (100,)) == "64 runs of adjacent words removed"


def test_raw_audio_map_has_one_value_per_time_segment() -> None:
    wave = np.sin(np.linspace(0.0, 60.0, 1600)).astype(np.float32) * np.linspace(0, 1, 1600)
    raw = RawInput(wave, Loudness("loudness", "audio", (8,)))
    model = _model(8)
    maps = _maps(model, raw, raw.preparation.finish(wave))
    assert maps["cell"].shape == (16,)
    silenced = wave.copy()
    silenced[300:400] = 0.0  # segment 3 of 16
    drop = _p1(model, raw.preparation.finish(wave)) - _p1(model, raw.preparation.finish(silenced))
    assert maps["cell"][3] == pytest.approx(drop, abs=1e-6)
    labels = raw_parts(raw, 16)
    assert labels[0] == "0.00-0.12 s" and labels[-1] == "1.88-2.00 s"
    assert hidden_parts(raw, (16,)) == "each of 16 time segments silenced"


def test_raw_video_is_hidden_frame_by_frame() -> None:
    frames = np.random.default_rng(1).uniform(0.0, 1.0, (3, 3, 4, 4)).astype(np.float32)
    prep = ImageNetFrames("frames", "video", (3, 3, 4, 4), size=4, num_frames=3)
    cells, regions, shape = raw_occlusions(RawInput(frames, prep))
    assert len(cells) == 3 and shape == (3,)
    np.testing.assert_allclose(cells[1][1], np.broadcast_to(IMAGENET_MEAN, (3, 4, 4)))
    np.testing.assert_array_equal(cells[1][[0, 2]], frames[[0, 2]])


def test_unknown_raw_kind_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown kind 'tabular'.*image, video, audio, text"):
        raw_occlusions(RawInput(np.zeros(3), Letters("x", "tabular", (6,))))
