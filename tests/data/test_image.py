"""Tests for mmfuse.data.image: decoding every mode/format, resizing, errors, normalisation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmfuse.data.image import (
    IMAGE_EXTENSIONS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    image_to_array,
    load_image,
    normalize_image,
)
from mmfuse.errors import DecodeError

# 2x2 RGB image with four distinct exact colours.
PIXELS = np.array(
    [[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [51, 102, 204]]], dtype=np.uint8
)  # (H, W, 3)


def _save(img: Image.Image, path: Path, **kwargs: object) -> Path:
    img.save(path, **kwargs)
    return path


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [("a.png", {}), ("a.bmp", {}), ("a.webp", {"lossless": True}), ("a.tiff", {})],
)
def test_lossless_formats_decode_exactly(tmp_path: Path, name: str, kwargs: dict) -> None:
    path = _save(Image.fromarray(PIXELS), tmp_path / name, **kwargs)
    x = load_image(path, size=2)
    assert x.shape == (3, 2, 2) and x.dtype == np.float32
    np.testing.assert_allclose(x, PIXELS.transpose(2, 0, 1) / 255.0, atol=1e-7)


def test_jpeg_decodes_close_to_original(tmp_path: Path) -> None:
    path = _save(Image.new("RGB", (16, 16), (200, 100, 50)), tmp_path / "a.JPG", quality=95)
    x = load_image(path, size=4)
    assert x.shape == (3, 4, 4)
    np.testing.assert_allclose(x[:, 0, 0], [200 / 255, 100 / 255, 50 / 255], atol=0.02)


def test_grayscale_becomes_three_equal_channels(tmp_path: Path) -> None:
    path = _save(Image.new("L", (3, 3), 51), tmp_path / "g.png")
    x = load_image(path, size=3)
    np.testing.assert_allclose(x, np.full((3, 3, 3), 0.2, dtype=np.float32), atol=1e-7)


def test_rgba_is_composited_on_white(tmp_path: Path) -> None:
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[0, 0] = (255, 0, 0, 255)  # opaque red
    rgba[0, 1] = (0, 0, 0, 0)  # fully transparent -> white
    rgba[1, :] = (0, 0, 0, 128)  # half-transparent black -> mid grey
    path = _save(Image.fromarray(rgba, mode="RGBA"), tmp_path / "t.png")
    x = load_image(path, size=2)
    np.testing.assert_array_equal(x[:, 0, 0], [1.0, 0.0, 0.0])
    np.testing.assert_array_equal(x[:, 0, 1], [1.0, 1.0, 1.0])
    np.testing.assert_allclose(x[:, 1, 0], [127 / 255] * 3, atol=1.5 / 255)


def test_grayscale_with_alpha_is_composited(tmp_path: Path) -> None:
    path = _save(Image.new("LA", (2, 2), (0, 0)), tmp_path / "la.png")
    np.testing.assert_array_equal(load_image(path, size=2), np.ones((3, 2, 2)))


def test_palette_gif_with_transparency(tmp_path: Path) -> None:
    img = Image.new("P", (2, 2), 0)
    img.putpalette([10, 20, 30, 200, 0, 0] + [0] * 762)
    img.putpixel((1, 0), 1)
    path = _save(img, tmp_path / "p.gif", transparency=0)
    x = load_image(path, size=2)
    np.testing.assert_allclose(x[:, 0, 1], [200 / 255, 0.0, 0.0], atol=1e-7)
    np.testing.assert_array_equal(x[:, 0, 0], [1.0, 1.0, 1.0])  # index 0 is transparent


def test_cmyk_jpeg_converts_to_rgb(tmp_path: Path) -> None:
    path = _save(Image.new("CMYK", (8, 8), (0, 0, 0, 0)), tmp_path / "c.jpeg")
    x = load_image(path, size=2)
    np.testing.assert_allclose(x, np.ones((3, 2, 2)), atol=0.02)  # no ink -> white


def test_sixteen_bit_png_keeps_full_range(tmp_path: Path) -> None:
    values = np.array([[0, 32768], [65535, 65535]], dtype=np.uint16)
    path = _save(Image.fromarray(values), tmp_path / "d.png")
    x = load_image(path, size=2)
    np.testing.assert_allclose(x[0], [[0.0, 32768 / 65535], [1.0, 1.0]], atol=1e-6)
    np.testing.assert_array_equal(x[0], x[2])


def test_resize_is_plain_bilinear_without_crop(tmp_path: Path) -> None:
    # A 4x2 image (wide): left half black, right half white. No crop means both survive.
    img = np.zeros((2, 4, 3), dtype=np.uint8)
    img[:, 2:] = 255
    path = _save(Image.fromarray(img), tmp_path / "w.png")
    x = load_image(path, size=2)
    expected = np.asarray(Image.fromarray(img).resize((2, 2), Image.Resampling.BILINEAR)) / 255
    np.testing.assert_allclose(x, expected.transpose(2, 0, 1), atol=1e-7)
    assert (x[:, :, 0] < 0.25).all() and (x[:, :, 1] > 0.75).all()  # both halves survive
    np.testing.assert_allclose(x[:, :, 0] + x[:, :, 1], 1.0, atol=1 / 255)  # symmetric blend
    assert load_image(path, size=5).shape == (3, 5, 5)


def test_image_to_array_rejects_bad_size() -> None:
    with pytest.raises(ValueError, match="size must be >= 1, got 0"):
        image_to_array(Image.new("RGB", (2, 2)), 0)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DecodeError, match="not found.*nope.png"):
        load_image(tmp_path / "nope.png", 4)


def test_zero_byte_file(tmp_path: Path) -> None:
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(DecodeError, match="empty.*empty.png"):
        load_image(tmp_path / "empty.png", 4)


def test_unsupported_extension(tmp_path: Path) -> None:
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(DecodeError, match=r"unsupported image extension '\.txt'"):
        load_image(tmp_path / "x.txt", 4)


def test_garbage_bytes(tmp_path: Path) -> None:
    (tmp_path / "bad.jpg").write_bytes(b"this is not an image at all")
    with pytest.raises(DecodeError, match="cannot decode image .*bad.jpg"):
        load_image(tmp_path / "bad.jpg", 4)


def test_truncated_png(tmp_path: Path) -> None:
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    path = _save(Image.fromarray(noise), tmp_path / "cut.png")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DecodeError, match="cut.png"):
        load_image(path, 8)


def test_extensions_are_lowercase_with_dot() -> None:
    assert all(e.startswith(".") and e == e.lower() for e in IMAGE_EXTENSIONS)
    assert ".gif" in IMAGE_EXTENSIONS and ".mp4" not in IMAGE_EXTENSIONS


def test_normalize_image_single_and_batch() -> None:
    x = np.stack([np.full((2, 2), m, dtype=np.float32) for m in IMAGENET_MEAN])  # (3, 2, 2)
    np.testing.assert_allclose(normalize_image(x), 0.0, atol=1e-6)
    ones = np.ones((4, 3, 2, 2), dtype=np.float32)
    out = normalize_image(ones)
    assert out.shape == (4, 3, 2, 2) and out.dtype == np.float32
    for c in range(3):
        expected = (1.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c]
        np.testing.assert_allclose(out[:, c], expected, rtol=1e-6)


def test_normalize_image_rejects_wrong_channel_axis() -> None:
    with pytest.raises(ValueError, match=r"\(2, 2, 3\)"):
        normalize_image(np.zeros((2, 2, 3), dtype=np.float32))
