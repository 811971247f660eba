"""Battery, audio: broken, tiny, long, stereo and mislabelled sound files in an audio column.

The corrupt-file and odd-file cases also run through the pretrained voice encoder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from media_cases import (
    encoder_flags,
    audio_table,
    check_bad_cell,
    check_good_cells,
    long_quiet_wav,
    wav,
    wav_bytes,
    write_bytes,
)
from reliability_harness import FAST

from mmfuse.data.audio import load_audio

ROW = 5


@pytest.fixture(params=["scratch", "pretrained"])
def encoders(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The fit flags of one audio encoder path (pretrained: the voice encoder)."""
    return encoder_flags(request.param, "voice", monkeypatch)


def _bad_audio(
    cli, tmp_path: Path, name: str, content: bytes, *needles: str, fast: list[str] = FAST
) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "data"
    frame = audio_table(data)
    frame.loc[ROW, "voice"] = write_bytes(data, name, content)
    check_bad_cell(cli, tmp_path, frame, "voice", ROW, str(data / name), *needles, fast=fast)


BAD_AUDIO = {
    "truncated WAV header": ("wav/half.wav", wav_bytes()[:30], "cannot decode audio"),
    "zero-byte WAV": ("wav/zero.wav", b"", "audio file is empty (0 bytes)"),
    "text renamed .mp3": ("wav/notes.mp3", b"just some words\n" * 8, "cannot decode audio"),
    "header-only WAV": ("wav/empty.wav", wav_bytes()[:44], "has zero samples"),
}


@pytest.mark.parametrize("kind", list(BAD_AUDIO))
def test_bad_audio_is_a_bad_record(kind: str, cli, tmp_path: Path) -> None:
    name, content, needle = BAD_AUDIO[kind]
    _bad_audio(cli, tmp_path, name, content, needle)


def test_corrupt_wav_is_a_bad_record_on_every_path(
    cli, tmp_path: Path, encoders: list[str]
) -> None:
    content = b"RIFF\x24\x00\x00\x00WAVEgarbage" * 8
    _bad_audio(cli, tmp_path, "wav/bad.wav", content, "cannot decode audio", fast=encoders)


def _odd_audio(folder: Path) -> list[str]:
    return [
        wav(folder, "odd/one-sample.wav", seconds=1 / 16000),
        wav(folder, "odd/8k.wav", rate=8000),  # with the 16 kHz rest: mixed sample rates
        wav(folder, "odd/44k.wav", rate=44100),
        wav(folder, "odd/stereo.wav", channels=2),
        write_bytes(folder, "odd/wav-named.mp3", wav_bytes()),  # content decides
        wav(folder, "odd/silent.wav", freq=0.0),
        long_quiet_wav(folder, "odd/ten-minutes.wav"),
    ]


def test_odd_but_valid_audio_works(
    cli, tmp_path: Path, encoders: list[str], recwarn: pytest.WarningsRecorder
) -> None:
    data = tmp_path / "data"
    frame = audio_table(data)
    odd = _odd_audio(data)
    frame.loc[: len(odd) - 1, "voice"] = odd
    check_good_cells(cli, tmp_path, frame, fast=encoders)
    # a warning would reach the user's terminal (e.g. librosa's on the 1-sample clip)
    assert [f"{w.filename}: {w.message}" for w in recwarn] == []


def test_long_audio_is_read_whole_up_to_ten_minutes_and_cut_after(tmp_path: Path) -> None:
    name = long_quiet_wav(tmp_path, "long.wav", minutes=10.0, rate=8000)
    wave = load_audio(tmp_path / name, 16000)
    assert wave.dtype == np.float32 and wave.shape == (10 * 60 * 16000,)
    assert np.abs(wave).max() > 0.1  # the tone in the middle was kept
    assert load_audio(tmp_path / name, 16000, max_seconds=60).shape == (60 * 16000,)
    stereo = wav(tmp_path, "stereo.wav", seconds=2.0, rate=44100, channels=2)
    assert load_audio(tmp_path / stereo, 16000, max_seconds=1.5).shape == (24000,)
