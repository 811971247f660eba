"""In-memory media cells: PIL images, numpy arrays and encoded bytes next to file paths.

The same image, sound or video gives the same array whether it comes from a file or from
memory; bad in-memory cells are bad records with clear messages; schema inference, the feature
cache and ``mmfuse info`` know them.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import av
import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from PIL import Image

from mmfuse import MultimodalClassifier
from mmfuse.cli.report import describe_table
from mmfuse.data.audio import load_audio, resample
from mmfuse.data.cache import FeatureCache, content_key
from mmfuse.data.cells import (
    checked_cell,
    describe_cell,
    in_memory_kind,
    is_in_memory,
    sniff_media,
)
from mmfuse.data.frozen import Column, extract_features
from mmfuse.data.image import load_image
from mmfuse.data.preparations import get_preparation
from mmfuse.data.preprocess import PreprocessConfig, Preprocessor
from mmfuse.data.readers import read_table
from mmfuse.data.schema import infer_schema
from mmfuse.data.video import has_audio_track, load_video_frames
from mmfuse.errors import DecodeError, MmfuseError
from mmfuse.pretrained import BACKBONES

RATE = 16000


def _encoded(img: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def _wave(freq: float = 440.0, seconds: float = 0.25, rate: int = RATE) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _sound(wave: np.ndarray, rate: int = RATE, fmt: str = "WAV") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, wave, rate, format=fmt)
    return buf.getvalue()


def _pixels(seed: int = 0, shape: tuple[int, ...] = (12, 10, 3)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _clip(
    container: str = "mp4", level: int = 0, with_audio: bool = False, frames: int = 3
) -> bytes:
    """A 16x16 'mpeg4' clip of ``frames`` frames in memory; with_audio adds an AAC tone."""
    buf = io.BytesIO()
    with av.open(buf, "w", format=container) as out:
        video = out.add_stream("mpeg4", rate=10)
        video.width, video.height, video.pix_fmt = 16, 16, "yuv420p"
        audio = out.add_stream("aac", rate=RATE) if with_audio else None
        for i in range(frames):
            rgb = np.full((16, 16, 3), (level + 60 * i) % 256, dtype=np.uint8)
            rgb[:, :8, 1] = 200 - level  # a left half that tells clips apart
            out.mux(video.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        out.mux(video.encode())
        if audio is not None:
            tone = _wave(300.0 + level, seconds=4096 / RATE)
            for start in range(0, tone.size, 1024):
                frame = av.AudioFrame.from_ndarray(
                    tone[None, start : start + 1024], format="fltp", layout="mono"
                )
                frame.sample_rate, frame.pts = RATE, start
                out.mux(audio.encode(frame))
            out.mux(audio.encode())
    return buf.getvalue()


# ------------------------------------------------------------------ recognising cells
def test_in_memory_cells_are_recognised_and_named() -> None:
    wave = np.zeros(16000, np.float32)
    assert describe_cell(Image.new("RGB", (32, 24))) == "<PIL image 32x24>"
    assert describe_cell(wave) == "<array (16000,)>"
    assert describe_cell(b"x" * 1234) == "<bytes 1234>"
    assert describe_cell((wave[:8000], 8000)) == "<wave (8000,) at 8000 Hz>"
    assert describe_cell("img/a.png") == "img/a.png"
    for value in (wave, b"ab", bytearray(b"ab"), Image.new("L", (2, 2)), (wave, 8000)):
        assert is_in_memory(value)
    for value in ("a.png", 3, None, [0.1, 0.2], (0.1, 0.2), (wave, 8000.0), (wave, True)):
        assert not is_in_memory(value)


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (_encoded(Image.new("RGB", (4, 4)), "PNG"), "image"),
        (_encoded(Image.new("RGB", (4, 4)), "JPEG"), "image"),
        (_encoded(Image.new("RGB", (4, 4)), "GIF"), "image"),
        (_encoded(Image.new("RGB", (4, 4)), "WEBP"), "image"),
        (_encoded(Image.new("RGB", (4, 4)), "BMP"), "image"),
        (_encoded(Image.new("RGB", (4, 4)), "TIFF"), "image"),
        (_sound(_wave(), fmt="WAV"), "audio"),
        (_sound(_wave(), fmt="FLAC"), "audio"),
        (_sound(_wave(), fmt="OGG"), "audio"),
        (_clip("mp4"), "video"),
        (_clip("mov"), "video"),
        (_clip("matroska"), "video"),
        (_clip("avi"), "video"),
        (b"\x00\x00\x00\x20ftypM4A \x00\x00\x00\x00", "audio"),  # MP4 audio, not video
        (b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00", "image"),  # AVIF still
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00", None),  # HEIF: no decoder
        (b"just some words", None),
        (b"", None),
    ],
)
def test_magic_bytes_tell_images_audio_and_video_apart(data: bytes, kind: str | None) -> None:
    assert sniff_media(data) == kind


def test_in_memory_kind_of_each_form() -> None:
    assert in_memory_kind(Image.new("RGBA", (3, 3))) == "image"
    assert in_memory_kind(_pixels(shape=(5, 5))) == "image"  # 2-D uint8
    assert in_memory_kind(_pixels(shape=(5, 5, 4))) == "image"
    assert in_memory_kind(np.zeros((5, 5, 3), np.float32)) == "image"  # (H, W, 3) floats
    assert in_memory_kind((np.zeros(10, np.float32), 8000)) == "audio"
    assert in_memory_kind(_sound(_wave())) == "audio"
    assert in_memory_kind(_clip()) == "video"
    assert in_memory_kind(bytearray(_clip("matroska"))) == "video"
    assert in_memory_kind(np.zeros(10, np.float32)) == "embedding"
    assert in_memory_kind(np.zeros((5, 5), np.float32)) == ""  # grey image or stereo wave?
    assert in_memory_kind(b"neither") == ""
    assert in_memory_kind("a.png") is None


def test_checked_cell_passes_in_memory_media_through(tmp_path: Path) -> None:
    img, pixels, wave = Image.new("RGB", (2, 2)), _pixels(), np.zeros(8, np.float32)
    assert checked_cell(img, "image", tmp_path) is img
    assert checked_cell(pixels, "image", tmp_path) is pixels
    assert checked_cell(bytearray(b"\x89PNG"), "image", tmp_path) == b"\x89PNG"
    assert checked_cell(wave, "audio", tmp_path) is wave
    assert checked_cell((wave, 8000), "audio", tmp_path) == (wave, 8000)
    assert checked_cell(wave, "embedding", tmp_path) is wave  # the embedding parser checks it


@pytest.mark.parametrize(
    ("value", "kind", "message"),
    [
        (b"", "image", "the image bytes are empty (0 bytes)"),
        ((np.zeros(4, np.float32), 8000), "image", "<wave (4,) at 8000 Hz> is not an image; "
         "an image cell holds a file path or a PIL image, a uint8 or [0, 1] float numpy "
         "array, or encoded image bytes"),
        (Image.new("RGB", (2, 2)), "audio", "<PIL image 2x2> is not an audio; an audio cell "
         "holds a file path or encoded audio bytes, a float numpy array, or an (array, "
         "sample_rate) pair"),
        (np.zeros((2, 4, 4, 3), np.uint8), "video", "<array (2, 4, 4, 3)> is not a video; "
         "a video cell holds a file path or encoded video bytes (MP4, MOV, MKV, WebM, AVI)"),
        (Image.new("RGB", (2, 2)), "video", "<PIL image 2x2> is not a video; a video cell "
         "holds a file path or encoded video bytes (MP4, MOV, MKV, WebM, AVI)"),
        (b"", "video", "the video bytes are empty (0 bytes)"),
    ],
)
def test_checked_cell_refuses_unusable_in_memory_values(
    value: Any, kind: str, message: str, tmp_path: Path
) -> None:
    with pytest.raises(DecodeError) as err:
        checked_cell(value, kind, tmp_path)
    assert str(err.value) == message


# ----------------------------------------------------------------------------- images
def test_an_image_decodes_the_same_from_a_file_and_from_memory(tmp_path: Path) -> None:
    img = Image.fromarray(_pixels())
    img.save(tmp_path / "a.png")
    from_file = load_image(tmp_path / "a.png", 8)
    np.testing.assert_array_equal(load_image(img, 8), from_file)
    np.testing.assert_array_equal(load_image(_pixels(), 8), from_file)
    np.testing.assert_array_equal(load_image((tmp_path / "a.png").read_bytes(), 8), from_file)
    floats = _pixels().astype(np.float32) / 255.0  # [0, 1] floats round to the same pixels
    np.testing.assert_array_equal(load_image(floats, 8), from_file)


def test_image_modes_and_shapes_become_rgb(tmp_path: Path) -> None:
    grey = _pixels(shape=(6, 6))
    out = load_image(grey, 6)
    assert out.shape == (3, 6, 6)
    np.testing.assert_array_equal(out[0], grey / np.float32(255.0))
    np.testing.assert_array_equal(out[0], out[2])
    np.testing.assert_array_equal(load_image(grey[:, :, None], 6), out)  # (H, W, 1)
    clear = np.zeros((4, 4, 4), np.uint8)  # fully transparent black: white, as for files
    np.testing.assert_array_equal(load_image(clear, 4), np.ones((3, 4, 4), np.float32))
    rgba = Image.fromarray(clear, "RGBA")
    rgba.save(tmp_path / "clear.png")
    np.testing.assert_array_equal(load_image(rgba, 4), load_image(tmp_path / "clear.png", 4))
    palette = Image.fromarray(_pixels()).convert("P")
    np.testing.assert_array_equal(load_image(palette, 8), load_image(palette.convert("RGB"), 8))


def test_a_pil_cell_is_not_closed_or_changed() -> None:
    img = Image.fromarray(_pixels())
    before = img.tobytes()
    load_image(img, 4)
    load_image(img, 4)  # still open: a cell can be read again (predict after fit)
    assert img.tobytes() == before and img.mode == "RGB" and img.size == (10, 12)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (np.zeros((4, 4), np.int64), "an image array holds uint8 (0-255) or float (0-1) pixels; "
         "got dtype int64 (convert it with .astype(np.uint8) or scale it to [0, 1])"),
        (np.full((2, 2, 3), 255.0), "a float image array holds values in [0, 1]; got values "
         "from 255 to 255 (divide 0-255 pixels by 255, or pass them as uint8)"),
        (np.full((2, 2), np.nan), "the image array contains non-finite values (NaN or inf)"),
        (np.zeros((4, 4, 2), np.uint8), "an image array has shape (H, W), (H, W, 3) or "
         "(H, W, 4); got (4, 4, 2)"),
        (np.zeros(16, np.uint8), "an image array has shape (H, W), (H, W, 3) or (H, W, 4); "
         "got (16,)"),
        (np.zeros((0, 4), np.uint8), "the image array is empty (shape (0, 4))"),
        (b"\x89PNG\r\n\x1a\n not really", "cannot decode image <bytes 19>: cannot identify "
         "image file"),
    ],
)
def test_bad_image_values_are_refused(value: Any, message: str) -> None:
    with pytest.raises(DecodeError) as err:
        load_image(value, 4)
    assert str(err.value) == message


def test_truncated_image_bytes_are_refused() -> None:
    data = _encoded(Image.fromarray(_pixels(shape=(64, 64, 3))))
    with pytest.raises(DecodeError, match=r"^cannot decode image <bytes 300>: "):
        load_image(data[:300], 4)


@pytest.mark.parametrize("form", ["bytes", "array", "pil"])
def test_decompression_bombs_are_refused_in_memory(
    form: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    img = Image.new("RGB", (20, 10))
    value = {"bytes": _encoded(img), "array": np.asarray(img), "pil": img}[form]
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 199)
    with pytest.raises(DecodeError) as err:
        load_image(value, 4)
    assert str(err.value) == (
        f"image {describe_cell(value)} is too large to decode safely (a possible decompression "
        "bomb): 20 x 10 = 200 pixels, over the limit of 199. Shrink the image, or leave the "
        "record out."
    )
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 200)
    assert load_image(value, 4).shape == (3, 4, 4)


def test_the_pretrained_image_preparation_reads_memory_as_files(tmp_path: Path) -> None:
    prep = get_preparation("imagenet-224")
    img = Image.fromarray(_pixels(shape=(40, 30, 3)))
    img.save(tmp_path / "a.png")
    from_file = prep.decode(None, tmp_path / "a.png")
    np.testing.assert_array_equal(prep.decode(img, None), from_file)
    np.testing.assert_array_equal(prep.decode(np.asarray(img), None), from_file)
    np.testing.assert_array_equal(prep.decode((tmp_path / "a.png").read_bytes(), None), from_file)


# ------------------------------------------------------------------------------ audio
@pytest.mark.parametrize("fmt", ["WAV", "FLAC", "OGG"])
def test_audio_decodes_the_same_from_a_file_and_from_bytes(fmt: str, tmp_path: Path) -> None:
    data = _sound(_wave(), fmt=fmt)
    path = tmp_path / f"a.{fmt.lower()}"
    path.write_bytes(data)
    np.testing.assert_array_equal(load_audio(data, RATE), load_audio(path, RATE))
    np.testing.assert_array_equal(load_audio(data, 8000), load_audio(path, 8000))


def test_audio_arrays_are_at_the_configured_rate_unless_paired_with_theirs() -> None:
    wave = _wave()
    np.testing.assert_array_equal(load_audio(wave, RATE), wave)
    np.testing.assert_array_equal(load_audio(wave.astype(np.float64), RATE), wave)
    slow = _wave(rate=8000)
    resampled = load_audio((slow, 8000), RATE)
    assert resampled.shape == (4000,)
    np.testing.assert_array_equal(resampled, resample(slow, 8000, RATE))
    np.testing.assert_array_equal(load_audio((wave, RATE), RATE), wave)


def test_multichannel_arrays_are_mixed_to_mono() -> None:
    left, right = _wave(440.0), _wave(660.0)
    mono = (left + right) / 2
    np.testing.assert_allclose(load_audio(np.stack([left, right], axis=1), RATE), mono, atol=1e-7)
    np.testing.assert_allclose(load_audio(np.stack([left, right]), RATE), mono, atol=1e-7)


def test_long_arrays_are_cut_like_long_files() -> None:
    wave = np.ones(RATE * 3, np.float32)
    assert load_audio(wave, RATE, max_seconds=2).shape == (RATE * 2,)
    assert load_audio((wave, 8000), 8000, max_seconds=2).shape == (8000 * 2,)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (np.zeros(8, np.int16), "an audio array holds float samples (about -1 to 1); got dtype "
         "int16 (divide 16-bit samples by 32768 and pass them as float32)"),
        (np.zeros((2, 2, 2), np.float32), "an audio array has shape (samples,) or (samples, "
         "channels); got (2, 2, 2)"),
        (np.zeros(0, np.float32), "audio <array (0,)> has zero samples"),
        (np.array([0.0, np.inf], np.float32), "audio <array (2,)> contains non-finite samples "
         "(NaN or inf)"),
        ((np.zeros(8, np.float32), 0), "the sample rate of <wave (8,) at 0 Hz> must be at "
         "least 1 Hz"),
        (b"just some words", "cannot decode audio <bytes 15>: not an audio file of a known "
         "format (WAV, FLAC, OGG, AIFF, MP3, ...)"),
    ],
)
def test_bad_audio_values_are_refused(value: Any, message: str) -> None:
    with pytest.raises(DecodeError) as err:
        load_audio(value, RATE)
    assert str(err.value) == message


def test_truncated_audio_bytes_name_the_cell_not_a_memory_address() -> None:
    data = _sound(_wave())[:30]
    with pytest.raises(DecodeError) as err:
        load_audio(data, RATE)
    assert str(err.value).startswith("cannot decode audio <bytes 30>: ")
    assert "0x" not in str(err.value) and "BytesIO" not in str(err.value)


# ----------------------------------------------------------------------------- schema
def _media_frame() -> pd.DataFrame:
    n = 6
    img = Image.fromarray(_pixels())
    return pd.DataFrame(
        {
            "pil": [img] * n,
            "pixels": [_pixels(i) for i in range(n)],
            "grey": [_pixels(i, (8, 8)) for i in range(n)],
            "png": [_encoded(img)] * (n - 1) + [None],
            "wav": [_sound(_wave(200.0 * (i + 1))) for i in range(n)],
            "pair": [(_wave(rate=8000), 8000)] * n,
            "samples": [_wave()] * n,
            "label": ["a", "b"] * (n // 2),
        }
    )


def test_schema_inference_knows_in_memory_media() -> None:
    schema = infer_schema(_media_frame(), target="label")
    assert schema.kinds == {
        "pil": "image",
        "pixels": "image",
        "grey": "image",
        "png": "image",
        "wav": "audio",
        "pair": "audio",
        "samples": "embedding",  # 1-D float arrays stay embeddings ...
    }
    overridden = infer_schema(_media_frame(), target="label", kinds={"samples": "audio"})
    assert overridden.kinds["samples"] == "audio"  # ... unless named audio


def test_columns_of_unclear_in_memory_cells_are_ignored_saying_why() -> None:
    frame = pd.DataFrame(
        {
            "mixed": [Image.new("RGB", (2, 2))] * 3 + [_sound(_wave())] * 3,
            "planes": [np.zeros((4, 4), np.float32)] * 6,
            "n": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        }
    )
    schema = infer_schema(frame)
    assert schema.kinds == {"n": "numeric"}
    assert schema.ignored["mixed"] == (
        "in-memory cells of no single kind (image: 3, audio: 3); an image cell is a PIL image, "
        "a uint8 array or image bytes, an audio cell audio bytes or an (array, rate) pair, a "
        "video cell video bytes; name the kind with kinds='mixed=image' (or audio, video)"
    )
    assert schema.ignored["planes"].startswith("in-memory cells of no single kind "
                                               "(unrecognised: 6)")
    assert infer_schema(frame, kinds={"planes": "image"}).kinds["planes"] == "image"


def test_info_shows_in_memory_examples(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "photo": [_encoded(Image.new("RGB", (4, 4), (i * 40, 0, 0))) for i in range(4)],
            "label": ["a", "b", "a", "b"],
        }
    )
    frame.to_parquet(tmp_path / "data.parquet")
    size = len(frame["photo"][0])
    text = describe_table(str(tmp_path / "data.parquet"), "label", None)
    assert f"photo   image   0        <bytes {size}>" in text
    assert "modalities: photo (image)" in text


# ---------------------------------------------------------- bad cells as bad records
def test_a_bad_in_memory_cell_is_a_bad_record_named_by_row_and_column() -> None:
    frame = _media_frame()[["pixels", "wav", "label"]]
    pixels, sounds = list(frame["pixels"]), list(frame["wav"])
    pixels[2], sounds[4] = np.zeros((3, 3), np.int32), b"RIFF broken"
    frame = frame.assign(pixels=pd.Series(pixels, dtype=object), wav=sounds)
    table = read_table(frame)
    pre = Preprocessor(infer_schema(frame, target="label"), PreprocessConfig(image_size=8),
                       "classification").fit(table)
    with pytest.raises(MmfuseError) as err:
        pre.transform(table, verbose=False, num_threads=1)
    message = str(err.value)
    assert message.startswith("<DataFrame>: 2 bad value(s) in 2 record(s):")
    assert "row 2, column 'pixels': an image array holds uint8 (0-255) or float" in message
    assert "row 4, column 'wav': cannot decode audio <bytes 11>: " in message
    encoded = pre.transform(table, on_bad_record="skip", verbose=False, num_threads=1)
    assert encoded.rows.tolist() == [0, 1, 3, 5]
    assert [(r.row, r.column) for r in encoded.rejected] == [(2, "pixels"), (4, "wav")]
    assert encoded.mask["pixels"].all() and encoded.inputs["pixels"].shape == (4, 3, 8, 8)


# ---------------------------------------------------------------- the feature cache
def test_content_keys_of_in_memory_cells(tmp_path: Path) -> None:
    pixels = _pixels()
    assert content_key(value=pixels) == content_key(value=pixels.copy())
    assert content_key(value=pixels) != content_key(value=pixels.astype(np.float32))
    assert content_key(value=pixels) != content_key(value=pixels.reshape(10, 12, 3))
    assert content_key(value=pixels[:, ::-1]) == content_key(value=pixels[:, ::-1].copy())
    img = Image.fromarray(pixels)
    assert content_key(value=img) == content_key(value=Image.fromarray(pixels.copy()))
    assert content_key(value=img) != content_key(value=pixels)
    grey = Image.fromarray(pixels[:, :, 0])
    assert content_key(value=grey) != content_key(value=grey.convert("P"))
    recoloured = grey.convert("P")
    recoloured.putpalette([255 - i % 256 for i in range(768)])
    assert content_key(value=recoloured) != content_key(value=grey.convert("P"))
    wave = _wave()
    assert content_key(value=(wave, 8000)) != content_key(value=(wave, 16000))
    data = _encoded(img)
    (tmp_path / "a.png").write_bytes(data)
    assert content_key(value=data) == content_key(path=tmp_path / "a.png")  # one entry for both


class _MeanColour:
    """A stand-in frozen network: the mean of each prepared channel."""

    fingerprint = "mean-colour-v1"
    batch_size = 2

    def __init__(self) -> None:
        self.seen = 0

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.seen += len(batch)
        return batch.mean(axis=(2, 3))  # (B, 3)


def test_frozen_features_of_in_memory_cells_are_cached(tmp_path: Path) -> None:
    img = Image.fromarray(_pixels())
    cells = [img, np.asarray(img), _encoded(img), _pixels(1), None, b""]
    column = Column(cells, "image", tmp_path)
    prep, cache = get_preparation("imagenet-224"), FeatureCache(tmp_path / "cache")
    first = _MeanColour()
    x, present, errors = extract_features(column, prep, first, (3,), cache, verbose=False)
    assert present.tolist() == [True, True, True, True, False, False]
    assert errors == [(5, "the image bytes are empty (0 bytes)")]
    assert first.seen == 4  # the PIL image and its array are different contents
    np.testing.assert_allclose(x[0], x[1], atol=1e-6)
    np.testing.assert_allclose(x[0], x[2], atol=1e-6)
    assert cache.info()["entries"] == 4
    second = _MeanColour()
    again, _, _ = extract_features(column, prep, second, (3,), cache, verbose=False)
    assert second.seen == 0  # every in-memory cell came from the cache
    np.testing.assert_array_equal(again, x)


# ------------------------------------------------------------------------------ video
@pytest.mark.parametrize("container", ["mp4", "mov", "matroska", "avi"])
def test_a_video_decodes_the_same_from_a_file_and_from_bytes(
    container: str, tmp_path: Path
) -> None:
    data = _clip(container, level=30)
    path = tmp_path / f"clip.{ {'matroska': 'mkv'}.get(container, container) }"
    path.write_bytes(data)
    from_bytes = load_video_frames(data, 4, 8)
    assert from_bytes.shape == (4, 3, 8, 8)
    np.testing.assert_array_equal(from_bytes, load_video_frames(path, 4, 8))
    np.testing.assert_array_equal(load_video_frames(data, 2, 5), load_video_frames(path, 2, 5))


def test_the_audio_track_of_video_bytes_is_read_as_from_the_file(tmp_path: Path) -> None:
    data, silent = _clip(with_audio=True), _clip()
    (tmp_path / "clip.mp4").write_bytes(data)
    assert has_audio_track(data) and has_audio_track(tmp_path / "clip.mp4")
    assert not has_audio_track(silent)
    assert not has_audio_track(_sound(_wave()))  # audio bytes are not a video with sound
    assert not has_audio_track(b"\x00\x00\x00\x18ftypisom broken")
    wave = load_audio(data, RATE)
    assert wave.shape[0] > 0
    np.testing.assert_array_equal(wave, load_audio(tmp_path / "clip.mp4", RATE))
    np.testing.assert_array_equal(load_audio(data, 8000), load_audio(tmp_path / "clip.mp4", 8000))
    with pytest.raises(DecodeError) as err:
        load_audio(silent, RATE)
    assert str(err.value) == f"no audio stream in <bytes {len(silent)}>"


def test_checked_video_bytes_are_a_missing_track_when_silent(tmp_path: Path) -> None:
    data, silent = _clip(with_audio=True), _clip()
    assert checked_cell(data, "video", tmp_path) is data
    assert checked_cell(bytearray(silent), "video", tmp_path) == silent
    assert checked_cell(memoryview(data), "video", tmp_path, audio_track=True) == data
    assert checked_cell(silent, "video", tmp_path, audio_track=True) is None


_MP4 = _clip()
_PNG = _encoded(Image.new("RGB", (4, 4)))
_RANDOM = np.random.default_rng(0).bytes(500)
_KNOWN = "not a video file of a known format (MP4, MOV, MKV, WebM, AVI)"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_RANDOM, f"cannot decode video <bytes 500>: {_KNOWN}"),
        (_PNG, f"cannot decode video <bytes {len(_PNG)}>: {_KNOWN}; the bytes look like an "
         "image file"),
        (_sound(_wave())[:100], f"cannot decode video <bytes 100>: {_KNOWN}; the bytes look "
         "like an audio file"),
        (_MP4[: len(_MP4) // 2], f"cannot decode video <bytes {len(_MP4) // 2}>: its video "
         "stream has no known codec (a truncated or corrupt file?)"),  # the index is cut
        (_MP4[:40], "cannot decode video <bytes 40>: Invalid data found when processing input"),
        (b"\x1aE\xdf\xa3" + b"\x00" * 60, "cannot decode video <bytes 64>: Invalid data found "
         "when processing input"),
    ],
)
def test_corrupt_video_bytes_are_refused_with_a_reason(data: bytes, message: str) -> None:
    with pytest.raises(DecodeError) as err:
        load_video_frames(data, 2, 4)
    assert str(err.value) == message


@pytest.mark.parametrize("form", ["bytes", "file"])
def test_video_frames_over_the_pixel_limit_are_refused(
    form: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "clip.mp4").write_bytes(_MP4)
    source: bytes | Path = _MP4 if form == "bytes" else tmp_path / "clip.mp4"
    name = f"<bytes {len(_MP4)}>" if form == "bytes" else str(tmp_path / "clip.mp4")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 255)
    with pytest.raises(DecodeError) as err:
        load_video_frames(source, 2, 4)
    assert str(err.value) == (
        f"video {name} is too large to decode safely (a possible decompression bomb): frames "
        "of 16 x 16 = 256 pixels, over the limit of 255. Shrink the video, or leave the record "
        "out."
    )
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 256)
    assert load_video_frames(source, 2, 4).shape == (2, 3, 4, 4)


def _clip_frame(folder: Path | None = None) -> pd.DataFrame:
    """Six labelled clips as bytes (with an AAC track), or as files in ``folder``."""
    clips = [_clip(level=40 * i, with_audio=True) for i in range(6)]
    cells: list[Any] = list(clips)
    if folder is not None:
        for i, data in enumerate(clips):
            (folder / f"c{i}.mp4").write_bytes(data)
        cells = [str(folder / f"c{i}.mp4") for i in range(6)]
    return pd.DataFrame({"clip": cells, "label": ["a", "b"] * 3})


def test_schema_inference_knows_video_bytes_and_their_audio_track(tmp_path: Path) -> None:
    schema = infer_schema(_clip_frame(), target="label", base_dir=tmp_path)
    assert schema.kinds == {"clip": "video"}
    assert schema.audio_tracks == ("clip",)
    assert schema.modalities() == {"clip": "video", "clip_audio": "audio"}
    silent = pd.DataFrame({"clip": [_clip(level=i) for i in range(3)], "n": [1.0, 2.0, 3.0]})
    assert infer_schema(silent, base_dir=tmp_path).audio_tracks == ()


def test_video_bytes_and_files_give_the_same_inputs(tmp_path: Path) -> None:
    in_memory, files = _clip_frame(), _clip_frame(tmp_path)
    schema = infer_schema(files, target="label", base_dir=tmp_path)
    config = PreprocessConfig(video_frames=4, video_size=8, audio_frames=20)
    pre = Preprocessor(schema, config, "classification").fit(read_table(files))
    expected = pre.transform(read_table(files), verbose=False, num_threads=1)
    got = pre.transform(read_table(in_memory), verbose=False, num_threads=1)
    assert set(got.inputs) == {"clip", "clip_audio"}
    assert got.inputs["clip"].shape == (6, 4, 3, 8, 8)
    for modality in ("clip", "clip_audio"):
        assert got.mask[modality].all()
        np.testing.assert_array_equal(got.inputs[modality], expected.inputs[modality])


def test_bad_video_bytes_are_a_bad_record_named_by_row_and_column(tmp_path: Path) -> None:
    frame = _clip_frame()
    clips = list(frame["clip"])
    clips[3] = _PNG
    frame["clip"] = clips
    schema = infer_schema(_clip_frame(), target="label", base_dir=tmp_path)
    pre = Preprocessor(schema, PreprocessConfig(video_frames=2, video_size=4), "classification")
    pre.fit(read_table(frame))
    encoded = pre.transform(read_table(frame), on_bad_record="skip", verbose=False, num_threads=1)
    assert [(r.row, r.column) for r in encoded.rejected] == [(3, "clip")]
    assert encoded.rejected[0].reason == (
        f"cannot decode video <bytes {len(_PNG)}>: {_KNOWN}; the bytes look like an image file"
    )
    assert encoded.rows.tolist() == [0, 1, 2, 4, 5]


class _MeanFrameColour:
    """A stand-in frozen network for clips: the mean of each prepared frame's channels."""

    fingerprint = "mean-frame-colour-v1"
    batch_size = 2

    def __init__(self) -> None:
        self.seen = 0

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.seen += len(batch)
        return batch.mean(axis=(3, 4))  # (B, frames, 3)


