"""Tests for mmfuse.data.audio: decoding, mono mix, resampling, mel filters, log-mel."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf

from mmfuse.data.audio import (
    AUDIO_EXTENSIONS,
    fit_length,
    hz_to_mel,
    load_audio,
    log_mel_spectrogram,
    mel_filterbank,
    mel_to_hz,
    resample,
)
from mmfuse.errors import DecodeError


def tone(freq: float, seconds: float, rate: int, amplitude: float = 0.5) -> np.ndarray:
    return (amplitude * np.sin(2 * np.pi * freq * np.arange(int(seconds * rate)) / rate)).astype(
        np.float32
    )


def write_aac(path: Path, wave: np.ndarray, rate: int, container_format: str | None = None) -> Path:
    """Write a mono AAC stream (in an MP4, or e.g. raw ADTS with container_format='adts')."""
    with av.open(str(path), "w", format=container_format) as container:
        stream = container.add_stream("aac", rate=rate)
        for start in range(0, wave.size, 1024):
            frame = av.AudioFrame.from_ndarray(
                wave[None, start : start + 1024], format="fltp", layout="mono"
            )
            frame.sample_rate, frame.pts = rate, start
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def test_wav_stereo_is_mixed_to_mono_exactly(tmp_path: Path) -> None:
    left = np.array([0.5, -0.25, 0.0, 1.0], dtype=np.float32)
    right = np.array([0.25, 0.25, -0.5, 0.0], dtype=np.float32)
    path = tmp_path / "s.wav"
    sf.write(path, np.stack([left, right], axis=1), 8000, subtype="FLOAT")
    out = load_audio(path, 8000)
    assert out.dtype == np.float32 and out.shape == (4,)
    np.testing.assert_array_equal(out, [0.375, 0.0, -0.25, 0.5])


def test_flac_and_ogg_decode_and_resample(tmp_path: Path) -> None:
    wave = tone(440, 0.5, 16000)
    sf.write(tmp_path / "a.flac", wave, 16000)
    sf.write(tmp_path / "a.ogg", wave, 16000, format="OGG", subtype="VORBIS")
    flac = load_audio(tmp_path / "a.flac", 8000)
    assert flac.shape == (4000,)
    np.testing.assert_allclose(flac, wave[::2], atol=0.02)  # 440 Hz survives 2x decimation
    ogg = load_audio(tmp_path / "a.ogg", 16000)
    assert abs(ogg.size - 8000) <= 64
    assert 0.3 < np.abs(ogg).max() < 0.7


def test_resample_uses_reduced_ratio() -> None:
    wave = tone(100, 1.0, 44100)
    out = resample(wave, 44100, 16000)  # up 160, down 441
    assert out.dtype == np.float32 and out.shape == (16000,)
    np.testing.assert_allclose(out[100:-100], tone(100, 1.0, 16000)[100:-100], atol=1e-3)
    np.testing.assert_array_equal(resample(wave, 44100, 44100), wave)


def test_mp4_audio_track_via_pyav(tmp_path: Path) -> None:
    path = write_aac(tmp_path / "v.mp4", tone(440, 0.5, 16000), 16000)
    out = load_audio(path, 8000)
    assert out.dtype == np.float32 and out.ndim == 1
    assert 3900 <= out.size <= 4300  # 0.5 s plus AAC priming
    assert 0.3 < np.abs(out).max() < 0.7


def test_mp3_falls_back_to_pyav_when_soundfile_fails(tmp_path: Path) -> None:
    # AAC bytes in a file named .mp3: libsndfile refuses it, PyAV probes the content.
    path = write_aac(tmp_path / "odd.mp3", tone(440, 0.25, 16000), 16000, "adts")
    with pytest.raises(sf.LibsndfileError):
        sf.read(path)
    out = load_audio(path, 16000)
    assert out.size >= 4000 and 0.3 < np.abs(out).max() < 0.7


def test_video_without_audio_track(tmp_path: Path) -> None:
    path = tmp_path / "silent.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=5)
        stream.width, stream.height, stream.pix_fmt = 16, 16, "yuv420p"
        rgb = np.zeros((16, 16, 3), np.uint8)
        container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(stream.encode())
    with pytest.raises(DecodeError, match="no audio stream in .*silent.mp4"):
        load_audio(path, 16000)


def test_decode_errors(tmp_path: Path) -> None:
    with pytest.raises(DecodeError, match="not found"):
        load_audio(tmp_path / "none.wav", 16000)
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(DecodeError, match="empty"):
        load_audio(tmp_path / "empty.wav", 16000)
    (tmp_path / "bad.flac").write_bytes(b"not audio" * 50)
    with pytest.raises(DecodeError, match="cannot decode audio .*bad.flac"):
        load_audio(tmp_path / "bad.flac", 16000)
    (tmp_path / "x.png").write_bytes(b"png")
    with pytest.raises(DecodeError, match=r"unsupported audio extension '\.png'"):
        load_audio(tmp_path / "x.png", 16000)


def test_zero_samples_and_non_finite(tmp_path: Path) -> None:
    sf.write(tmp_path / "zero.wav", np.zeros(0, np.float32), 8000)
    with pytest.raises(DecodeError, match="zero samples"):
        load_audio(tmp_path / "zero.wav", 8000)
    sf.write(tmp_path / "nan.wav", np.array([0.0, np.nan], np.float32), 8000, subtype="FLOAT")
    with pytest.raises(DecodeError, match="non-finite"):
        load_audio(tmp_path / "nan.wav", 8000)


def test_fit_length_crops_centre_and_pads_right() -> None:
    wave = np.arange(6, dtype=np.float32)
    np.testing.assert_array_equal(fit_length(wave, 4), [1, 2, 3, 4])
    np.testing.assert_array_equal(fit_length(wave, 8), [0, 1, 2, 3, 4, 5, 0, 0])


def test_mel_scale_is_htk() -> None:
    np.testing.assert_allclose(hz_to_mel(700.0), 2595 * np.log10(2))
    np.testing.assert_allclose(mel_to_hz(hz_to_mel(np.array([0.0, 440.0, 8000.0]))), [0, 440, 8000])


def test_mel_filterbank_single_triangle_exact() -> None:
    # sr 1000, n_fft 10: bins at 0, 100, ..., 500 Hz; one filter from 0 to 500 Hz.
    fb = mel_filterbank(1000, 10, 1)
    centre = mel_to_hz(hz_to_mel(500.0) / 2)
    bins = np.arange(6) * 100.0
    expected = np.where(bins <= centre, bins / centre, (500.0 - bins) / (500.0 - centre))
    assert fb.shape == (1, 6) and fb.dtype == np.float32
    np.testing.assert_allclose(fb[0], expected, rtol=1e-6)


def test_mel_filterbank_shape_and_coverage() -> None:
    fb = mel_filterbank(16000, 400, 40)
    assert fb.shape == (40, 201)
    assert fb.min() >= 0.0 and fb.max() <= 1.0
    assert (fb.max(axis=1) > 0.5).all()  # no empty filters
    peaks = fb.argmax(axis=1)
    assert (np.diff(peaks) >= 0).all()  # ordered low to high
    assert (fb[:, 0] == 0).all() and (fb[:, -1] == 0).all()  # 0 Hz and Nyquist are edges
    with pytest.raises(ValueError, match="fmax=9000"):
        mel_filterbank(16000, 400, 40, fmax=9000)


def test_log_mel_shape_normalisation_and_peak_band() -> None:
    wave = tone(1000, 1.0, 16000)
    spec = log_mel_spectrogram(wave, 16000)
    assert spec.shape == (40, 100) and spec.dtype == np.float32
    # 101 frames cropped to 100, so mean/std stay close to the full-spectrogram 0/1.
    assert abs(spec.mean()) < 0.05 and abs(spec.std() - 1.0) < 0.05
    centres = mel_to_hz(np.linspace(0, hz_to_mel(8000), 42))[1:-1]
    assert spec.mean(axis=1).argmax() == np.abs(centres - 1000).argmin()


def test_log_mel_centre_crop_matches_full() -> None:
    wave = np.random.default_rng(0).standard_normal(1600).astype(np.float32)  # 11 frames
    full = log_mel_spectrogram(wave, 16000, n_mels=8, num_frames=11)
    np.testing.assert_allclose(full.mean(), 0.0, atol=1e-5)
    np.testing.assert_allclose(full.std(), 1.0, atol=1e-3)
    cropped = log_mel_spectrogram(wave, 16000, n_mels=8, num_frames=5)
    np.testing.assert_array_equal(cropped, full[:, 3:8])
    padded = log_mel_spectrogram(wave, 16000, n_mels=8, num_frames=15)
    np.testing.assert_array_equal(padded[:, :11], full)
    np.testing.assert_array_equal(padded[:, 11:], 0.0)


def test_log_mel_short_and_silent_waves() -> None:
    short = log_mel_spectrogram(np.ones(10, np.float32), 16000, n_mels=4, num_frames=3)
    assert short.shape == (4, 3) and np.isfinite(short).all()
    silent = log_mel_spectrogram(np.zeros(3200, np.float32), 16000)
    np.testing.assert_array_equal(silent, 0.0)
    with pytest.raises(ValueError, match=r"shape \(0,\)"):
        log_mel_spectrogram(np.zeros(0, np.float32), 16000)


def test_extensions() -> None:
    assert ".wav" in AUDIO_EXTENSIONS and ".mp4" not in AUDIO_EXTENSIONS
