"""Battery, images and video: broken, odd and hostile files in a media column.

A bad file is a bad record: ``raise`` exits 2 naming the data file, row, column and the media
file; ``skip`` trains without it and lists it in rejected.csv. Odd but valid files just work.
The corrupt-file, bomb and odd-file cases also run through the pretrained image encoder
(EfficientNet-Lite0), which reads files through the same code.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
from media_cases import (
    PRETRAINED_FAST,
    encoder_flags,
    animated_gif,
    check_bad_cell,
    check_good_cells,
    image,
    image_bytes,
    image_table,
    mp4,
    png_declaring,
    video_table,
    write_bytes,
)
from reliability_harness import FAST, expect_user_error, snapshot

from mmfuse.pretrained import BACKBONES

ROW = 3
BOMB = ("too large to decode safely (a possible decompression bomb)", "Shrink the image")


@pytest.fixture(params=["scratch", "pretrained"])
def encoders(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The fit flags of one image encoder path (pretrained: EfficientNet-Lite0)."""
    return encoder_flags(request.param, "efficientnet-lite0", monkeypatch)


def _bad_image(
    cli, tmp_path: Path, name: str, content: bytes | None, *needles: str, fast: list[str] = FAST
) -> None:  # type: ignore[no-untyped-def]
    """Row ROW's photo is ``name`` (written with ``content`` unless None)."""
    data = tmp_path / "data"
    frame = image_table(data)
    if content is not None:
        write_bytes(data, name, content)
    frame.loc[ROW, "photo"] = name
    check_bad_cell(cli, tmp_path, frame, "photo", ROW, *needles, fast=fast)


BAD_IMAGES = {
    "truncated PNG": ("img/half.png", image_bytes("PNG", 64)[:400], "cannot decode image"),
    "truncated JPEG": ("img/half.jpg", image_bytes("JPEG", 64)[:600], "cannot decode image"),
    "zero-byte image": ("img/zero.png", b"", "image file is empty (0 bytes)"),
    "text renamed .png": ("img/notes.png", b"just some words\n" * 4, "cannot decode image"),
    "missing image file": ("img/gone.png", None, "file not found", "--missing-files missing"),
}


@pytest.mark.parametrize("kind", list(BAD_IMAGES))
def test_bad_image_is_a_bad_record(kind: str, cli, tmp_path: Path) -> None:
    name, content, *needles = BAD_IMAGES[kind]
    _bad_image(cli, tmp_path, name, content, str(tmp_path / "data" / name), *needles)


def test_corrupt_image_is_a_bad_record_on_every_path(
    cli, tmp_path: Path, encoders: list[str]
) -> None:
    name, content = "img/bad.png", b"\x89PNG\r\n\x1a\n" + b"garbage" * 20
    where = str(tmp_path / "data" / name)
    _bad_image(cli, tmp_path, name, content, where, "cannot decode image", fast=encoders)


def test_url_is_refused_without_network_access(cli, tmp_path: Path) -> None:
    url = "http://example.invalid/cat.png"  # .invalid never resolves: no request could succeed
    _bad_image(cli, tmp_path, url, None, url, "reads local files only", "download")


def test_folder_instead_of_an_image(cli, tmp_path: Path) -> None:
    folder = tmp_path / "data" / "img" / "album.png"
    folder.mkdir(parents=True)
    _bad_image(cli, tmp_path, "img/album.png", None, f"{folder} is a folder, not an image file")


def test_non_utf8_file_names(cli, tmp_path: Path) -> None:
    # Bytes that are not UTF-8 in a path cell name a file by its raw bytes (as Linux stores
    # them): an existing one is read; a missing one is reported with the bytes as \xNN.
    data = tmp_path / "data"
    frame = image_table(data)
    (data / "img").joinpath(os.fsdecode(b"th\xe9.png")).write_bytes(image_bytes("PNG"))
    frame.loc[ROW - 1, "photo"], frame.loc[ROW, "photo"] = "img/EXISTS.png", "img/MISSING.png"

    def latin1(raw: bytes) -> bytes:
        return raw.replace(b"EXISTS", b"th\xe9").replace(b"MISSING", b"caf\xe9")

    reason = f"file not found: {data}/img/caf\\xe9.png"
    check_bad_cell(cli, tmp_path, frame, "photo", ROW, reason, data_bytes=latin1)


@pytest.mark.parametrize("side", [30000, 10000], ids=["bomb-error", "bomb-warning"])
def test_decompression_bomb_is_a_bad_record(side: int, cli, tmp_path: Path) -> None:
    # 30000^2 pixels trips Pillow's DecompressionBombError, 10000^2 only its warning (Pillow
    # would then decode it): both are refused from the header, before any pixel is decoded.
    content = png_declaring(side, side)
    where = str(tmp_path / "data" / "img/bomb.png")
    _bad_image(cli, tmp_path, "img/bomb.png", content, where, *BOMB, f"{side * side} pixels")