def test_frozen_video_features_of_bytes_share_the_cache_entry_of_the_file(
    tmp_path: Path,
) -> None:
    clips = [_clip(level=50 * i) for i in range(3)]
    for i, data in enumerate(clips):
        (tmp_path / f"c{i}.mp4").write_bytes(data)
    prep, cache = get_preparation("imagenet-frames-224"), FeatureCache(tmp_path / "cache")
    shape = (prep.shape[0], 3)
    first = _MeanFrameColour()
    files = Column([f"c{i}.mp4" for i in range(3)], "video", tmp_path)
    from_files, _, _ = extract_features(files, prep, first, shape, cache, verbose=False)
    assert first.seen == 3 and cache.info()["entries"] == 3
    second = _MeanFrameColour()
    column = Column([*clips, clips[0], None, _PNG], "video", tmp_path)
    x, present, errors = extract_features(column, prep, second, shape, cache, verbose=False)
    assert second.seen == 0  # every clip came from the entry its file made
    np.testing.assert_array_equal(x[:3], from_files)
    np.testing.assert_array_equal(x[3], from_files[0])
    assert present.tolist() == [True, True, True, True, False, False]
    assert errors == [(5, f"cannot decode video <bytes {len(_PNG)}>: {_KNOWN}; the bytes look "
                          "like an image file")]
    uncached = _MeanFrameColour()
    again, _, _ = extract_features(column, prep, uncached, shape, None, verbose=False)
    assert uncached.seen == 3  # decoded from the bytes themselves: the same features
    np.testing.assert_allclose(again[:4], x[:4], rtol=1e-6)


