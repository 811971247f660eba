"""Seeded corruptions of decoded values, each with a severity in [0, 1] (0 = exact identity).

Every function has the form ``fn(value, severity, rng, **context) -> value`` and works on the
decoded values that ``Preprocessor.transform(..., corrupt=...)`` hands to its hook: images
(..., 3, H, W) float in [0, 1] (so the image corruptions also apply to every frame of a video
(N, 3, H, W)), audio waveforms (T,), text strings, embedding vectors and the whole
standardised tabular matrix (N, K). They never modify their input, and at severity 0 they
return it unchanged (the very same object).

Each function draws the same random numbers whatever the severity and thresholds them by the
severity, so with one seed the damage at a higher severity contains the damage at a lower
one (the words dropped at 0.25 are also dropped at 0.5): curves over severity are smoother
than with independent draws.

Missing modalities are a separate case: :func:`drop_modality` works on ``Encoded`` records
(it clears the presence mask), since a decoded value cannot say "absent".
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from mmfuse.data.preprocess import Encoded
from mmfuse.errors import MmfuseError

CorruptionFn = Callable[..., Any]
"""``(value, severity, rng, **context) -> value``; see the module docstring."""

DROP = "drop"
"""The corruption that removes a whole modality from a fraction of records."""

BLUR_SIGMA = 0.1
"""Gaussian blur sigma at severity 1, as a fraction of the image side (3.2 px at 32 px)."""
NOISE_SIGMA = 0.5
"""Pixel noise sigma at severity 1, in [0, 1] pixel units."""
OCCLUSION_GREY = 0.5
SNR_CLEAN_DB, SNR_WORST_DB = 40.0, -5.0
"""Audio noise: signal-to-noise ratio at severity -> 0 and at severity 1 (linear in between)."""
DROPOUT_CHUNK_SECONDS = 0.05
TABULAR_NOISE_SIGMA = 2.0
"""Tabular noise sigma at severity 1, in standard deviations of each numeric column."""


def check_severity(severity: float) -> float:
    """``severity`` as a float, or ValueError when it is outside [0, 1]."""
    s = float(severity)
    if not 0.0 <= s <= 1.0:
        raise ValueError(f"severity must be in [0, 1], got {severity!r}")
    return s


# -------------------------------------------------------------------- images
def gaussian_noise(x: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    """Adds N(0, (0.5 s)^2) to every pixel of (..., 3, H, W) values in [0, 1], then clips."""
    s = check_severity(severity)
    if s == 0.0:
        return x
    z = rng.standard_normal(x.shape, dtype=np.float32)
    return np.clip(x + NOISE_SIGMA * s * z, 0.0, 1.0).astype(x.dtype, copy=False)


def blur(x: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian blur of every (H, W) plane with sigma = 0.1 * s * max(H, W) pixels."""
    from scipy.ndimage import gaussian_filter

    s = check_severity(severity)
    if s == 0.0:
        return x
    sigma = BLUR_SIGMA * s * max(x.shape[-2:])
    sigmas = (0.0,) * (x.ndim - 2) + (sigma, sigma)
    return gaussian_filter(x, sigma=sigmas, mode="reflect").astype(x.dtype, copy=False)


