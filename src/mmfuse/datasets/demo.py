"""Built-in demo dataset whose binary target needs all five modalities.

Generative story (record ``i`` of ``n``, everything drawn from ``np.random.default_rng``):

1. Five independent hidden votes ``s_image, s_text, s_audio, s_video, s_tabular``, each +1
   or -1 with probability 1/2, drawn first from ``default_rng([seed, 0])`` as an ``(n, 5)``
   array (see :func:`demo_votes`). ``label`` is ``"positive"`` if the sum of the five votes is
   > 0, else ``"negative"`` (the sum is odd, so never 0). ``score`` is the sum of the votes
   plus N(0, 0.3) noise, rounded to 3 decimals. Each modality carries exactly one vote plus
   nuisance variation: knowing one vote perfectly gives at most 11/16 = 68.75% accuracy
   (the other four votes must not outvote it), knowing all five gives 100%.
2. image (``images/{i:04d}.png``, 32x32 RGB): stripes, horizontal if ``s_image = +1`` and
   vertical if -1, with an integer period of 4-8 px (half on, half off), a random phase,
   random foreground and background colours (at least 0.4 apart in RGB on a 0-1 scale) and
   Gaussian pixel noise of sigma 20/255. About 10% of records are saved as JPEG
   (``.jpg``, quality 90) and about 3% as grayscale PNG.
3. text (``review`` column, inline): 8-16 words, neutral filler words plus one or two
   sentiment words at random positions, from a positive list if ``s_text = +1`` else from a
   negative list. Each sentiment word is replaced by a neutral one with probability 0.1.
   The first word is capitalised with probability 0.5, any word is upper-cased with
   probability 0.05, a comma follows a random word with probability 0.2, and the review
   ends with one of "", ".", "!" or "...".
4. audio (``audio/{i:04d}.wav``, 16 kHz mono, 1.0 s, PCM_16): a sine tone of 700-1000 Hz if
   ``s_audio = +1`` or 200-350 Hz if -1, starting at a random offset, lasting 0.4-0.9 s with
   20 ms linear fades, amplitude 0.2-0.8, plus white noise at an SNR of 8-12 dB relative to
   the tone. A signal whose peak would exceed 0.99 is scaled down to 0.99. About 10% of
   records are saved as ``.flac`` (PCM_16).
5. video (``video/{i:04d}.mp4``, 8 frames of 32x32 at 8 fps, codec "mpeg4", yuv420p,
   400 kbit/s): an 8x8 square moving along a random straight path over a dark background
   (grey level 10-40) with Gaussian noise of sigma 6. The square's hue is 120 +- 15 degrees
   (green) if ``s_video = +1`` or 300 +- 15 degrees (magenta) if -1, with saturation
   0.6-1.0 and brightness 0.5-1.0. The first 15% of records (``i < round(0.15 n)``) also
   carry a quiet AAC audio track (16 kHz mono, 1024-sample frames, noise plus a 440 Hz tone).
6. tabular: ``income`` ~ N(0.9 s_tabular, 1) (3 decimals); nuisance columns ``age`` ~
   N(40, 12) rounded to an integer and clipped to 18-90, ``region`` uniform over
   north/south/east/west and ``channel`` uniform over web/store/phone.
7. missing cells: independently per record and per column ``image``, ``review``, ``audio``,
   ``video`` and ``income``, the cell is left empty with probability ``missing_rate`` (no file
   is written for a missing media cell). A record whose four media/text cells would all be
   missing has its media mask redrawn until at least one is present.

Media and text of record ``i`` use their own generator ``default_rng([seed, stream, i])``,
so the content of a record does not depend on ``n`` or on which cells are missing.
"""

from __future__ import annotations

import colorsys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmfuse.datasets.video_file import encode_mp4

DEMO_TARGET = "label"
"""Name of the binary target column of the demo dataset."""

DEMO_MODALITY_COLUMNS = {"image": "image", "review": "text", "audio": "audio", "video": "video"}
"""Media/text column name -> modality kind."""

VOTE_NAMES = ("image", "text", "audio", "video", "tabular")
"""Order of the hidden votes returned by :func:`demo_votes`."""

CSV_COLUMNS = (
    "id", "image", "review", "audio", "video", "income", "age", "region", "channel", "label",
    "score",
)  # fmt: skip
_MEDIA_COLUMNS = ("image", "review", "audio", "video")
_REGIONS = ("north", "south", "east", "west")
_CHANNELS = ("web", "store", "phone")

