"""Input preparations of pretrained encoders: the preprocessing each network was trained with.

A pretrained encoder names its preparation (``efficientnet-lite0`` -> ``imagenet-224``), so the
preprocessing travels with the encoder. A preparation decodes a cell in two steps so that the
robustness corruptions can act on the decoded value in between:

``decode(value, path)`` -> decoded value (image/frames in [0, 1], a mono wave, a string), then
``finish(decoded)`` -> the network's fixed-shape input array. A media cell is read from
``path``, or, when ``path`` is None, from ``value`` itself: an in-memory image, audio or video cell
(see ``mmfuse.data.cells``).

Only numpy, Pillow and the packages that ship each model are used (imported lazily).
"""

from __future__ import annotations

import threading
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from mmfuse._registry import Registry
from mmfuse.errors import MmfuseError


@dataclass(frozen=True)
class Preparation:
    """Base class: one pretrained network's input preprocessing.

    Attributes:
        name: Registry name.
        kind: Modality kind it prepares ("image", "video", "text", "audio").
        shape: Per-item shape of the prepared array.
        dtype: numpy dtype name of the prepared array.
    """

    name: str
    kind: str
    shape: tuple[int, ...]
    dtype: str = "float32"

    def decode(self, value: Any, path: Path | None) -> Any:
        """The decoded cell: media from ``path`` (or from ``value`` when in memory and
        ``path`` is None), text from ``value``."""
        raise NotImplementedError

    def finish(self, decoded: Any) -> np.ndarray:
        """The network input for one decoded cell, shape ``self.shape``."""
        raise NotImplementedError

    @property
    def fingerprint(self) -> str:
        """Identifies the preprocessing exactly (part of every feature-cache key)."""
        return f"{self.name}:{self.shape}:{self.dtype}"


PREPARATIONS: Registry[Preparation] = Registry("preparation")


def get_preparation(name: str) -> Preparation:
    """The registered preparation ``name`` (unknown names raise listing the valid ones)."""
    return PREPARATIONS.get(name)


# ------------------------------------------------------------------------------ images
IMAGENET_MEAN = np.asarray((0.485, 0.456, 0.406), dtype=np.float32).reshape(3, 1, 1)
IMAGENET_STD = np.asarray((0.229, 0.224, 0.225), dtype=np.float32).reshape(3, 1, 1)


def resize_center_crop(img: Image.Image, size: int, resize: int) -> np.ndarray:
    """ImageNet evaluation transform: shorter side to ``resize`` (bicubic), centre crop ``size``.

    Returns:
        float32 (3, size, size) in [0, 1].
    """
    from mmfuse.data.image import to_rgb

    img = to_rgb(img)
    w, h = img.size
    scale = resize / min(w, h)
    new = (max(size, round(w * scale)), max(size, round(h * scale)))
    img = img.resize(new, Image.Resampling.BICUBIC)
    left, top = (new[0] - size) // 2, (new[1] - size) // 2
    img = img.crop((left, top, left + size, top + size))
    return np.ascontiguousarray(np.asarray(img, dtype=np.float32).transpose(2, 0, 1) / 255.0)


@dataclass(frozen=True)
class ImageNetImage(Preparation):
    """Shorter side to ``resize``, centre crop ``size``, ImageNet mean/std."""

    size: int = 224
    resize: int = 256

    def decode(self, value: Any, path: Path | None) -> np.ndarray:
        from mmfuse.data.image import read_image

        source = value if path is None else path
        return read_image(source, lambda img: resize_center_crop(img, self.size, self.resize))

    def finish(self, decoded: np.ndarray) -> np.ndarray:
        return ((decoded - IMAGENET_MEAN) / IMAGENET_STD).astype(np.float32)

    @property
    def fingerprint(self) -> str:
        return f"{self.name}:size={self.size}:resize={self.resize}:bicubic:imagenet-mean-std"