def test_fit_and_predict_with_a_video_bytes_column(tmp_path: Path) -> None:
    frame = _clip_frame()
    params: dict[str, Any] = {"epochs": 2, "dim": 8, "num_threads": 1, "verbose": False,
                              "seed": 0}
    clf = MultimodalClassifier(**params).fit(frame, target="label")
    assert clf.schema_.kinds == {"clip": "video"} and clf.schema_.audio_tracks == ("clip",)
    assert clf.rejected_ == []
    features = frame.drop(columns=["label"])
    assert set(clf.predict(features)) <= {"a", "b"}
    files = _clip_frame(tmp_path).drop(columns=["label"])
    np.testing.assert_array_equal(clf.predict_proba(files), clf.predict_proba(features))


def test_pretrained_video_encoder_reads_and_caches_video_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if BACKBONES["efficientnet-lite0"].missing():
        pytest.skip("efficientnet-lite0 is not installed")
    monkeypatch.setenv("MMFUSE_PRETRAINED", "1")
    frame = pd.DataFrame({"clip": [_clip(level=60 * i) for i in range(4)], "label": ["a", "b"] * 2})
    cache = tmp_path / "cache"
    params = {"epochs": 1, "dim": 8, "num_threads": 1, "verbose": False, "seed": 0,
              "cache_dir": str(cache), "encoders": "video=efficientnet-lite0"}
    first = MultimodalClassifier(**params).fit(frame, target="label")
    assert first.model_config_.encoders["clip"] == "efficientnet-lite0"
    assert FeatureCache(cache).info()["entries"] == 4

    from mmfuse.encoders import backbones

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the network ran although every clip is cached")

    monkeypatch.setattr(backbones.FrozenExtractor, "__call__", refuse)
    folder = tmp_path / "clips"
    folder.mkdir()
    for i, data in enumerate(frame["clip"]):
        (folder / f"c{i}.mp4").write_bytes(data)
    as_files = pd.DataFrame({"clip": [str(folder / f"c{i}.mp4") for i in range(4)]})
    np.testing.assert_array_equal(
        first.predict_proba(as_files), first.predict_proba(frame.drop(columns=["label"]))
    )
