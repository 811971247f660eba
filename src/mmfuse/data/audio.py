"""Audio decoding and features: file -> mono float32 wave -> normalised log-mel spectrogram.

Audio files are read with soundfile; a video's audio track (and MP3/Opus files soundfile
cannot open) is decoded with PyAV, imported inside the function that needs it. Audio may also
come in memory (a DataFrame cell): the bytes of an encoded audio file, the bytes of a video
(its audio track), a float array of samples at the target rate, or an ``(array, sample_rate)``
pair (see :func:`load_audio`).
"""

from __future__ import annotations

import io
from math import gcd
from pathlib import Path
from typing import Any, Union

import numpy as np
import soundfile as sf
import torch
from scipy.signal import resample_poly

from mmfuse.data.cells import describe_cell, error_text, is_wave_pair, sniff_media
from mmfuse.data.image import check_media_file
from mmfuse.data.video import VIDEO_EXTENSIONS, ffmpeg_reason, open_container
from mmfuse.errors import DecodeError

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".opus", ".aiff", ".aif")
# Audio kinds that libsndfile may lack support for; on failure they are retried with PyAV.
_AV_FALLBACK_EXTENSIONS = (".mp3", ".opus")


MAX_AUDIO_SECONDS = 600
"""Longest stretch of a clip that is decoded: a longer clip is cut to its first ten minutes,
so one long recording cannot exhaust memory (every feature looks at far less)."""
_BLOCK = 65536  # samples read at a time
_SOUNDFILE_MAGIC = (b"RIFF", b"fLaC", b"OggS", b"FORM")  # bytes soundfile reads (no PyAV retry)
AudioSource = Union[str, Path, bytes, np.ndarray, tuple[np.ndarray, int]]
"""A file path, the bytes of an encoded file, an array of samples or an (array, rate) pair."""


def _read_soundfile(source: Path | bytes, max_seconds: float) -> tuple[np.ndarray, int]:
    """Read with soundfile, mixing to mono block by block; returns ((T,) float32, sample rate)."""
    blocks: list[np.ndarray] = []
    name = describe_cell(source)
    opened = io.BytesIO(source) if isinstance(source, bytes) else str(source)
    try:
        with sf.SoundFile(opened) as handle:
            rate = int(handle.samplerate)
            budget = int(max_seconds * rate)
            for block in handle.blocks(_BLOCK, dtype="float32", always_2d=True):  # (n, C)
                blocks.append(block[:budget].mean(axis=1))
                budget -= len(blocks[-1])
                if budget <= 0:
                    break
    except (sf.SoundFileError, OSError, ValueError) as err:
        raise DecodeError(f"cannot decode audio {name}: {error_text(err)}") from err
    return _joined(blocks), rate


def _read_av(source: Path | bytes, max_seconds: float) -> tuple[np.ndarray, int]:
    """Decode the first audio stream with PyAV, mixed to mono; returns ((T,) float32, rate).

    Video bytes are opened with the demuxer their magic bytes name (``open_container``)."""
    import av

    chunks: list[np.ndarray] = []
    rate, budget = 0, None
    name = describe_cell(source)
    try:
        with open_container(source) as container:
            if not container.streams.audio:
                raise DecodeError(f"no audio stream in {name}")
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="fltp")  # keep rate and layout, float planar
            for frame in container.decode(stream):
                rate = frame.sample_rate
                budget = int(max_seconds * rate) if budget is None else budget
                mono = (f.to_ndarray().mean(axis=0) for f in resampler.resample(frame))  # (n,)
                chunks.extend(mono)
                budget -= frame.samples
                if budget <= 0:
                    break
            chunks.extend(f.to_ndarray().mean(axis=0) for f in resampler.resample(None))
    except (av.FFmpegError, OSError, ValueError) as err:
        raise DecodeError(f"cannot decode audio track of {name}: {ffmpeg_reason(err)}") from err
    if not chunks:
        raise DecodeError(f"audio track of {name} has no samples")
    return _joined(chunks)[: int(max_seconds * rate)], int(rate)


def _joined(chunks: list[np.ndarray]) -> np.ndarray:
    if not chunks:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate(chunks).astype(np.float32, copy=False)