@dataclass(frozen=True)
class ImageNetFrames(Preparation):
    """``num_frames`` frames sampled uniformly, each resized to ``size`` and ImageNet-normalised."""

    size: int = 224
    num_frames: int = 8

    def decode(self, value: Any, path: Path | None) -> np.ndarray:
        from mmfuse.data.video import load_video_frames

        source = value if path is None else path  # a file, or an in-memory cell's bytes
        return load_video_frames(source, self.num_frames, self.size)  # (N, 3, size, size)

    def finish(self, decoded: np.ndarray) -> np.ndarray:
        return ((decoded - IMAGENET_MEAN) / IMAGENET_STD).astype(np.float32)

    @property
    def fingerprint(self) -> str:
        return f"{self.name}:frames={self.num_frames}:size={self.size}:bilinear:imagenet-mean-std"


# -------------------------------------------------------------------------------- text
@lru_cache(maxsize=4)
def _wordpiece(tokenizer_file: str, max_length: int) -> Any:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(tokenizer_file)
    tok.enable_truncation(max_length)
    tok.enable_padding(length=max_length, pad_id=0)
    return tok


@dataclass(frozen=True)
class MiniLMTokens(Preparation):
    """The all-MiniLM-L6-v2 WordPiece tokenizer (lower-cased, [CLS] ... [SEP]).

    Prepared array (2, max_length) int64: token ids, then the attention mask.
    """

    max_length: int = 128

    def decode(self, value: Any, path: Path | None) -> str:
        from mmfuse.data.cells import checked_text

        return checked_text(value)

    def finish(self, decoded: str) -> np.ndarray:
        from mmfuse.pretrained import minilm_path

        enc = _wordpiece(str(minilm_path() / "tokenizer.json"), self.max_length).encode(decoded)
        return np.asarray([enc.ids, enc.attention_mask], dtype=np.int64)

    @property
    def fingerprint(self) -> str:
        return f"{self.name}:max_length={self.max_length}:wordpiece-uncased"


# ------------------------------------------------------------------------------- audio
@dataclass(frozen=True)
class VoiceMel(Preparation):
    """Resemblyzer's preprocessing: 16 kHz, volume normalised to -30 dBFS, long silences
    trimmed by WebRTC VAD, 40-band mel spectrogram (25 ms windows, 10 ms hop), cut into
    ``num_partials`` partial utterances of 160 frames (1.6 s) spread over the clip; clips
    shorter than that are repeated to fill them.

    Prepared array (num_partials, 160, 40) float32.
    """

    num_partials: int = 4
    sample_rate: int = 16000

    def decode(self, value: Any, path: Path | None) -> np.ndarray:
        from mmfuse.data.audio import load_audio

        return load_audio(value if path is None else path, self.sample_rate)

    def finish(self, decoded: np.ndarray) -> np.ndarray:
        audio = _resemblyzer_audio()
        wave = np.asarray(decoded, dtype=np.float32)
        if not np.any(wave):  # pure silence: no volume to normalise (it would give NaN)
            trimmed = wave
        else:
            trimmed = audio.preprocess_wav(wave)  # volume + silence trimming (already 16 kHz)
            if len(trimmed) < self.sample_rate // 10:  # VAD found (almost) no voice: keep the clip
                trimmed = audio.normalize_volume(wave, -30, increase_only=True)
        window = self.sample_rate * 25 // 1000  # one 25 ms mel window
        if len(trimmed) < window:  # a clip of a few samples: pad it to one window of silence
            trimmed = np.pad(trimmed, (0, window - len(trimmed)))
        mel = audio.wav_to_mel_spectrogram(trimmed)  # (T, 40)
        frames = 160
        if len(mel) < frames:
            mel = np.tile(mel, (int(np.ceil(frames / max(len(mel), 1))), 1))
        starts = np.linspace(0, len(mel) - frames, self.num_partials).round().astype(int)
        return np.stack([mel[s : s + frames] for s in starts]).astype(np.float32)

    @property
    def fingerprint(self) -> str:
        return f"{self.name}:partials={self.num_partials}:sr={self.sample_rate}:resemblyzer-mel40"


