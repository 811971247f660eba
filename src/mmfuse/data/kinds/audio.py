"""Audio for the from-scratch encoders: a log-mel spectrogram of fixed size.

A cell is a path to an audio file (or, for the audio track of a video column, to the video),
encoded audio bytes, a float waveform at ``sample_rate``, or an ``(array, sample_rate)`` pair
(see ``mmfuse.data.cells``). The input is ``(n_mels, audio_frames)`` float32.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mmfuse.data.kinds import register_processor
from mmfuse.data.kinds.base import Alter, CellProcessor
from mmfuse.types import InputSpec


@register_processor("audio")
class AudioKind(CellProcessor):
    """Reads the waveform at the configured rate and takes its log-mel spectrogram; ``alter``
    sees the waveform (T,)."""

    def spec(self) -> InputSpec:
        return InputSpec("audio", (self.config.n_mels, self.config.audio_frames))

    def decode(self, cell: Any, base_dir: Path, alter: Alter) -> np.ndarray:
        from mmfuse.data.audio import load_audio, log_mel_spectrogram

        c = self.config
        wave = alter(load_audio(cell, c.sample_rate))
        return log_mel_spectrogram(wave, c.sample_rate, n_mels=c.n_mels, num_frames=c.audio_frames)
