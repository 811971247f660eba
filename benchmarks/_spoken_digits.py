"""Spoken digits with a picture of the digit: ``make_spoken_digits(out)`` writes train.csv and
test.csv (columns image, audio, speaker, label) with ``img/*.png`` and ``wav/*.wav``.

Each record is one digit (0-9): a 28 x 28 grey picture of it (a random font of the system's
TrueType fonts, size, offset, rotation and stroke, pixel noise, a blur and, for 15 % of the
pictures, a blot over part of it; like handwriting, the picture alone is not always readable)
and the digit's English word spoken by espeak-ng. A speaker is an espeak-ng accent x voice
variant with its own pitch and speed; the test speakers are never heard in training. It mirrors
the image + speech data with unseen speakers of issue #17.
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


def make_spoken_digits(out: Path, speakers: int = 20, test_speakers: int = 6, per_speaker: int = 30,
                       seed: int = 0) -> tuple[Path, Path]:
    """Writes the dataset (see the module docstring) under ``out``; (train.csv, test.csv)."""
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
    rows = []
    for s, (accent, variant) in enumerate(chosen):
        pitch, speed = int(rng.integers(30, 80)), int(rng.integers(120, 200))
        for c in range(per_speaker):
            digit, i = c % 10, len(rows)
            _picture(digit, fonts, rng).save(out / f"img/{i:05d}.png")
            subprocess.run(["espeak-ng", "-v", f"{accent}+{variant}", "-p", str(pitch),
                            "-s", str(speed + int(rng.integers(-20, 20))), "-w", str(out / f"wav/{i:05d}.wav"),
                            WORDS[digit]], check=True, capture_output=True)
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