def occlusion(x: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    """Sets a random rectangle covering a fraction s of each (H, W) plane to grey 0.5.

    The rectangle has the image's aspect ratio (a square for square images), sides
    ``sqrt(s)`` times the image's, and the same place in every frame of a video.
    """
    s = check_severity(severity)
    u = rng.random(2)
    if s == 0.0:
        return x
    height, width = x.shape[-2:]
    h, w = round(math.sqrt(s) * height), round(math.sqrt(s) * width)
    top, left = int(u[0] * (height - h + 1)), int(u[1] * (width - w + 1))
    out = x.copy()
    out[..., top : top + h, left : left + w] = OCCLUSION_GREY
    return out


# --------------------------------------------------------------------- video
def frame_drop(x: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    """Replaces round(s * N) random frames of (N, 3, H, W) by the previous kept frame.

    A dropped frame with no kept frame before it becomes black (0).
    """
    s = check_severity(severity)
    order = rng.permutation(len(x))
    if s == 0.0:
        return x
    dropped = np.zeros(len(x), dtype=bool)
    dropped[order[: round(s * len(x))]] = True
    out = x.copy()
    last: np.ndarray | None = None
    for i in range(len(x)):
        if dropped[i]:
            out[i] = 0.0 if last is None else last
        else:
            last = x[i]
    return out


# --------------------------------------------------------------------- audio
def audio_noise(x: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    """Adds white noise at an SNR of 40 - 45 s dB (40 dB as s -> 0, -5 dB at s = 1).

    The noise is scaled so that the SNR of the returned waveform is exact; a silent
    waveform has no defined SNR and is returned unchanged.
    """
    s = check_severity(severity)
    z = rng.standard_normal(x.shape)
    signal_power = float(np.mean(np.square(x, dtype=np.float64))) if x.size else 0.0
    if s == 0.0 or signal_power == 0.0:
        return x
    snr_db = SNR_CLEAN_DB - (SNR_CLEAN_DB - SNR_WORST_DB) * s
    z *= math.sqrt(signal_power / 10 ** (snr_db / 10) / float(np.mean(z**2)))
    return (x + z).astype(x.dtype, copy=False)


def audio_dropout(
    x: np.ndarray, severity: float, rng: np.random.Generator, sample_rate: int = 16000
) -> np.ndarray:
    """Zeroes round(s * C) of the C chunks of 50 ms of a waveform (T,), chosen at random."""
    s = check_severity(severity)
    chunk = max(1, round(DROPOUT_CHUNK_SECONDS * sample_rate))
    num_chunks = -(-len(x) // chunk)
    order = rng.permutation(num_chunks)
    if s == 0.0:
        return x
    out = x.copy()
    for c in order[: round(s * num_chunks)]:
        out[c * chunk : (c + 1) * chunk] = 0.0
    return out


# ---------------------------------------------------------------------- text
def word_drop(text: str, severity: float, rng: np.random.Generator) -> str:
    """Drops each whitespace-separated word with probability s (s = 1 gives "")."""
    s = check_severity(severity)
    words = text.split()
    u = rng.random(len(words))
    if s == 0.0:
        return text
    return " ".join(w for w, keep in zip(words, u >= s) if keep)


def typos(text: str, severity: float, rng: np.random.Generator) -> str:
    """With probability s per word, swaps two adjacent characters, deletes or inserts one.

    Words of one character get an inserted letter instead of a swap or a deletion.
    """
    s = check_severity(severity)
    words = text.split()
    n = len(words)
    hit, ops, where = rng.random(n), rng.integers(0, 3, n), rng.random(n)
    letters = rng.integers(0, 26, n)
    if s == 0.0:
        return text
    out = []
    for k, word in enumerate(words):
        if hit[k] < s:
            word = _typo(word, int(ops[k]), float(where[k]), chr(ord("a") + int(letters[k])))
        out.append(word)
    return " ".join(out)


def _typo(word: str, op: int, where: float, letter: str) -> str:
    if op == 0 and len(word) >= 2:  # swap characters i and i + 1
        i = int(where * (len(word) - 1))
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if op == 1 and len(word) >= 2:  # delete character i
        i = int(where * len(word))
        return word[:i] + word[i + 1 :]
    i = int(where * (len(word) + 1))  # insert a letter before position i
    return word[:i] + letter + word[i:]


# ----------------------------------------------------------------- embedding
def embedding_noise(x: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    """Adds Gaussian noise whose standard deviation is s times the vector's RMS value."""
    s = check_severity(severity)
    z = rng.standard_normal(x.shape)
    if s == 0.0:
        return x
    rms = math.sqrt(float(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0
    return (x + s * rms * z).astype(x.dtype, copy=False)


# ------------------------------------------------------------------- tabular
def tabular_noise(
    x: np.ndarray, severity: float, rng: np.random.Generator, num_numeric: int | None = None
) -> np.ndarray:
    """Adds N(0, (2 s)^2) to the standardised numeric columns of (N, K); codes are kept.

    Args:
        num_numeric: How many leading columns are numeric (None: all of them).
    """
    s = check_severity(severity)
    k = x.shape[1] if num_numeric is None else num_numeric
    z = rng.standard_normal((x.shape[0], k))
    if s == 0.0:
        return x
    out = x.copy()
    out[:, :k] += (TABULAR_NOISE_SIGMA * s * z).astype(x.dtype)
    return out


def tabular_missing(
    x: np.ndarray,
    severity: float,
    rng: np.random.Generator,
    num_numeric: int | None = None,
    fill: np.ndarray | None = None,
) -> np.ndarray:
    """Makes each cell of (N, K) missing with probability s.

    A missing numeric cell gets the value the preprocessor gives an empty cell (``fill``,
    per numeric column; default 0, the column mean after standardisation); a missing
    categorical cell gets code 0 ("missing").

    Args:
        num_numeric: How many leading columns are numeric (None: all of them).
        fill: (num_numeric,) standardised values of an empty numeric cell.
    """
    s = check_severity(severity)
    k = x.shape[1] if num_numeric is None else num_numeric
    u = rng.random(x.shape)
    if s == 0.0:
        return x
    values = np.zeros(k, dtype=x.dtype) if fill is None else np.asarray(fill, dtype=x.dtype)
    if values.shape != (k,):
        raise ValueError(f"fill has shape {values.shape}; expected ({k},)")
    out = x.copy()
    gone = u < s
    out[:, :k] = np.where(gone[:, :k], values, out[:, :k])
    out[:, k:][gone[:, k:]] = 0.0
    return out


_IMAGE = {"gaussian_noise": gaussian_noise, "blur": blur, "occlusion": occlusion}

CORRUPTIONS: dict[str, dict[str, CorruptionFn]] = {
    "image": dict(_IMAGE),
    "video": {"frame_drop": frame_drop, **_IMAGE},
    "text": {"word_drop": word_drop, "typos": typos},
    "audio": {"noise": audio_noise, "dropout": audio_dropout},
    "tabular": {"noise": tabular_noise, "missing": tabular_missing},
    "embedding": {"noise": embedding_noise},
}
"""Modality kind -> corruption name -> function (``drop`` is apart: :func:`drop_modality`)."""


def list_corruptions(kind: str) -> list[str]:
    """Corruption names for a modality kind, ``drop`` last."""
    return [*get_kind(kind), DROP]


def get_kind(kind: str) -> dict[str, CorruptionFn]:
    """The corruptions of one modality kind; unknown kinds raise listing the valid ones."""
    if kind not in CORRUPTIONS:
        choices = ", ".join(CORRUPTIONS)
        raise MmfuseError(f"unknown modality kind {kind!r}; choose one of: {choices}")
    return CORRUPTIONS[kind]


def drop_modality(
    enc: Encoded, modality: str, severity: float, rng: np.random.Generator
) -> Encoded:
    """The records with ``modality`` missing in round(s * N) random ones (mask False, zeros).

    The other modalities, rows and targets are shared with ``enc``, not copied.
    """
    s = check_severity(severity)
    if modality not in enc.inputs:
        raise MmfuseError(f"unknown modality {modality!r}; known: {', '.join(enc.inputs)}")
    gone = rng.permutation(len(enc))[: round(s * len(enc))]
    x, present = enc.inputs[modality].copy(), enc.mask[modality].copy()
    x[gone], present[gone] = 0, False
    return Encoded(
        {**enc.inputs, modality: x},
        {**enc.mask, modality: present},
        enc.rows,
        enc.targets,
        list(enc.rejected),
    )
