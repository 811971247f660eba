"""Tests for mmfuse.data.video: MP4 decoding, frame folders, uniform sampling, errors."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from mmfuse.data.video import (
    VIDEO_EXTENSIONS,
    has_audio_track,
    list_frame_files,
    load_video_frames,
    sample_frame_indices,
)
from mmfuse.errors import DecodeError

# Frame i is a solid colour: red falls, green/blue rise, so every frame is distinct.
LEVELS = (0, 60, 120, 180, 240)


def write_mp4(path: Path, levels: tuple[int, ...] = LEVELS, with_audio: bool = True) -> Path:
    """Write a 32x32 'mpeg4' MP4, one solid frame per level, optionally with an AAC track."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("mpeg4", rate=10)
        video.width, video.height, video.pix_fmt = 32, 32, "yuv420p"
        audio = container.add_stream("aac", rate=16000) if with_audio else None
        for level in levels:
            rgb = np.full((32, 32, 3), level, dtype=np.uint8)
            rgb[..., 0] = 255 - level
            for packet in video.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        container.mux(video.encode())
        if audio is not None:
            tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(8192) / 16000).astype(np.float32)
            for start in range(0, tone.size, 1024):
                frame = av.AudioFrame.from_ndarray(
                    tone[None, start : start + 1024], format="fltp", layout="mono"
                )
                frame.sample_rate, frame.pts = 16000, start
                container.mux(audio.encode(frame))
            container.mux(audio.encode())
    return path


def write_frame_folder(folder: Path, names: list[str], levels: list[int]) -> Path:
    folder.mkdir()
    for name, level in zip(names, levels):
        Image.new("RGB", (4, 4), (level, level, level)).save(folder / name)
    return folder


def test_sample_frame_indices_uniform_and_repeating() -> None:
    np.testing.assert_array_equal(sample_frame_indices(10, 4), [0, 3, 6, 9])
    np.testing.assert_array_equal(sample_frame_indices(3, 5), [0, 0, 1, 2, 2])  # half-to-even
    np.testing.assert_array_equal(sample_frame_indices(1, 3), [0, 0, 0])
    with pytest.raises(ValueError, match="num_available must be >= 1, got 0"):
        sample_frame_indices(0, 3)


def test_mp4_frames_shape_range_and_order(tmp_path: Path) -> None:
    path = write_mp4(tmp_path / "clip.mp4")
    x = load_video_frames(path, num_frames=3, size=8)
    assert x.shape == (3, 3, 8, 8) and x.dtype == np.float32
    assert x.min() >= 0.0 and x.max() <= 1.0
    # Sampled indices [0, 2, 4] -> levels 0, 120, 240 (lossy codec, so approximately).
    mean_rgb = x.mean(axis=(2, 3))  # (3, 3)
    expected = np.array([[255 - v, v, v] for v in (0, 120, 240)]) / 255
    np.testing.assert_allclose(mean_rgb, expected, atol=0.06)


def test_mp4_with_more_requested_frames_repeats(tmp_path: Path) -> None:
    path = write_mp4(tmp_path / "clip.mp4", levels=(0, 240), with_audio=False)
    x = load_video_frames(path, num_frames=4, size=4)  # indices [0, 0, 1, 1]
    np.testing.assert_array_equal(x[0], x[1])
    np.testing.assert_array_equal(x[2], x[3])
    assert x[0, 1].mean() < 0.1 < 0.9 < x[3, 1].mean()  # green channel rises


def test_frame_folder_is_a_video_in_natural_order(tmp_path: Path) -> None:
    names = ["f10.png", "f2.png", "f1.jpg", "notes.txt"]
    folder = tmp_path / "frames"
    write_frame_folder(folder, names[:3], [255, 51, 0])
    (folder / "notes.txt").write_text("not a frame")
    assert [p.name for p in list_frame_files(folder)] == ["f1.jpg", "f2.png", "f10.png"]
    x = load_video_frames(folder, num_frames=5, size=2)  # indices [0, 0, 1, 2, 2]
    assert x.shape == (5, 3, 2, 2)
    np.testing.assert_allclose(x[:, 0, 0, 0], [0, 0, 0.2, 1, 1], atol=0.01)


def test_empty_frame_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DecodeError, match="holds no image files"):
        load_video_frames(tmp_path / "empty", 2, 4)


def test_corrupt_frame_in_folder_names_the_file(tmp_path: Path) -> None:
    folder = write_frame_folder(tmp_path / "frames", ["a.png"], [10])
    (folder / "b.png").write_bytes(b"garbage")
    with pytest.raises(DecodeError, match="b.png"):
        load_video_frames(folder, 2, 4)


def test_missing_empty_corrupt_and_unsupported_files(tmp_path: Path) -> None:
    with pytest.raises(DecodeError, match="not found: .*none.mp4"):
        load_video_frames(tmp_path / "none.mp4", 2, 4)
    with pytest.raises(DecodeError, match="frame folder not found: .*no_frames"):
        load_video_frames(tmp_path / "no_frames", 2, 4)
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(DecodeError, match="empty"):
        load_video_frames(tmp_path / "empty.mp4", 2, 4)
    (tmp_path / "bad.mp4").write_bytes(b"\x00\x01 definitely not a video" * 20)
    with pytest.raises(DecodeError, match="cannot decode video .*bad.mp4"):
        load_video_frames(tmp_path / "bad.mp4", 2, 4)
    (tmp_path / "clip.gif").write_bytes(b"GIF89a")
    with pytest.raises(DecodeError, match=r"unsupported video extension '\.gif'"):
        load_video_frames(tmp_path / "clip.gif", 2, 4)


def test_audio_only_container_has_no_video_stream(tmp_path: Path) -> None:
    path = tmp_path / "sound.mp4"
    with av.open(str(path), "w") as container:
        audio = container.add_stream("aac", rate=16000)
        frame = av.AudioFrame.from_ndarray(
            np.zeros((1, 1024), np.float32), format="fltp", layout="mono"
        )
        frame.sample_rate, frame.pts = 16000, 0
        container.mux(audio.encode(frame))
        container.mux(audio.encode())
    with pytest.raises(DecodeError, match="no video stream"):
        load_video_frames(path, 2, 4)


def test_has_audio_track(tmp_path: Path) -> None:
    assert has_audio_track(write_mp4(tmp_path / "a.mp4")) is True
    assert has_audio_track(write_mp4(tmp_path / "b.mp4", with_audio=False)) is False
    assert has_audio_track(tmp_path) is False  # a folder
    assert has_audio_track(tmp_path / "missing.mp4") is False
    (tmp_path / "bad.mp4").write_bytes(b"junk" * 10)
    assert has_audio_track(tmp_path / "bad.mp4") is False


def test_video_extensions_exclude_gif() -> None:
    assert ".gif" not in VIDEO_EXTENSIONS and ".mp4" in VIDEO_EXTENSIONS
