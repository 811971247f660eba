"""Image decoding: any file Pillow reads -> float32 RGB array (3, size, size) in [0, 1].

Besides files, an image may come in memory (a DataFrame cell): a ``PIL.Image.Image``, a numpy
array (see :func:`array_to_image`) or the bytes of an encoded file; all go the same way.
Decoding and normalisation are separate steps: :func:`load_image` returns pixels scaled to
[0, 1]; :func:`normalize_image` applies the ImageNet mean/std that pretrained encoders expect.
"""

from __future__ import annotations

import contextlib
import io
import struct
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar, Union

import numpy as np
from PIL import Image

from mmfuse.data.cells import describe_cell, error_text
from mmfuse.errors import DecodeError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# What Pillow raises on unreadable, truncated or corrupt files (UnidentifiedImageError is an
# OSError; some plugins raise SyntaxError, EOFError or struct.error on broken headers).
PIL_ERRORS = (
    OSError,
    ValueError,
    SyntaxError,
    EOFError,
    struct.error,
    Image.DecompressionBombError,
)
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
_HIGH_DEPTH_MODES = ("I", "F", "I;16", "I;16L", "I;16B", "I;16N")
_OPEN_LOCK = threading.Lock()  # warnings.catch_warnings is not thread-safe
T = TypeVar("T")
ImageSource = Union[str, Path, bytes, np.ndarray, Image.Image]
"""A file path, the bytes of an encoded image, a pixel array or a Pillow image."""


def check_media_file(path: Path, extensions: tuple[str, ...], kind: str) -> None:
    """Raise DecodeError unless ``path`` is a non-empty file with one of ``extensions``.

    Args:
        path: The file to check.
        extensions: Accepted lower-case suffixes, with the dot.
        kind: Word used in messages ("image", "audio", ...).

    Raises:
        DecodeError: The file is missing, not a file, empty, or has another extension.
    """
    if path.suffix.lower() not in extensions:
        raise DecodeError(
            f"unsupported {kind} extension {path.suffix!r} for {path}; "
            f"expected one of: {', '.join(extensions)}"
        )
    if not path.exists():
        raise DecodeError(f"{kind} file not found: {path}")
    if not path.is_file():
        raise DecodeError(f"{kind} path is not a file: {path}")
    if path.stat().st_size == 0:
        raise DecodeError(f"{kind} file is empty (0 bytes): {path}")


def _flatten_alpha(img: Image.Image) -> Image.Image:
    """Composite an image with transparency onto a white background; returns mode RGB."""
    rgba = img.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _high_depth_to_array(img: Image.Image, size: int) -> np.ndarray:
    """Resize a 16/32-bit grayscale image in float and scale it to [0, 1]; returns (H, W, 3).

    ``I;16*`` and ``I`` images are taken as 16-bit (divided by 65535); ``F`` images are taken
    to be in [0, 1] already. Values are clipped to [0, 1].
    """
    values = np.asarray(img, dtype=np.float32)  # (H, W)
    if img.mode != "F":
        values = values / 65535.0
    resized = Image.fromarray(values).resize((size, size), Image.Resampling.BILINEAR)
    gray = np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)
    return np.repeat(gray[:, :, None], 3, axis=2)


def to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow image as 8-bit RGB (transparency on white, 16-bit grey scaled to 8 bits)."""
    if img.mode in _HIGH_DEPTH_MODES:
        values = np.asarray(img, dtype=np.float32)
        if img.mode != "F":
            values = values / 65535.0
        grey = (np.clip(values, 0.0, 1.0) * 255).round().astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    if img.mode in _ALPHA_MODES or (img.mode == "P" and "transparency" in img.info):
        return _flatten_alpha(img)
    return img.convert("RGB")


def image_to_array(img: Image.Image, size: int) -> np.ndarray:
    """Convert a decoded Pillow image to float32 RGB (3, size, size) in [0, 1].

    Any mode is accepted: transparent images (RGBA, LA, P with transparency) are composited
    on white, 16-bit grayscale keeps its full range, everything else goes through
    ``convert("RGB")``. The image is resized to (size, size) with bilinear filtering, without
    cropping, so the aspect ratio is not preserved.

    Args:
        img: A loaded Pillow image.
        size: Output height and width in pixels.

    Returns:
        Array of shape (3, size, size), dtype float32, values in [0, 1].
    """
    if size < 1:
        raise ValueError(f"image size must be >= 1, got {size}")
    if img.mode in _HIGH_DEPTH_MODES:
        hwc = _high_depth_to_array(img, size)
    else:
        if img.mode in _ALPHA_MODES or (img.mode == "P" and "transparency" in img.info):
            rgb = _flatten_alpha(img)
        else:
            rgb = img.convert("RGB")
        rgb = rgb.resize((size, size), Image.Resampling.BILINEAR)
        hwc = np.asarray(rgb, dtype=np.float32) / 255.0  # (size, size, 3)
    return np.ascontiguousarray(hwc.transpose(2, 0, 1), dtype=np.float32)


def read_image(source: ImageSource, convert: Callable[[Image.Image], T]) -> T:
    """Open an image, refuse a decompression bomb from its header, decode it, convert it.

    Every image decoder (from-scratch and pretrained) reads images through here, so a bad one
    gives the same message on every path. An image with more pixels than Pillow's
    ``Image.MAX_IMAGE_PIXELS`` is refused before a single pixel is decoded (Pillow would only
    warn below twice that limit, and decode it).

    Args:
        source: Image file with one of :data:`IMAGE_EXTENSIONS` (the content decides the
            format, so a PNG named ``.jpg`` is read; animated files give their first frame),
            the bytes of such a file, a pixel array (:func:`array_to_image`) or a Pillow image
            (read, never closed).
        convert: Turns the loaded image into the result (called while the file is open).

    Raises:
        DecodeError: The file is missing, empty or has an unsupported extension; the image is
            too large, corrupt or truncated; the array has the wrong shape, dtype or range.
    """
    if isinstance(source, (bytes, np.ndarray, Image.Image)):
        name = describe_cell(source)
    else:
        source = Path(source)
        check_media_file(source, IMAGE_EXTENSIONS, "image")
        name = str(source)
    try:
        with _opened(source, name) as img:
            return convert(img)
    except Image.DecompressionBombError as err:
        raise DecodeError(
            f"image {name} is too large to decode safely (a possible decompression bomb): "
            f"{error_text(err)} Shrink the image, or leave the record out."
        ) from err
    except PIL_ERRORS as err:
        raise DecodeError(f"cannot decode image {name}: {error_text(err)}") from err


@contextlib.contextmanager
def _opened(source: Path | bytes | np.ndarray | Image.Image, name: str) -> Iterator[Image.Image]:
    """The loaded image, its size checked first; a caller's Pillow image is not closed."""
    if isinstance(source, np.ndarray):
        source = array_to_image(source, name)
    if isinstance(source, Image.Image):
        check_pixels(source.width, source.height, name)
        with _OPEN_LOCK:  # one image object may sit in several cells, decoded by several threads
            source.load()
        yield source
        return
    with _OPEN_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # refused below
        img = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
    with img:
        check_pixels(img.width, img.height, name)
        img.load()
        yield img