def resample(wave: np.ndarray, orig_rate: int, target_rate: int) -> np.ndarray:
    """Polyphase resampling of a 1-D wave (``scipy.signal.resample_poly``, up/down by gcd)."""
    if orig_rate < 1 or target_rate < 1:
        raise ValueError(f"sample rates must be >= 1, got {orig_rate} and {target_rate}")
    if orig_rate == target_rate:
        return wave.astype(np.float32, copy=False)
    g = gcd(orig_rate, target_rate)
    return resample_poly(wave, target_rate // g, orig_rate // g).astype(np.float32)


def load_audio(
    source: AudioSource, sample_rate: int, max_seconds: float = MAX_AUDIO_SECONDS
) -> np.ndarray:
    """Decode an audio file, a video's audio track, or in-memory audio to a mono wave at
    ``sample_rate``.

    Channels are averaged to mono; the wave is resampled with :func:`resample`. Only the
    first ``max_seconds`` are decoded. The content decides the format (a WAV named ``.mp3``
    is read).

    Args:
        source: A file with one of :data:`AUDIO_EXTENSIONS` or a video container extension;
            the bytes of an audio or video file; a float array of samples taken to be at
            ``sample_rate`` ((T,), or 2-D with the shorter axis as channels); or an
            ``(array, rate)`` pair, resampled from ``rate``.
        sample_rate: Target sample rate in Hz.
        max_seconds: Longest stretch decoded, from the start.

    Returns:
        float32 array of shape (T,).

    Raises:
        DecodeError: Missing, empty or corrupt file or bytes, unsupported extension, no audio
            stream, zero samples or non-finite samples; an array that is not float, 1-D or
            2-D; a pair whose rate is below 1 Hz.
    """
    if sample_rate < 1:
        raise ValueError(f"sample_rate must be >= 1, got {sample_rate}")
    name = describe_cell(source)
    if isinstance(source, (bytes, np.ndarray)) or is_wave_pair(source):
        wave, rate = _read_in_memory(source, sample_rate, max_seconds)
    else:
        wave, rate = _read_file(Path(source), max_seconds)
        name = str(source)
    if wave.size == 0:
        raise DecodeError(f"audio {name} has zero samples")
    if not np.isfinite(wave).all():
        raise DecodeError(f"audio {name} contains non-finite samples (NaN or inf)")
    return resample(wave, rate, sample_rate)  # (T,)


def _read_file(path: Path, max_seconds: float) -> tuple[np.ndarray, int]:
    """An audio file or a video's audio track as ((T,) float32 mono, its sample rate)."""
    check_media_file(path, AUDIO_EXTENSIONS + VIDEO_EXTENSIONS, "audio")
    suffix = path.suffix.lower()
    if suffix in VIDEO_EXTENSIONS:
        return _read_av(path, max_seconds)
    try:
        return _read_soundfile(path, max_seconds)
    except DecodeError:
        if suffix not in _AV_FALLBACK_EXTENSIONS:
            raise
        return _read_av(path, max_seconds)


def _read_in_memory(source: Any, sample_rate: int, max_seconds: float) -> tuple[np.ndarray, int]:
    """Encoded bytes, an array at ``sample_rate`` or an (array, rate) pair as
    ((T,) float32 mono, its sample rate)."""
    if isinstance(source, bytes):
        if sniff_media(source[:16]) == "video":
            return _read_av(source, max_seconds)  # the audio track of a video, as from its file
        try:
            return _read_soundfile(source, max_seconds)
        except DecodeError:
            if source.startswith(_SOUNDFILE_MAGIC):
                raise
        try:
            return _read_av(source, max_seconds)  # MP3 and other formats libsndfile lacks
        except DecodeError:
            raise DecodeError(
                f"cannot decode audio {describe_cell(source)}: not an audio file of a known "
                "format (WAV, FLAC, OGG, AIFF, MP3, ...)"
            ) from None
    array, rate = source if isinstance(source, tuple) else (source, sample_rate)
    if rate < 1:
        raise DecodeError(f"the sample rate of {describe_cell(source)} must be at least 1 Hz")
    return _array_wave(array)[: int(max_seconds * rate)], int(rate)


def _array_wave(array: np.ndarray) -> np.ndarray:
    """Float samples (T,) or 2-D (the shorter axis is channels, averaged) as (T,) float32."""
    if array.dtype.kind != "f":
        raise DecodeError(
            f"an audio array holds float samples (about -1 to 1); got dtype {array.dtype} "
            "(divide 16-bit samples by 32768 and pass them as float32)"
        )
    if array.ndim == 2:
        array = array.mean(axis=int(np.argmin(array.shape)))
    elif array.ndim != 1:
        raise DecodeError(
            f"an audio array has shape (samples,) or (samples, channels); got {array.shape}"
        )
    return array.astype(np.float32, copy=False)


def fit_length(wave: np.ndarray, num_samples: int) -> np.ndarray:
    """Crop the centre of a 1-D wave, or right-pad it with zeros, to ``num_samples``."""
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    length = wave.shape[0]
    if length >= num_samples:
        start = (length - num_samples) // 2
        return wave[start : start + num_samples]
    return np.pad(wave, (0, num_samples - length))


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """HTK mel scale: ``2595 * log10(1 + hz / 700)``."""
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    """Inverse of :func:`hz_to_mel`: ``700 * (10 ** (mel / 2595) - 1)``."""
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(
    sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None
) -> np.ndarray:
    """Triangular mel filters on the HTK mel scale (as ``torchaudio`` with ``norm=None``).

    ``n_mels + 2`` points are spaced evenly in mel between ``fmin`` and ``fmax``; filter m
    rises linearly from point m to a peak of 1 at point m + 1 and falls to 0 at point m + 2,
    evaluated at the FFT bin frequencies ``k * sample_rate / n_fft``. Filters are not area
    normalised (no slaney norm), so each has peak height at most 1.

    Args:
        sample_rate: Sample rate in Hz.
        n_fft: FFT size; the filters cover the ``n_fft // 2 + 1`` one-sided bins.
        n_mels: Number of filters.
        fmin: Lowest frequency in Hz.
        fmax: Highest frequency in Hz; defaults to ``sample_rate / 2``.

    Returns:
        float32 array of shape (n_mels, n_fft // 2 + 1).
    """
    fmax = sample_rate / 2.0 if fmax is None else fmax
    if n_mels < 1 or n_fft < 2:
        raise ValueError(f"need n_mels >= 1 and n_fft >= 2, got {n_mels} and {n_fft}")
    if not 0.0 <= fmin < fmax <= sample_rate / 2.0:
        raise ValueError(
            f"need 0 <= fmin < fmax <= sample_rate / 2 = {sample_rate / 2}, "
            f"got fmin={fmin}, fmax={fmax}"
        )
    bin_hz = np.arange(n_fft // 2 + 1) * sample_rate / n_fft  # (F,)
    points = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))  # (M+2,)
    points[0], points[-1] = fmin, fmax  # exact edges despite the float round trip
    lower, centre, upper = points[:-2, None], points[1:-1, None], points[2:, None]  # (M, 1)
    rising = (bin_hz - lower) / (centre - lower)  # (M, F)
    falling = (upper - bin_hz) / (upper - centre)  # (M, F)
    return np.maximum(0.0, np.minimum(rising, falling)).astype(np.float32)


