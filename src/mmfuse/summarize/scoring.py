"""Unsupervised importance of each shot from its fused picture + sound features.

* **Distinctiveness**: how unlike the rest of the video a shot is, ``1 - sum_t w_t cos(e_s, e_t)``
  over the other shots ``t`` weighted by their share of the duration, on the fused embedding
  ``e = [picture / |picture|, sound / |sound|] / sqrt(2)`` (each part standardised over the
  video's shots first). What most of the video repeats (the uneventful stretches) is known
  after one shot of it; a moment unlike the rest carries the news.
* **Salient sound**: the shot's loudness above the video's typical (median) level, in units of
  its spread (median absolute deviation), squashed to [0, 1), plus the share of speech.
* **Diversity**: shots are visited from the highest score down; one nearly the same as a shot
  already visited (cosine over ``redundancy``) keeps only the part of its score above that.

``importance = (distinctiveness + salience) / 2``, diversity applied, scaled to [0, 1] per video.
``mode`` "picture" or "sound" uses one half of the embedding (and, for "picture", no salience):
the ablations of ``benchmarks/summarize.py``.
"""

from __future__ import annotations

import numpy as np

from mmfuse.errors import MmfuseError
from mmfuse.summarize.features import ShotFeatures

MODES = ("fused", "picture", "sound")


def importance(features: ShotFeatures, lengths: np.ndarray, mode: str = "fused", redundancy: float = 0.9) -> np.ndarray:
    """(S,) importance of each shot in [0, 1] (see the module docstring)."""
    if mode not in MODES:
        raise MmfuseError(f"unknown scoring {mode!r}; choose one of: {', '.join(MODES)}")
    sound = features.sound
    if mode == "sound" and sound is None:
        raise MmfuseError("scoring by sound needs an audio track; this video has none")
    embedding = shot_embedding(features, mode)
    score = distinctiveness(embedding, lengths)
    if mode != "picture" and sound is not None:
        score = (score + salience(sound)) / 2
    score = diversified(score, embedding, redundancy)
    top = score.max(initial=0.0)
    return score / top if top > 0 else score


def shot_embedding(features: ShotFeatures, mode: str = "fused") -> np.ndarray:
    """(S, D) unit rows: the picture and / or sound features (as ``mode`` says; sound only
    where there is any), each standardised over the shots and scaled to unit length."""
    parts = []
    if mode in ("fused", "picture"):
        parts.append(unit_rows(standardised(features.picture)))
    if mode in ("fused", "sound") and features.sound is not None:
        parts.append(unit_rows(standardised(features.sound)))
    return unit_rows(np.concatenate(parts, axis=1))


def distinctiveness(embedding: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """(S,) one minus the duration-weighted mean cosine to the other shots."""
    if len(embedding) < 2:
        return np.ones(len(embedding))
    sim = embedding @ embedding.T
    weight = np.broadcast_to(np.asarray(lengths, dtype=np.float64), sim.shape).copy()
    np.fill_diagonal(weight, 0.0)
    weight /= np.maximum(weight.sum(1, keepdims=True), 1e-12)
    return np.clip(1.0 - (weight * sim).sum(1), 0.0, 2.0) / 2.0


def salience(sound: np.ndarray) -> np.ndarray:
    """(S,) loudness above the video's median in MAD units, squashed, averaged with speech."""
    loud = sound[:, 0].astype(np.float64)
    spread = max(float(np.median(np.abs(loud - np.median(loud)))), 1.0)  # at least 1 dB
    above = np.clip((loud - np.median(loud)) / spread, 0.0, None)
    return (1.0 - np.exp(-above / 4.0) + np.clip(sound[:, 2], 0.0, 1.0)) / 2.0


def diversified(score: np.ndarray, embedding: np.ndarray, redundancy: float) -> np.ndarray:
    """Scores with near duplicates of better shots reduced to what they add above them."""
    out = score.astype(np.float64).copy()
    order = np.argsort(-score, kind="stable")
    sim = embedding @ embedding.T
    for rank, s in enumerate(order[1:], start=1):
        closest = float(sim[s, order[:rank]].max())
        if closest > redundancy:
            out[s] *= (1.0 - closest) / (1.0 - redundancy)
    return out


def standardised(x: np.ndarray) -> np.ndarray:
    """Each column minus its mean, over its standard deviation (over the video's shots)."""
    x = np.asarray(x, dtype=np.float64)
    return (x - x.mean(0)) / np.maximum(x.std(0), 1e-6)


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Each row scaled to unit length."""
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
