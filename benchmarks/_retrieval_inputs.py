"""Inputs of ``retrieval_baseline.py``: spoken-phrase datasets and frozen features.

Speech comes from ``espeak-ng`` (several accents, voice variants, speeds and pitches). Frozen
features come from mmfuse's own preparations and pretrained networks, computed here with
``load_backbone`` for the plain baseline; the widths of the packages' standard features (the
pooled ImageNet feature, Resemblyzer's utterance embedding) are read from the networks.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-029", "en-gb-x-rp", "en-gb-x-gbclan",
           "en-gb-x-gbcwmd", "en-us-nyc")  # fmt: skip
VARIANTS = ("", "+m1", "+m2", "+m3", "+m4", "+m5", "+m7", "+f1", "+f2", "+f3", "+f4", "+f5")

Features = Callable[[list[str], Path], np.ndarray]
"""(cell values, folder they resolve against) -> (N, D) frozen features."""


def make_audio_dataset(
    root: Path, transcripts: Sequence[str], speakers: Sequence[str], seed: int,
    clips_per_text: int | None = None,
) -> Path:  # fmt: skip
    """espeak-ng clips with random speed and pitch; writes data.csv. ``clips_per_text`` None:
    every speaker says every transcript; a number: that many clips of each transcript, each by
    a randomly drawn speaker."""
    rng = np.random.default_rng(seed)
    (root / "clips").mkdir(parents=True, exist_ok=True)
    n_texts = len(transcripts)
    if clips_per_text is None:
        jobs = [(s, t) for s in range(len(speakers)) for t in range(n_texts)]
    else:
        jobs = [(int(rng.integers(len(speakers))), t) for t in range(n_texts) for _ in range(clips_per_text)]
    rows = []
    for n, (s, t) in enumerate(jobs):
        speed, pitch = int(rng.integers(150, 201)), int(rng.integers(30, 71))
        name = f"clips/{n:05d}.wav"
        command = ["espeak-ng", "-v", speakers[s], "-s", str(speed), "-p", str(pitch),
                   "-w", str(root / name), transcripts[t]]  # fmt: skip
        subprocess.run(command, check=True, capture_output=True)
        rows.append({"audio": name, "transcript": transcripts[t], "speaker": speakers[s]})
    pd.DataFrame(rows).to_csv(root / "data.csv", index=False)
    return root / "data.csv"


def audio_speakers(n_train: int, n_test: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """Disjoint (accent + variant) speakers for train and test."""
    rng = np.random.default_rng(seed)
    every = [a + v for a in ACCENTS for v in VARIANTS]
    picked = [every[i] for i in rng.permutation(len(every))[: n_train + n_test]]
    return picked[:n_train], picked[n_train:]


# ------------------------------------------------------------------------ frozen features
def backbone_features(preparation: str, backbone: str, media: bool) -> Features:
    """Features of a frozen pretrained network, once per distinct value (as mmfuse does); a
    repeated call on the same values (another feature group sliced from them) reuses them."""
    from mmfuse.data.preparations import get_preparation
    from mmfuse.encoders.backbones import load_backbone

    computed: dict[tuple[Path, tuple[str, ...]], np.ndarray] = {}

    def features(values: list[str], base_dir: Path) -> np.ndarray:
        key = (base_dir, tuple(values))
        if key not in computed:
            computed[key] = _compute(values, base_dir)
        return computed[key]

    def _compute(values: list[str], base_dir: Path, batch: int = 32) -> np.ndarray:
        prep, net = get_preparation(preparation), load_backbone(backbone)
        distinct = list(dict.fromkeys(values))
        arrays = [prep.finish(prep.decode(v, base_dir / v if media else None)) for v in distinct]
        with torch.inference_mode():
            stacks = (np.stack(arrays[i : i + batch]) for i in range(0, len(arrays), batch))
            feats = torch.cat([net(torch.from_numpy(x)).float() for x in stacks]).numpy()
        index = {v: i for i, v in enumerate(distinct)}
        return feats[[index[v] for v in values]]  # (N, D)

    return features


def mel_stat_features(paths: list[str], base_dir: Path) -> np.ndarray:
    """(N, 80): per-band mean and std over time of mmfuse's normalised 40-band log-mel
    (16 kHz, 25 ms windows, 10 ms hop) of the whole clip, uncropped."""
    from mmfuse.data.audio import load_audio, log_mel_spectrogram

    out = []
    for p in paths:
        wave = load_audio(base_dir / p, 16000)
        mel = log_mel_spectrogram(wave, 16000, num_frames=1 + len(wave) // 160)  # (40, T)
        out.append(np.concatenate([mel.mean(1), mel.std(1)]))
    return np.stack(out).astype(np.float32)


def first(features: Features, width: int) -> Features:
    """The first ``width`` values of ``features`` (the part a package's own API returns)."""
    return lambda values, base_dir: features(values, base_dir)[:, :width]


def pooled_width() -> int:
    """Width of EfficientNet-Lite0's pooled ImageNet feature: mmfuse's minus its style part."""
    from mmfuse.encoders.backbones import EfficientNetLite0Backbone
    from mmfuse.pretrained import BACKBONES

    return BACKBONES["efficientnet-lite0"].dim - 2 * EfficientNetLite0Backbone.STYLE_CHANNELS


def speaker_width() -> int:
    """Width of Resemblyzer's utterance embedding (``VoiceEncoder.embed_utterance``)."""
    from resemblyzer.hparams import model_embedding_size

    return int(model_embedding_size)