def _fit_frames(spec: np.ndarray, num_frames: int) -> np.ndarray:
    """Centre-crop or right-pad with zeros along the last axis to ``num_frames``."""
    total = spec.shape[1]
    if total >= num_frames:
        start = (total - num_frames) // 2
        return spec[:, start : start + num_frames]
    return np.pad(spec, ((0, 0), (0, num_frames - total)))


def log_mel_spectrogram(
    wave: np.ndarray,
    sample_rate: int,
    n_mels: int = 40,
    n_fft: int = 400,
    hop_length: int = 160,
    num_frames: int = 100,
) -> np.ndarray:
    """Per-utterance normalised log-mel spectrogram of fixed length.

    Steps: ``torch.stft`` (Hann window, ``center=True`` with zero padding so any length
    works) -> power -> :func:`mel_filterbank` -> ``log(x + 1e-6)`` -> subtract the mean
    and divide by (std + 1e-5), both over the whole spectrogram (population std) ->
    centre-crop or right-pad with zeros to ``num_frames``. With the defaults at 16 kHz
    that is a 25 ms window, a 10 ms hop and one second of audio.

    Args:
        wave: Mono wave, shape (T,).
        sample_rate: Sample rate of ``wave`` in Hz.
        n_mels: Number of mel bands.
        n_fft: FFT and window size in samples.
        hop_length: Samples between frames.
        num_frames: Number of output frames.

    Returns:
        float32 array of shape (n_mels, num_frames).
    """
    if wave.ndim != 1 or wave.shape[0] == 0:
        raise ValueError(f"expected a non-empty 1-D wave, got shape {wave.shape}")
    if num_frames < 1 or hop_length < 1:
        raise ValueError(
            f"need num_frames >= 1 and hop_length >= 1, got {num_frames} and {hop_length}"
        )
    signal = torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))
    stft = torch.stft(
        signal,
        n_fft=n_fft,
        hop_length=hop_length,
        window=torch.hann_window(n_fft),
        center=True,
        pad_mode="constant",
        return_complex=True,
    )  # (n_fft // 2 + 1, frames)
    power = stft.abs() ** 2
    filters = torch.from_numpy(mel_filterbank(sample_rate, n_fft, n_mels))
    log_mel = torch.log(filters @ power + 1e-6)  # (n_mels, frames)
    log_mel = (log_mel - log_mel.mean()) / (log_mel.std(correction=0) + 1e-5)
    return _fit_frames(log_mel.numpy(), num_frames).astype(np.float32)
