"""Media files for the battery: valid images, WAVs and MP4s of every flavour, and broken ones.

Every writer takes the data folder and a name relative to it, writes the file, and returns the
name for the table cell. ``check_bad_cell`` / ``check_good_cells`` run the two fits every
battery test of a bad (or unusual but valid) cell makes.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from reliability_harness import FAST, N_ROWS, Result, expect_user_error, snapshot, write_csv

PRETRAINED_FAST = [flag for flag in FAST if flag != "--no-pretrained"]


def encoder_flags(path: str, backbone: str, monkeypatch) -> list[str]:  # type: ignore[no-untyped-def]
    """The fit flags of one encoder path: "scratch", or "pretrained" (``backbone``, skipped
    where its packages are missing)."""
    from mmfuse.pretrained import BACKBONES

    if path == "scratch":
        return FAST
    if BACKBONES[backbone].missing():
        pytest.skip(f"{backbone} is not installed")
    monkeypatch.setenv("MMFUSE_PRETRAINED", "1")
    return PRETRAINED_FAST
"""FAST with the installed pretrained encoders (run with MMFUSE_PRETRAINED=1)."""

Cli = Callable[..., Result]


# ------------------------------------------------------------------------------ writers
def write_bytes(folder: Path, name: str, content: bytes) -> str:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return name


def image_bytes(fmt: str = "PNG", size: int = 8, mode: str = "RGB", level: int = 128) -> bytes:
    """One image file's bytes; noise for sizes over 8 so truncation hits pixel data."""
    rng = np.random.default_rng(level)
    if mode == "I;16":
        img = Image.fromarray(rng.integers(0, 65535, (size, size), dtype=np.uint16))
    elif size > 8:
        img = Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).convert(mode)
    else:
        img = Image.new("RGB", (size, size), (level, 255 - level, level // 2)).convert(mode)
    buffer = io.BytesIO()
    img.save(buffer, fmt)
    return buffer.getvalue()


def image(
    folder: Path, name: str, fmt: str = "PNG", size: int = 8, mode: str = "RGB", level: int = 128
) -> str:
    return write_bytes(folder, name, image_bytes(fmt, size, mode, level))


def animated_gif(folder: Path, name: str) -> str:
    frames = [Image.new("P", (8, 8), i * 60) for i in range(3)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return write_bytes(folder, name, buffer.getvalue())


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares ``width`` x ``height`` grey pixels (a decompression
    bomb's header, without the bomb: the pixel data is a few zero rows)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    pixels = zlib.compress(b"\x00" * (width + 1) * 4)
    chunks = chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + chunks


def wav_bytes(
    seconds: float = 0.25, rate: int = 16000, channels: int = 1, freq: float = 440.0
) -> bytes:
    import soundfile as sf

    t = np.arange(max(1, int(seconds * rate))) / rate
    wave = (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    buffer = io.BytesIO()
    frames = np.repeat(wave[:, None], channels, axis=1)  # (T, C)
    sf.write(buffer, frames, rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def wav(
    folder: Path,
    name: str,
    seconds: float = 0.25,
    rate: int = 16000,
    channels: int = 1,
    freq: float = 440.0,
) -> str:
    return write_bytes(folder, name, wav_bytes(seconds, rate, channels, freq))


def long_quiet_wav(folder: Path, name: str, minutes: float = 10.0, rate: int = 8000) -> str:
    """A mostly silent 16-bit WAV (one short tone in the middle), written block by block."""
    import soundfile as sf

    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    total, block = int(minutes * 60 * rate), rate * 30
    with sf.SoundFile(str(path), "w", rate, 1, "PCM_16") as handle:
        for start in range(0, total, block):
            chunk = np.zeros(min(block, total - start), dtype=np.float32)
            if start <= total // 2 < start + block:
                chunk[: rate] = 0.3 * np.sin(2 * np.pi * 440 * np.arange(rate) / rate)
            handle.write(chunk)
    return name


def mp4(folder: Path, name: str, frames: int = 3, level: int = 40) -> str:
    """A 16x16 'mpeg4' clip of ``frames`` flat frames."""
    import av

    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        video = container.add_stream("mpeg4", rate=10)
        video.width, video.height, video.pix_fmt = 16, 16, "yuv420p"
        for i in range(frames):
            rgb = np.full((16, 16, 3), (level * (i + 1)) % 256, dtype=np.uint8)
            for packet in video.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        container.mux(video.encode())
    return name


# ------------------------------------------------------------------------------ tables
def labels(n: int = N_ROWS) -> dict[str, list[object]]:
    """A number and a two-class label, the columns every battery table shares."""
    return {"price": [float(i) for i in range(n)], "label": ["yes", "no"] * (n // 2)}


def image_table(folder: Path, n: int = N_ROWS) -> pd.DataFrame:
    photos = [image(folder, f"img/{i}.png", level=10 * i) for i in range(n)]
    return pd.DataFrame({"photo": photos, **labels(n)})


def audio_table(folder: Path, n: int = N_ROWS) -> pd.DataFrame:
    return pd.DataFrame(
        {"voice": [wav(folder, f"wav/{i}.wav", freq=200.0 + 40 * i) for i in range(n)], **labels(n)}
    )


def video_table(folder: Path, n: int = N_ROWS) -> pd.DataFrame:
    clip = mp4(folder, "mp4/clip.mp4")
    return pd.DataFrame({"clip": [clip] * n, **labels(n)})


def text_table(n: int = N_ROWS) -> pd.DataFrame:
    notes = [f"note number {i} is {'good' if i % 2 else 'bad'}" for i in range(n)]
    return pd.DataFrame({"note": notes, **labels(n)})


def embedding_table(n: int = N_ROWS) -> pd.DataFrame:
    vectors = [f"[{i / 10}, {1 - i / 10}, 0.5, {i % 3}]" for i in range(n)]
    return pd.DataFrame({"vec": vectors, **labels(n)})


# ------------------------------------------------------------------------------ checks
def fit(cli: Cli, data: Path, out: Path, *extra: str, fast: list[str] = FAST) -> Result:
    return cli("fit", data, "--target", "label", "--out", out, *fast, *extra)


def check_bad_cell(
    cli: Cli,
    tmp_path: Path,
    frame: pd.DataFrame,
    column: str,
    row: int,
    *needles: str,
    data_bytes: Callable[[bytes], bytes] | None = None,
    extra: tuple[str, ...] = (),
    fast: list[str] = FAST,
) -> Path:
    """Fit with ``raise``: exit 2 naming the file, row, column and ``needles``; with ``skip``:
    exit 0 and the row alone in rejected.csv. The data folder is left as it was.

    Returns the skip fit's model directory.
    """
    data = write_csv(frame, tmp_path / "data")
    if data_bytes is not None:
        data.write_bytes(data_bytes(data.read_bytes()))
    before = snapshot(tmp_path / "data")
    result = fit(cli, data, tmp_path / "raised", *extra, fast=fast)
    where = f"row {row}, column '{column}'"
    expect_user_error(result, str(data), where, *needles, "--on-bad-record skip")
    assert not (tmp_path / "raised" / "model.safetensors").exists()
    result = fit(cli, data, tmp_path / "skipped", "--on-bad-record", "skip", *extra, fast=fast)
    assert result.code == 0, result.err
    rejected = pd.read_csv(tmp_path / "skipped" / "rejected.csv")
    assert rejected[["row", "column"]].values.tolist() == [[row, column]]
    assert all(needle in rejected.loc[0, "reason"] for needle in needles), rejected.loc[0, "reason"]
    assert snapshot(tmp_path / "data") == before
    return tmp_path / "skipped"


def check_good_cells(
    cli: Cli, tmp_path: Path, frame: pd.DataFrame, *extra: str, fast: list[str] = FAST
) -> Result:
    """Fit exits 0 with nothing rejected, and the data folder is left as it was."""
    data = write_csv(frame, tmp_path / "data")
    before = snapshot(tmp_path / "data")
    result = fit(cli, data, tmp_path / "model", *extra, fast=fast)
    assert result.code == 0, result.err
    assert (tmp_path / "model" / "model.safetensors").exists()
    assert not (tmp_path / "model" / "rejected.csv").exists()
    assert snapshot(tmp_path / "data") == before
    return result