# Seed streams: default_rng([seed, stream]) or default_rng([seed, stream, i]).
_VOTES, _TABULAR, _MISSING, _SCORE, _IMAGE, _TEXT, _AUDIO, _VIDEO = range(8)

IMAGE_SIZE = 32
SAMPLE_RATE = 16_000
NUM_FRAMES = 8
FPS = 8
SQUARE = 8
INCOME_SHIFT = 0.9
"""``income`` ~ N(INCOME_SHIFT * s_tabular, 1)."""
TRACK_FRACTION = 0.15

NEUTRAL_WORDS = (
    "the", "a", "delivery", "box", "arrived", "colour", "size", "on", "tuesday", "it", "was",
    "and", "with", "item", "package", "order", "came", "in", "blue", "small", "medium", "this",
    "my", "for", "week", "after", "two", "days", "seller", "shipping", "product", "its", "of",
    "we", "got", "monday", "material", "fits", "label", "model",
)  # fmt: skip
POSITIVE_WORDS = (
    "great", "excellent", "love", "perfect", "wonderful", "amazing", "fantastic", "happy",
    "superb", "brilliant",
)  # fmt: skip
NEGATIVE_WORDS = (
    "awful", "broken", "hate", "terrible", "poor", "horrible", "disappointing", "useless", "bad",
    "faulty",
)  # fmt: skip


