"""What each shot looks and sounds like, in one streaming pass over the picture and one over the
sound (PyAV): memory holds a few frames and a second of audio at a time, never the video.

Picture: ``frames_per_shot`` frames spread over each shot, through the frozen EfficientNet-Lite0
(where installed; its 1440-d features) or, without it, 8 x 8 colour thumbnails (192 values),
averaged over the shot's frames.

Sound (16 kHz mono): per second, the loudness (RMS in dB), 40 log-mel band energies (what kind
of sound) and the share of 30 ms frames that WebRTC VAD hears as speech; per shot, their mean
over the seconds it covers and its loudest second. A video without an audio track has none.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from mmfuse._progress import track
from mmfuse.errors import MmfuseError
from mmfuse.summarize.shots import Shots

RATE, N_MELS = 16_000, 40
AUDIO_NAMES = ["loudness_db", "loudest_db", "speech"] + [f"mel_{i}" for i in range(N_MELS)]


@dataclass(frozen=True)
class ShotFeatures:
    """Per shot: ``picture`` (S, Dp); ``sound`` (S, len(AUDIO_NAMES)) or None without audio;
    ``thumbnails`` (S, H, W, 3) uint8, the middle frame of each shot (for the contact sheet)."""

    picture: np.ndarray
    sound: np.ndarray | None
    thumbnails: np.ndarray
    picture_encoder: str


def shot_features(path: Path, shots: Shots, frames_per_shot: int = 3, thumbnail: int = 160,
                  batch_size: int = 16, verbose: bool = False) -> ShotFeatures:
    """The features of every shot of the video at ``path`` (see the module docstring), with a
    progress display over the seconds of picture read when ``verbose``."""
    encode, name = _picture_encoder()
    seconds = int(np.ceil(shots.duration))
    ticks = track(range(seconds), seconds, f"reading {path.name} ({name})", verbose and seconds > 0)
    read = 0

    def progress(t: float) -> None:
        nonlocal read
        while read < min(t, seconds):
            next(ticks, None)
            read += 1

    picture, thumbs = _picture(path, shots, frames_per_shot, thumbnail, encode, batch_size, progress)
    progress(seconds)
    for _ in ticks:  # closes the display
        pass
    return ShotFeatures(picture, _sound(path, shots), thumbs, name)


def _picture_encoder() -> tuple[Callable[[list], np.ndarray], str]:
    """(PIL images -> (N, D) features, its name): EfficientNet-Lite0 or colour thumbnails."""
    from mmfuse.pretrained import BACKBONES

    if not BACKBONES["efficientnet-lite0"].missing():
        from mmfuse.data.preparations import IMAGENET_MEAN, IMAGENET_STD, resize_center_crop
        from mmfuse.encoders.backbones import FrozenExtractor

        extractor = FrozenExtractor("efficientnet-lite0")

        def network(images: list) -> np.ndarray:
            batch = np.stack([(resize_center_crop(im, 224, 256) - IMAGENET_MEAN) / IMAGENET_STD for im in images])
            return extractor(batch.astype(np.float32))

        return network, "efficientnet-lite0"

    def thumbnails(images: list) -> np.ndarray:
        return np.stack([np.asarray(im.resize((8, 8)), dtype=np.float32).ravel() / 255.0 for im in images])

    return thumbnails, "colour-8x8"


def _picture(path: Path, shots: Shots, per_shot: int, thumb: int, encode: Callable[[list], np.ndarray],
             batch_size: int, progress: Callable[[float], None] | None) -> tuple[np.ndarray, np.ndarray]:
    import av

    fractions = (np.arange(per_shot) + 0.5) / per_shot
    targets = (shots.bounds[:, :1] + fractions[None, :] * shots.lengths[:, None]).ravel()  # shot-major
    owner = np.repeat(np.arange(len(shots)), per_shot)
    middle = np.full(len(shots), per_shot // 2)
    sums: np.ndarray | None = None
    counts = np.zeros(len(shots))
    thumbs = np.zeros((len(shots), thumb, thumb, 3), dtype=np.uint8)
    pending: list[tuple[int, object]] = []
    nxt = 0

    def flush() -> None:
        nonlocal sums
        if not pending:
            return
        feats = encode([im for _, im in pending])
        if sums is None:
            sums = np.zeros((len(shots), feats.shape[1]))
        for (k, _), f in zip(pending, feats):
            sums[owner[k]] += f
            counts[owner[k]] += 1
        pending.clear()

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise MmfuseError(f"{path}: no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            last = None
            for frame in container.decode(stream):
                t = float(frame.time) - shots.origin if frame.time is not None else 0.0
                last = frame
                while nxt < len(targets) and t + 0.5 / shots.fps >= targets[nxt]:
                    nxt = _take(frame, nxt, owner, middle, per_shot, thumbs, thumb, pending)
                if len(pending) >= batch_size:
                    flush()
                if progress is not None:
                    progress(t)
            while last is not None and nxt < len(targets):  # targets past the last frame's time
                nxt = _take(last, nxt, owner, middle, per_shot, thumbs, thumb, pending)
    except (av.FFmpegError, OSError) as err:
        raise MmfuseError(f"{path}: cannot decode the video ({err})") from None
    flush()
    if sums is None:
        raise MmfuseError(f"{path}: no decodable frames")
    return sums / np.maximum(counts, 1)[:, None], thumbs


def _take(frame: object, k: int, owner: np.ndarray, middle: np.ndarray, per_shot: int, thumbs: np.ndarray,
          size: int, pending: list) -> int:
    image = frame.to_image().convert("RGB")  # type: ignore[attr-defined]
    image.thumbnail((512, 512))  # the network takes 224 px: a 4K frame need not wait in memory
    pending.append((k, image))
    if k % per_shot == middle[owner[k]]:
        thumbs[owner[k]] = np.asarray(image.resize((size, size)))
    return k + 1


def _sound(path: Path, shots: Shots) -> np.ndarray | None:
    """(S, len(AUDIO_NAMES)) per-shot sound descriptors, or None without an audio track.
    Seconds are counted on the picture's clock: sound that starts after the first frame is
    preceded by silence, sound before it is dropped."""
    import av

    seconds = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                return None
            resampler = av.AudioResampler(format="flt", layout="mono", rate=RATE)
            buffer: np.ndarray | None = None
            for frame in container.decode(container.streams.audio[0]):
                for out in resampler.resample(frame):
                    samples = out.to_ndarray().ravel()
                    if buffer is None:  # place the first sample on the picture's clock
                        lead = int(round(((float(frame.time) if frame.time is not None else shots.origin)
                                          - shots.origin) * RATE))
                        buffer = np.zeros(max(lead, 0), dtype=np.float32)
                        samples = samples[max(-lead, 0):]
                    buffer = np.concatenate([buffer, samples])
                    while len(buffer) >= RATE:
                        seconds.append(_describe(buffer[:RATE]))
                        buffer = buffer[RATE:]
            if buffer is not None and len(buffer) >= RATE // 10:
                seconds.append(_describe(buffer))
    except (av.FFmpegError, OSError) as err:
        raise MmfuseError(f"{path}: cannot decode the audio track ({err})") from None
    if not seconds:
        return None
    return _per_shot(np.stack(seconds), shots)


def _per_shot(per_second: np.ndarray, shots: Shots) -> np.ndarray:
    """Per shot: each descriptor's mean over the seconds it covers (weighted by the overlap,
    from cumulative sums: no shots x seconds matrix) and its loudest second. Time past the end
    of the sound counts as silence."""
    silence = _describe(np.zeros(RATE, dtype=np.float32))
    total = len(per_second)
    cover = np.vstack([per_second, silence[None]]).astype(np.float64)  # one silent second past the end
    cumulative = np.vstack([np.zeros(cover.shape[1]), np.cumsum(cover, 0)])  # at t = 0 .. total + 1

    def integral(t: np.ndarray) -> np.ndarray:  # (S, D) integral of the descriptors over [0, t)
        inside = np.clip(t, 0, total)
        whole = np.floor(inside).astype(int)
        part = (inside - whole)[:, None]
        out = cumulative[whole] + part * cover[np.minimum(whole, total)]
        return out + np.clip(t - total, 0, None)[:, None] * silence[None]

    start, end = shots.bounds[:, 0], shots.bounds[:, 1]
    mean = (integral(end) - integral(start)) / np.maximum(end - start, 1e-9)[:, None]
    first = np.clip(np.floor(start).astype(int), 0, total)
    last = np.clip(np.ceil(end).astype(int), first + 1, total + 1)
    loud = cover[:, 0]
    loudest = np.array([loud[a:b].max() for a, b in zip(first, last)])
    return np.column_stack([mean[:, 0], loudest, mean[:, 1], mean[:, 2:]]).astype(np.float32)


def _describe(wave: np.ndarray) -> np.ndarray:
    """Loudness (dB), speech share and 40 log-mel energies of one second (or less) of sound."""
    rms = float(np.sqrt(np.mean(wave.astype(np.float64) ** 2)))
    loudness = 20 * np.log10(max(rms, 1e-5))
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(len(wave)), n=RATE)) ** 2 / len(wave)
    mels = np.log(_filterbank() @ spectrum + 1e-10)
    return np.concatenate([[loudness, _speech_share(wave)], mels]).astype(np.float32)


@lru_cache(maxsize=1)
def _filterbank() -> np.ndarray:
    """The mel filterbank of one second's spectrum (built once, used every second)."""
    from mmfuse.data.audio import mel_filterbank

    return mel_filterbank(RATE, RATE, N_MELS)


@lru_cache(maxsize=1)
def _vad() -> object | None:
    """WebRTC VAD (mode 2), or None without webrtcvad."""
    try:
        with warnings.catch_warnings():  # webrtcvad imports the deprecated pkg_resources
            warnings.simplefilter("ignore")
            import webrtcvad
    except ImportError:
        return None
    return webrtcvad.Vad(2)


def _speech_share(wave: np.ndarray) -> float:
    """Share of 30 ms frames WebRTC VAD hears as speech (0 without webrtcvad)."""
    vad = _vad()
    if vad is None:
        return 0.0
    step = RATE * 30 // 1000
    pcm = (np.clip(wave, -1, 1) * 32767).astype(np.int16)
    frames = [pcm[i : i + step].tobytes() for i in range(0, len(pcm) - step + 1, step)]
    return float(np.mean([vad.is_speech(f, RATE) for f in frames])) if frames else 0.0  # type: ignore[attr-defined]