@lru_cache(maxsize=1)
def _resemblyzer_audio() -> Any:
    with warnings.catch_warnings():  # webrtcvad imports the deprecated pkg_resources
        warnings.simplefilter("ignore")
        try:
            from resemblyzer import audio
        except ImportError as err:
            raise MmfuseError(
                f"the voice encoder needs the resemblyzer package: pip install resemblyzer "
                f"'setuptools<81' ({err})"
            ) from None
    return audio


@dataclass(frozen=True)
class EGeMAPS(Preparation):
    """openSMILE's eGeMAPSv02 functionals of the 16 kHz mono wave as recorded (no volume
    normalisation: loudness is part of how it is said): the 88 values of Eyben et al., "The
    Geneva Minimalistic Acoustic Parameter Set" (2016), in openSMILE's order.

    Prepared array (88,) float32: the features themselves (the prosody "network" passes them
    through; its encoder standardises them with training statistics).
    """

    sample_rate: int = 16000

    def decode(self, value: Any, path: Path | None) -> np.ndarray:
        from mmfuse.data.audio import load_audio

        return load_audio(value if path is None else path, self.sample_rate)

    def finish(self, decoded: np.ndarray) -> np.ndarray:
        wave = np.asarray(decoded, dtype=np.float32)
        minimum = self.sample_rate // 10  # openSMILE needs a few frames: pad short clips with silence
        if len(wave) < minimum:
            wave = np.pad(wave, (0, minimum - len(wave)))
        values = _smile().process_signal(wave, self.sample_rate).to_numpy(dtype=np.float32)[0]
        return np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)

    @property
    def fingerprint(self) -> str:
        return f"{self.name}:sr={self.sample_rate}:eGeMAPSv02-functionals"


_SMILES = threading.local()


def _smile() -> Any:
    """This thread's openSMILE extractor (decoding runs in threads; one each)."""
    smile = getattr(_SMILES, "smile", None)
    if smile is None:
        try:
            import opensmile
        except ImportError as err:
            raise MmfuseError(f"the prosody encoder needs the opensmile package: pip install opensmile ({err})") from None
        smile = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                                feature_level=opensmile.FeatureLevel.Functionals)
        _SMILES.smile = smile
    return smile


@dataclass(frozen=True)
class Concatenated(Preparation):
    """Several preparations of the same decoded cell, each flattened, one after the other (a
    network made of several, e.g. ``voice+prosody``). ``parts`` name registered preparations
    of the same kind that decode a cell the same way."""

    parts: tuple[str, ...] = ()

    def decode(self, value: Any, path: Path | None) -> Any:
        return get_preparation(self.parts[0]).decode(value, path)

    @property
    def sample_rate(self) -> int | None:
        """The decoded audio's rate (the parts decode alike), for explanations' time labels."""
        return getattr(get_preparation(self.parts[0]), "sample_rate", None)

    def finish(self, decoded: Any) -> np.ndarray:
        return np.concatenate([get_preparation(p).finish(decoded).astype(np.float32).ravel() for p in self.parts])

    @property
    def fingerprint(self) -> str:
        return "+".join(get_preparation(p).fingerprint for p in self.parts)


def concatenated_shape(parts: tuple[str, ...]) -> tuple[int]:
    return (sum(int(np.prod(get_preparation(p).shape)) for p in parts),)


for _prep in (
    ImageNetImage("imagenet-224", "image", (3, 224, 224)),
    ImageNetFrames("imagenet-frames-224", "video", (8, 3, 224, 224)),
    MiniLMTokens("minilm-wordpiece-128", "text", (2, 128), "int64"),
    VoiceMel("voice-mel-4x160", "audio", (4, 160, 40)),
    EGeMAPS("egemaps-88", "audio", (88,)),
):
    PREPARATIONS.register(_prep.name)(_prep)
_VOICE_PROSODY = ("voice-mel-4x160", "egemaps-88")
PREPARATIONS.register("voice-mel+egemaps")(
    Concatenated("voice-mel+egemaps", "audio", concatenated_shape(_VOICE_PROSODY), parts=_VOICE_PROSODY)
)