def demo_votes(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Recompute the hidden votes of ``make_demo_dataset(..., n=n, seed=seed)``.

    The votes are not stored in ``data.csv`` (they would leak the label); this function is
    for tests and for measuring what each modality can reach.

    Args:
        n: Number of records.
        seed: Non-negative dataset seed.

    Returns:
        ``{name: (n,) int array of +1/-1}`` for every name in :data:`VOTE_NAMES`.
    """
    _check_count_and_seed(n, seed)
    votes = np.random.default_rng([seed, _VOTES]).choice(np.array([-1, 1]), size=(n, 5))
    return {name: votes[:, k].astype(np.int64) for k, name in enumerate(VOTE_NAMES)}


def make_demo_dataset(
    out_dir: str | Path, n: int = 800, seed: int = 0, missing_rate: float = 0.04
) -> Path:
    """Write the demo dataset (media files, ``data.csv``, ``README.md``) under ``out_dir``.

    See the module docstring for the generative story. The output is deterministic given
    ``seed``: the CSV, images and audio files are byte-identical between runs.

    Args:
        out_dir: Folder to write into; created if needed.
        n: Number of records.
        seed: Non-negative seed.
        missing_rate: Probability that each media/text cell and each ``income`` cell is empty.

    Returns:
        Path of ``out_dir/data.csv``.
    """
    _check_count_and_seed(n, seed)
    if not 0.0 <= missing_rate < 1.0:
        raise ValueError(f"missing_rate must be in [0, 1); got {missing_rate!r}")
    root = Path(out_dir)
    for sub in ("images", "audio", "video"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    votes = demo_votes(n, seed)
    missing = _media_missing_mask(n, missing_rate, seed)
    table: dict[str, Any] = {"id": np.arange(n)}
    table.update(_media_columns(root, votes, missing, seed))
    table.update(_tabular_columns(votes["tabular"], missing_rate, seed))
    total = sum(votes.values())
    table["label"] = np.where(total > 0, "positive", "negative")
    noise = np.random.default_rng([seed, _SCORE]).normal(0.0, 0.3, n)
    table["score"] = np.round(total + noise, 3)
    csv_path = root / "data.csv"
    pd.DataFrame(table, columns=list(CSV_COLUMNS)).to_csv(csv_path, index=False)
    (root / "README.md").write_text(_readme(n, seed, missing_rate), encoding="utf-8")
    return csv_path


def _check_count_and_seed(n: int, seed: int) -> None:
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be a positive integer; got {n!r}")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer; got {seed!r}")


def _record_rng(seed: int, stream: int, i: int) -> np.random.Generator:
    return np.random.default_rng([seed, stream, i])


def _media_missing_mask(n: int, rate: float, seed: int) -> np.ndarray:
    """``(n, 4)`` bool mask over image/review/audio/video; no row is all True."""
    rng = np.random.default_rng([seed, _MISSING])
    mask = rng.random((n, len(_MEDIA_COLUMNS))) < rate
    for i in range(n):
        while mask[i].all():
            mask[i] = rng.random(len(_MEDIA_COLUMNS)) < rate
    return mask


def _media_columns(
    root: Path, votes: dict[str, np.ndarray], missing: np.ndarray, seed: int
) -> dict[str, list[str]]:
    """Render every present media cell; return the four media/text columns."""
    n = len(missing)
    num_tracks = round(TRACK_FRACTION * n)
    columns: dict[str, list[str]] = {name: [""] * n for name in _MEDIA_COLUMNS}
    for i in range(n):
        if not missing[i, 0]:
            columns["image"][i] = _write_image(root, i, votes["image"][i], seed)
        if not missing[i, 1]:
            columns["review"][i] = _review(votes["text"][i], _record_rng(seed, _TEXT, i))
        if not missing[i, 2]:
            columns["audio"][i] = _write_audio(root, i, votes["audio"][i], seed)
        if not missing[i, 3]:
            columns["video"][i] = _write_video(root, i, votes["video"][i], seed, i < num_tracks)
    return columns


def _tabular_columns(vote: np.ndarray, missing_rate: float, seed: int) -> dict[str, Any]:
    """``income`` (one vote, NaN where missing) and the nuisance columns."""
    rng = np.random.default_rng([seed, _TABULAR])
    n = len(vote)
    income = np.round(rng.normal(INCOME_SHIFT * vote, 1.0), 3)
    income[rng.random(n) < missing_rate] = np.nan
    age = np.clip(np.rint(rng.normal(40.0, 12.0, n)), 18, 90).astype(np.int64)
    region = np.asarray(_REGIONS)[rng.integers(0, len(_REGIONS), n)]
    channel = np.asarray(_CHANNELS)[rng.integers(0, len(_CHANNELS), n)]
    return {"income": income, "age": age, "region": region, "channel": channel}


def stripe_image(vote: int, rng: np.random.Generator) -> np.ndarray:
    """Noisy stripes, horizontal for ``vote = +1``, vertical for -1.

    Returns:
        ``(32, 32, 3)`` uint8 RGB array.
    """
    period = int(rng.integers(4, 9))
    phase = rng.uniform(0.0, period)
    on = ((np.arange(IMAGE_SIZE) + phase) % period) < period / 2  # (32,)
    mask = on[:, None] if vote > 0 else on[None, :]  # horizontal: varies down the rows
    foreground, background = _contrasting_colours(rng)
    image = np.where(mask[..., None], foreground, background)  # (32, 32, 3)
    image = image + rng.normal(0.0, 20 / 255, (IMAGE_SIZE, IMAGE_SIZE, 3))
    return np.round(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)


def _contrasting_colours(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    while True:
        foreground, background = rng.random(3), rng.random(3)
        if np.linalg.norm(foreground - background) >= 0.4:
            return foreground, background


def _write_image(root: Path, i: int, vote: int, seed: int) -> str:
    from PIL import Image

    rng = _record_rng(seed, _IMAGE, i)
    image = Image.fromarray(stripe_image(vote, rng), mode="RGB")
    kind = rng.random()
    if kind < 0.10:
        relative = f"images/{i:04d}.jpg"
        image.save(root / relative, format="JPEG", quality=90)
        return relative
    if kind < 0.13:
        image = image.convert("L")
    relative = f"images/{i:04d}.png"
    image.save(root / relative, format="PNG")
    return relative


def _review(vote: int, rng: np.random.Generator) -> str:
    """A short review: neutral filler plus one or two sentiment words of the vote's sign."""
    num_words = int(rng.integers(8, 17))
    num_sentiment = int(rng.integers(1, 3))
    lexicon = POSITIVE_WORDS if vote > 0 else NEGATIVE_WORDS
    words = [str(w) for w in rng.choice(NEUTRAL_WORDS, num_words - num_sentiment)]
    for _ in range(num_sentiment):
        pool = NEUTRAL_WORDS if rng.random() < 0.1 else lexicon
        words.insert(int(rng.integers(0, len(words) + 1)), str(rng.choice(pool)))
    return _decorate(words, rng)


def _decorate(words: list[str], rng: np.random.Generator) -> str:
    """Random capitalisation and punctuation."""
    words = [w.upper() if rng.random() < 0.05 else w for w in words]
    if rng.random() < 0.5:
        words[0] = words[0][:1].upper() + words[0][1:]
    if rng.random() < 0.2:
        k = int(rng.integers(0, len(words) - 1))
        words[k] += ","
    return " ".join(words) + str(rng.choice(["", ".", "!", "..."]))


def tone_signal(vote: int, rng: np.random.Generator) -> np.ndarray:
    """1 s of a gated tone in the vote's pitch band plus white noise.

    Returns:
        ``(16000,)`` float64 array in [-0.99, 0.99].
    """
    low, high = (700.0, 1000.0) if vote > 0 else (200.0, 350.0)
    freq = rng.uniform(low, high)
    duration = rng.uniform(0.4, 0.9)
    start = rng.uniform(0.0, 1.0 - duration)
    amplitude = rng.uniform(0.2, 0.8)
    snr_db = rng.uniform(8.0, 12.0)
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    fade = 0.02
    envelope = np.clip(np.minimum(t - start, start + duration - t) / fade, 0.0, 1.0)
    tone = amplitude * envelope * np.sin(2 * np.pi * freq * (t - start) + rng.uniform(0, 2 * np.pi))
    noise_std = amplitude / np.sqrt(2) * 10 ** (-snr_db / 20)
    signal = tone + rng.normal(0.0, noise_std, SAMPLE_RATE)
    peak = np.abs(signal).max()
    return signal * (0.99 / peak) if peak > 0.99 else signal


def _write_audio(root: Path, i: int, vote: int, seed: int) -> str:
    import soundfile as sf

    rng = _record_rng(seed, _AUDIO, i)
    signal = tone_signal(vote, rng)
    if rng.random() < 0.10:
        relative, file_format = f"audio/{i:04d}.flac", "FLAC"
    else:
        relative, file_format = f"audio/{i:04d}.wav", "WAV"
    sf.write(root / relative, signal, SAMPLE_RATE, subtype="PCM_16", format=file_format)
    return relative


def square_frames(vote: int, rng: np.random.Generator) -> np.ndarray:
    """A green (+1) or magenta (-1) square moving in a straight line over dark noise.

    Returns:
        ``(8, 32, 32, 3)`` uint8 RGB array.
    """
    hue = ((120.0 if vote > 0 else 300.0) + rng.uniform(-15.0, 15.0)) / 360.0
    rgb = colorsys.hsv_to_rgb(hue, rng.uniform(0.6, 1.0), rng.uniform(0.5, 1.0))
    colour = 255.0 * np.asarray(rgb)
    span = IMAGE_SIZE - SQUARE
    start, end = rng.uniform(0, span, 2), rng.uniform(0, span, 2)
    frames = np.full((NUM_FRAMES, IMAGE_SIZE, IMAGE_SIZE, 3), rng.uniform(10.0, 40.0))
    for t in range(NUM_FRAMES):
        y, x = np.rint(start + (end - start) * t / (NUM_FRAMES - 1)).astype(int)
        frames[t, y : y + SQUARE, x : x + SQUARE] = colour
    frames += rng.normal(0.0, 6.0, frames.shape)
    return np.round(np.clip(frames, 0, 255)).astype(np.uint8)


def _audio_track(rng: np.random.Generator) -> np.ndarray:
    """A quiet 1.024 s mono track (16 AAC frames of 1024 samples): noise plus 440 Hz."""
    t = np.arange(16 * 1024) / SAMPLE_RATE
    track = 0.05 * np.sin(2 * np.pi * 440.0 * t) + rng.normal(0.0, 0.02, t.shape)
    return track.astype(np.float32)


def _write_video(root: Path, i: int, vote: int, seed: int, with_audio: bool) -> str:
    rng = _record_rng(seed, _VIDEO, i)
    frames = square_frames(vote, rng)
    track = _audio_track(rng) if with_audio else None
    relative = f"video/{i:04d}.mp4"
    encode_mp4(root / relative, frames, track, FPS, SAMPLE_RATE)
    return relative


def _readme(n: int, seed: int, missing_rate: float) -> str:
    return f"""# mmfuse demo dataset

Generated by `mmfuse.datasets.make_demo_dataset(n={n}, seed={seed}, missing_rate={missing_rate})`.

Five hidden +-1 votes (one per modality: image, review text, audio, video, income) decide
`label`: "positive" if their sum > 0. One perfectly known vote gives at most 68.75%
accuracy; all five give 100%. `score` = sum of votes + N(0, 0.3).

| column | content |
| --- | --- |
| id | record number |
| image | `images/*.png|jpg`, 32x32 stripes: horizontal = +1, vertical = -1 |
| review | short review; positive words = +1, negative words = -1 (10% replaced) |
| audio | `audio/*.wav|flac`, 1 s 16 kHz tone: 700-1000 Hz = +1, 200-350 Hz = -1 |
| video | `video/*.mp4`, 8 frames: moving green square = +1, magenta = -1 |
| income | N(0.9 * vote, 1) |
| age, region, channel | nuisance, unrelated to the label |
| label | binary target |
| score | regression target |

Media/text cells and `income` are empty with probability {missing_rate} each; at least one
media/text cell is present in every row. Paths are relative to this folder.
"""
