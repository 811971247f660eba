"""A generated image-caption dataset for retrieval: several captions per image.

Every item is a 64x64 PNG of one shape (circle, square, triangle or cross) in one of eight
colours, large or small, on a light or dark background, at a random position, with pixel
noise. Each item has ``captions_per_item`` captions worded differently ("a big red circle on a
dark background", "dark picture with a large red round shape", ...), all naming its colour,
shape, size and background. ``data.csv`` has one row per caption: ``image``, ``caption``,
``item``. Deterministic given ``seed``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

COLOURS = {
    "red": (220, 40, 40), "green": (40, 170, 60), "blue": (50, 80, 220), "yellow": (235, 210, 40),
    "purple": (140, 60, 180), "orange": (245, 140, 30), "pink": (240, 120, 190), "cyan": (40, 200, 210),
}  # fmt: skip
SHAPES = {"circle": "round", "square": "boxy", "triangle": "pointed", "cross": "plus-shaped"}
TEMPLATES = (
    "a {size} {colour} {shape} on a {bg} background",
    "{bg} picture with a {size2} {colour} {adj} shape",
    "the image shows one {colour} {shape}, {size}, over a {bg} backdrop",
    "{size} {shape} coloured {colour}; the background is {bg}",
    "there is a {colour} {shape} here",
)


def _draw(shape: str, colour: tuple[int, int, int], big: bool, dark: bool, rng: np.random.Generator) -> Image.Image:
    bg = (30, 30, 35) if dark else (225, 225, 220)
    img = Image.new("RGB", (64, 64), bg)
    d = ImageDraw.Draw(img)
    r = int(rng.integers(17, 24)) if big else int(rng.integers(7, 11))
    cx, cy = (int(v) for v in rng.integers(r + 2, 64 - r - 2, size=2))
    box = (cx - r, cy - r, cx + r, cy + r)
    if shape == "circle":
        d.ellipse(box, fill=colour)
    elif shape == "square":
        d.rectangle(box, fill=colour)
    elif shape == "triangle":
        d.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=colour)
    else:
        w = max(2, r // 3)
        d.rectangle((cx - r, cy - w, cx + r, cy + w), fill=colour)
        d.rectangle((cx - w, cy - r, cx + w, cy + r), fill=colour)
    pixels = np.asarray(img, dtype=np.float32) + rng.normal(0, 8, (64, 64, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def make_paired_dataset(
    out_dir: str | Path, n_items: int = 200, captions_per_item: int = 3, seed: int = 0
) -> Path:
    """Writes ``images/*.png`` and ``data.csv`` (image, caption, item) under ``out_dir``."""
    if n_items < 1 or not 1 <= captions_per_item <= len(TEMPLATES):
        raise ValueError(f"need n_items >= 1 and 1 <= captions_per_item <= {len(TEMPLATES)}")
    root = Path(out_dir)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_items):
        colour = str(rng.choice(list(COLOURS)))
        shape = str(rng.choice(list(SHAPES)))
        big, dark = bool(rng.integers(2)), bool(rng.integers(2))
        name = f"images/{i:04d}.png"
        _draw(shape, COLOURS[colour], big, dark, rng).save(root / name)
        words = {"colour": colour, "shape": shape, "adj": SHAPES[shape], "bg": "dark" if dark else "light",
                 "size": "big" if big else "small", "size2": "large" if big else "tiny"}  # fmt: skip
        for t in rng.permutation(len(TEMPLATES))[:captions_per_item]:
            rows.append({"image": name, "caption": TEMPLATES[t].format(**words), "item": i})
    pd.DataFrame(rows).to_csv(root / "data.csv", index=False)
    return root / "data.csv"