def test_pretrained_image_encoder_refuses_a_bomb(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if BACKBONES["efficientnet-lite0"].missing():
        pytest.skip("efficientnet-lite0 is not installed")
    monkeypatch.setenv("MMFUSE_PRETRAINED", "1")
    content = png_declaring(10000, 10000)
    _bad_image(cli, tmp_path, "img/bomb.png", content, *BOMB, fast=PRETRAINED_FAST)


def _odd_images(folder: Path) -> list[str]:
    return [
        write_bytes(folder, "odd/png-named.jpg", image_bytes("PNG")),  # content decides
        image(folder, "odd/one-pixel.png", size=1),
        image(folder, "odd/grey.png", mode="L"),
        image(folder, "odd/alpha.png", mode="RGBA"),
        image(folder, "odd/deep.png", size=16, mode="I;16"),
        image(folder, "odd/palette.png", mode="P"),
        image(folder, "odd/cmyk.jpg", fmt="JPEG", mode="CMYK"),
        animated_gif(folder, "odd/animated.gif"),  # its first frame
        "../data/img/5.png",  # a path that climbs out and back in: fine as long as it exists
    ]


def test_odd_but_valid_images_work(cli, tmp_path: Path, encoders: list[str]) -> None:
    data = tmp_path / "data"
    frame = image_table(data)
    odd = _odd_images(data)
    frame.loc[: len(odd) - 1, "photo"] = odd
    check_good_cells(cli, tmp_path, frame, fast=encoders)


BAD_VIDEOS = {
    "corrupt MP4": ("mp4/bad.mp4", b"\x00\x00\x00\x18ftypmp42" + b"junk" * 40, "cannot decode"),
    "zero-byte MP4": ("mp4/zero.mp4", b"", "video file is empty (0 bytes)"),
    "text renamed .mp4": ("mp4/notes.mp4", b"just some words\n" * 8, "cannot decode video"),
}


@pytest.mark.parametrize("kind", list(BAD_VIDEOS))
def test_bad_video_is_a_bad_record(kind: str, cli, tmp_path: Path) -> None:
    name, content, needle = BAD_VIDEOS[kind]
    data = tmp_path / "data"
    frame = video_table(data)
    frame.loc[ROW, "clip"] = write_bytes(data, name, content)
    check_bad_cell(cli, tmp_path, frame, "clip", ROW, str(data / name), needle)


def test_still_image_renamed_mp4_is_a_one_frame_video(cli, tmp_path: Path) -> None:
    # FFmpeg reads a PNG as a one-frame stream: the content decides, as for images.
    data = tmp_path / "data"
    frame = video_table(data)
    frame.loc[ROW, "clip"] = write_bytes(data, "mp4/still.mp4", image_bytes("PNG", 16))
    frame.loc[ROW + 1, "clip"] = mp4(data, "mp4/other.mp4", level=90)
    check_good_cells(cli, tmp_path, frame)


def test_predict_and_evaluate_report_a_corrupt_image(
    cli, trained: tuple[Path, Path], tmp_path: Path
) -> None:
    model, source = trained
    frame = pd.read_csv(source)
    data = tmp_path / "data"
    frame["photo"] = [image(data, f"img/{i}.png", level=10 * i) for i in range(len(frame))]
    frame.loc[ROW, "photo"] = write_bytes(data, "img/bad.png", b"not a picture")
    path = data / "new.csv"
    frame.to_csv(path, index=False)
    before = snapshot(data)
    where, reason = f"row {ROW}, column 'photo'", f"cannot decode image {data / 'img/bad.png'}"
    out = tmp_path / "predictions.csv"
    expect_user_error(cli("predict", model, path, "--out", out), str(path), where, reason)
    assert not out.exists()
    result = cli("predict", model, path, "--out", out, "--on-bad-record", "skip")
    assert result.code == 0, result.err
    assert "1 bad value(s), see the error column" in result.out
    predictions = pd.read_csv(out, keep_default_na=False)
    assert len(predictions) == len(frame)
    assert predictions.loc[ROW, "prediction"] == ""
    assert predictions.loc[ROW, "error"].startswith(f"column 'photo': {reason}")
    assert (predictions.drop(index=ROW)["error"] == "").all()
    expect_user_error(cli("evaluate", model, path), str(path), where, reason)
    result = cli("evaluate", model, path, "--on-bad-record", "skip")
    assert result.code == 0, result.err
    assert f"({len(frame) - 1} of {len(frame)} records)" in result.out  # says what it scored
    assert snapshot(data) == before