def check_pixels(width: int, height: int, name: str, what: str = "image", unit: str = "") -> None:
    """Refuses more pixels than Pillow's ``Image.MAX_IMAGE_PIXELS`` (a possible decompression
    bomb) in an image, or in a video's frames (``what="video"``, ``unit="frames of "``)."""
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and width * height > limit:
        raise DecodeError(
            f"{what} {name} is too large to decode safely (a possible decompression bomb): "
            f"{unit}{width} x {height} = {width * height} pixels, over the limit of {limit}. "
            f"Shrink the {what}, or leave the record out."
        )


def array_to_image(array: np.ndarray, name: str = "array") -> Image.Image:
    """A pixel array as a Pillow image: (H, W) grey, (H, W, 1) grey, (H, W, 3) RGB or
    (H, W, 4) RGBA (transparency is later flattened on white, as for files).

    Args:
        array: uint8 pixels (0-255), or floats in [0, 1] (scaled to 0-255 and rounded).
        name: How messages name the array.

    Raises:
        DecodeError: Another shape or dtype, an empty array, more pixels than
            ``Image.MAX_IMAGE_PIXELS``, floats outside [0, 1] or not finite.
    """
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
        raise DecodeError(
            f"an image array has shape (H, W), (H, W, 3) or (H, W, 4); got {array.shape}"
        )
    if array.size == 0:
        raise DecodeError(f"the image array is empty (shape {array.shape})")
    check_pixels(array.shape[1], array.shape[0], name)
    if array.dtype.kind == "f":
        array = _float_pixels(array)
    elif array.dtype != np.uint8:
        raise DecodeError(
            f"an image array holds uint8 (0-255) or float (0-1) pixels; got dtype {array.dtype} "
            "(convert it with .astype(np.uint8) or scale it to [0, 1])"
        )
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    return Image.fromarray(np.ascontiguousarray(array))


def _float_pixels(array: np.ndarray) -> np.ndarray:
    """Float pixels in [0, 1] as uint8 (0-255)."""
    if not np.isfinite(array).all():
        raise DecodeError("the image array contains non-finite values (NaN or inf)")
    low, high = float(array.min()), float(array.max())
    if low < 0.0 or high > 1.0:
        raise DecodeError(
            f"a float image array holds values in [0, 1]; got values from {low:g} to {high:g} "
            "(divide 0-255 pixels by 255, or pass them as uint8)"
        )
    return (array.astype(np.float32) * 255.0).round().astype(np.uint8)


def load_image(source: ImageSource, size: int) -> np.ndarray:
    """Decode an image file (or an in-memory image) to float32 RGB (3, size, size) in [0, 1].

    Args:
        source: Image file with one of :data:`IMAGE_EXTENSIONS`, its bytes, a pixel array or
            a Pillow image (see :func:`read_image`). For animated files (GIF, multi-page TIFF)
            the first frame is used.
        size: Output height and width; the image is resized (bilinear, no crop).

    Returns:
        Array of shape (3, size, size), dtype float32, values in [0, 1], not normalised.

    Raises:
        DecodeError: The file is missing, empty, too large, has an unsupported extension, or
            is corrupt or truncated; an array of the wrong shape, dtype or range.
    """
    return read_image(source, lambda img: image_to_array(img, size))


def normalize_image(x: np.ndarray) -> np.ndarray:
    """Apply ImageNet mean/std per channel; the channel axis is axis -3.

    Args:
        x: Pixels in [0, 1], shape (3, H, W) or (N, 3, H, W).

    Returns:
        float32 array of the same shape: ``(x - mean) / std``.
    """
    if x.ndim < 3 or x.shape[-3] != 3:
        raise ValueError(f"expected shape (..., 3, H, W), got {x.shape}")
    mean = np.asarray(IMAGENET_MEAN, dtype=np.float32).reshape(3, 1, 1)
    std = np.asarray(IMAGENET_STD, dtype=np.float32).reshape(3, 1, 1)
    return ((x.astype(np.float32, copy=False) - mean) / std).astype(np.float32, copy=False)
