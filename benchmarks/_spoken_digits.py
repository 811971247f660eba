"""Spoken digits with a picture of the digit: ``make_spoken_digits(out)`` writes train.csv and
test.csv (columns image, audio, speaker, label) with ``img/*.png`` and ``wav/*.wav``.

Each record is one digit (0-9): a 28 x 28 grey picture of it (a random font of the system's
TrueType fonts, size, offset, rotation and stroke, pixel noise, a blur and, for 15 % of the
pictures, a blot over part of it; like handwriting, the picture alone is not always readable)
and the digit's English word spoken by espeak-ng. A speaker is an espeak-ng accent x voice
variant with its own pitch and speed; the test speakers are never heard in training. It mirrors
the image + speech data with unseen speakers of issue #17. Options: real handwritten pictures
instead of the drawn ones, and noise mixed into the speech (``make_spoken_digits``).
"""

from __future__ import annotations

import glob
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from mmfuse.datasets.tone import ACCENTS, VARIANTS

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


PICTURES = ("fonts", "handwritten")


def make_spoken_digits(
    out: Path, speakers: int = 20, test_speakers: int = 6, per_speaker: int = 30, seed: int = 0,
    pictures: str = "fonts", snr: tuple[float, float] | None = None,
) -> tuple[Path, Path]:
    """Writes the dataset (see the module docstring) under ``out``; (train.csv, test.csv).

    ``pictures`` "handwritten": each picture is a real handwritten digit instead
    (scikit-learn's 1,797 8 x 8 scans from 43 writers, UCI; each used once, scaled to 28 x 28).
    ``snr``: (low, high) dB: white noise mixed into every clip at an SNR drawn uniformly between
    them (None: clean speech). The speech is the same whichever ``pictures``."""
    if shutil.which("espeak-ng") is None:
        raise SystemExit("espeak-ng speaks the digits: install it (Debian: apt-get install espeak-ng)")
    fonts = sorted(glob.glob("/usr/share/fonts/truetype/*/*.ttf"))
    if not fonts:
        raise SystemExit("no TrueType fonts under /usr/share/fonts/truetype (Debian: apt-get install fonts-dejavu-core)")
    (out / "img").mkdir(parents=True, exist_ok=True)
    (out / "wav").mkdir(exist_ok=True)
    rng = np.random.default_rng(seed)
    pairs = [(a, v) for v in VARIANTS for a in ACCENTS]
    chosen = [pairs[i] for i in rng.choice(len(pairs), speakers, replace=False)]
    scans = _handwritten(np.random.default_rng([seed, 1])) if pictures == "handwritten" else None
    fewest = min(len(v) for v in scans.values()) if scans is not None else 0
    if scans is not None and speakers * -(-per_speaker // 10) > fewest:
        raise SystemExit(f"{speakers} speakers x {per_speaker} clips need more handwritten scans "
                         f"of a digit than the {fewest} there are")
    noise = np.random.default_rng([seed, 2])
    rows = []
    for s, (accent, variant) in enumerate(chosen):
        pitch, speed = int(rng.integers(30, 80)), int(rng.integers(120, 200))
        for c in range(per_speaker):
            digit, i = c % 10, len(rows)
            picture = _picture(digit, fonts, rng)  # drawn either way: the same speech follows
            (picture if scans is None else scans[digit].pop()).save(out / f"img/{i:05d}.png")
            wav = out / f"wav/{i:05d}.wav"
            subprocess.run(["espeak-ng", "-v", f"{accent}+{variant}", "-p", str(pitch),
                            "-s", str(speed + int(rng.integers(-20, 20))), "-w", str(wav),
                            WORDS[digit]], check=True, capture_output=True)
            if snr is not None:
                _add_noise(wav, float(noise.uniform(*snr)), noise)
            rows.append({"image": f"img/{i:05d}.png", "audio": f"wav/{i:05d}.wav", "speaker": s,
                         "label": WORDS[digit]})
    table = pd.DataFrame(rows)
    test = table["speaker"] >= speakers - test_speakers
    train_csv, test_csv = out / "train.csv", out / "test.csv"
    table[~test].sample(frac=1.0, random_state=seed).to_csv(train_csv, index=False)
    table[test].to_csv(test_csv, index=False)
    return train_csv, test_csv


def _picture(digit: int, fonts: list[str], rng: np.random.Generator) -> Image.Image:
    img = Image.new("L", (28, 28), 0)
    font = ImageFont.truetype(fonts[int(rng.integers(len(fonts)))], int(rng.integers(16, 24)))
    ImageDraw.Draw(img).text((14 + int(rng.integers(-3, 4)), 14 + int(rng.integers(-3, 4))), str(digit), fill=255,
                             font=font, anchor="mm", stroke_width=int(rng.integers(0, 2)), stroke_fill=255)
    pixels = np.asarray(img.rotate(float(rng.uniform(-20, 20)), resample=Image.BILINEAR), np.float32)
    pixels = pixels + rng.normal(0, 30, pixels.shape)
    if rng.random() < 0.15:
        y, x = rng.integers(0, 20, 2)
        pixels[y:y + 10, x:x + 10] = rng.uniform(0, 255)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(0.6))


def _handwritten(rng: np.random.Generator) -> dict[int, list[Image.Image]]:
    """Digit -> scikit-learn's handwritten scans of it (shuffled), as 28 x 28 grey pictures."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    out: dict[int, list[Image.Image]] = {}
    for k in range(10):
        for j in rng.permutation(np.flatnonzero(digits.target == k)):
            scan = Image.fromarray((digits.images[j] * 255 / 16).astype(np.uint8))
            out.setdefault(k, []).append(scan.resize((28, 28), Image.BILINEAR))
    return out


def _add_noise(wav: Path, snr_db: float, rng: np.random.Generator) -> None:
    """Mixes white noise into ``wav`` at ``snr_db`` (in place)."""
    import soundfile as sf

    x, rate = sf.read(wav)
    power = float(np.mean(x**2))
    x = x + rng.normal(0.0, np.sqrt(power / 10 ** (snr_db / 10)), x.shape)
    sf.write(wav, np.clip(x, -1.0, 1.0), rate)
