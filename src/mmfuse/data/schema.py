"""Schema inference: which kind each column holds, and which modalities that makes.

Rules, applied to the non-empty values of each column (the first that fits wins):
  1. ``--kinds`` overrides.
  2. In-memory media (>= 80 % of values; see ``mmfuse.data.cells``): PIL images, 2-D / 3-D
     uint8 arrays and (H, W, 3|4) arrays are ``image``; ``(array, sample_rate)`` pairs are
     ``audio``; bytes go by their magic bytes (PNG/JPEG/GIF/WebP/BMP/TIFF -> ``image``,
     WAV/FLAC/OGG/AIFF/MP3 -> ``audio``, MP4/MOV/MKV/WebM/AVI -> ``video``); 1-D arrays stay
     ``embedding`` (name an array of samples ``audio`` with ``kinds``). A column of other
     arrays or bytes is ignored, with why.
  3. Strings ending in a known image / audio / video suffix (>= 80 % of values): that kind.
  4. JSON lists of numbers, Python lists/arrays, or ``.npy`` paths: ``embedding``.
  5. Numbers (>= 90 % parse as finite numbers): ``numeric``.
  6. Identifier-like columns (named ``id``/``*_id``, or one distinct short token per row): ignored.
  7. Few distinct short values (<= max(20, 5 % of rows), <= 3 words each): ``categorical``.
  8. Anything else: ``text``.
Rules 2 to 5 share of values are judged on up to ``KIND_SAMPLE`` values spread evenly over the
column (a million media paths need not each be lower-cased to tell they are images); rules 6
and 7 count distinct values over all of them.
Numeric and categorical columns together form one ``tabular`` modality; every other column is a
modality of its own, named after the column. A video column whose clips mostly carry an audio
track (at least half of up to 32 probed clips, files or bytes) adds a modality
``<column>_audio`` of kind audio.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mmfuse.errors import MmfuseError
from mmfuse.types import FIELD_KINDS

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".opus", ".aiff", ".aif")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
TABULAR = "tabular"
KIND_SAMPLE = 10_000
"""Values, spread evenly over a column, on which the share rules (2 to 5) are judged."""
AUDIO_TRACK_SUFFIX = "_audio"


@dataclass(frozen=True)
class Schema:
    """Column kinds of a table.

    Attributes:
        kinds: Feature column -> field kind (one of FIELD_KINDS), in table order.
        target: Target column, if any.
        ignored: Column -> why it is not used.
        audio_tracks: Video columns whose audio track is used as an extra audio modality.
    """

    kinds: dict[str, str]
    target: str | None = None
    ignored: dict[str, str] = field(default_factory=dict)
    audio_tracks: tuple[str, ...] = ()

    def modalities(self) -> dict[str, str]:
        """Modality name -> modality kind, sorted by name."""
        out: dict[str, str] = {}
        for col, kind in self.kinds.items():
            if kind in ("numeric", "categorical"):
                out[TABULAR] = TABULAR
            else:
                out[col] = kind
        for col in self.audio_tracks:
            out[col + AUDIO_TRACK_SUFFIX] = "audio"
        return dict(sorted(out.items()))

    def columns_of(self, kind: str) -> list[str]:
        """Feature columns of one field kind, in table order."""
        return [c for c, k in self.kinds.items() if k == kind]

    def to_dict(self) -> dict[str, object]:
        return {
            "kinds": dict(self.kinds),
            "target": self.target,
            "ignored": dict(self.ignored),
            "audio_tracks": list(self.audio_tracks),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, object]) -> Schema:
        return cls(
            kinds=dict(d["kinds"]),  # type: ignore[arg-type]
            target=d.get("target"),  # type: ignore[arg-type]
            ignored=dict(d.get("ignored", {})),  # type: ignore[arg-type]
            audio_tracks=tuple(d.get("audio_tracks", ())),  # type: ignore[arg-type]
        )


def parse_kinds(text: str | Mapping[str, str] | None) -> dict[str, str]:
    """Parses ``"col=kind,col2=kind"`` (or passes a mapping through), validating the kinds."""
    pairs = parse_pairs(text, "--kinds")
    for col, kind in pairs.items():
        if kind not in FIELD_KINDS and kind != "ignore":
            raise MmfuseError(
                f"unknown kind {kind!r} for column {col!r}; choose one of: "
                f"{', '.join(FIELD_KINDS)}, ignore"
            )
    return pairs


def parse_pairs(text: str | Mapping[str, str] | None, option: str) -> dict[str, str]:
    """``"key=value,key2=value2"`` (or a mapping, passed through) -> dict; ``option`` names
    the command-line option in error messages."""
    if not text:
        return {}
    if isinstance(text, Mapping):
        return dict(text)
    pairs = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        if "=" not in item:
            raise MmfuseError(f"{option}: expected COLUMN=VALUE, got {item!r}")
        key, value = (part.strip() for part in item.split("=", 1))
        if not key or not value:
            raise MmfuseError(f"{option}: expected COLUMN=VALUE, got {item!r}")
        if pairs.get(key, value) != value:
            raise MmfuseError(f"{option}: {key!r} is given twice ({pairs[key]!r} and {value!r}); keep one")
        pairs[key] = value
    return pairs


def infer_schema(
    df: pd.DataFrame,
    target: str | None = None,
    kinds: str | Mapping[str, str] | None = None,
    features: Sequence[str] | None = None,
    base_dir: str | Path | None = None,
    use_audio_tracks: bool = True,
) -> Schema:
    """Infers the kind of every column (see the module docstring for the rules).

    Args:
        df: The records.
        target: Target column (excluded from the features).
        kinds: Overrides, ``{"col": "kind"}`` or ``"col=kind,..."``; kind ``ignore`` drops a column.
        features: Use only these columns as features.
        base_dir: Folder for relative media paths (used to look for audio tracks in videos).
        use_audio_tracks: Add ``<video>_audio`` modalities for videos with an audio track.

    Raises:
        MmfuseError: Unknown target, feature or override column; no usable feature.
    """
    columns = [str(c) for c in df.columns]
    overrides = parse_kinds(kinds)
    _check_columns(columns, target, overrides, features)
    chosen = list(features) if features else [c for c in columns if c != target]
    result: dict[str, str] = {}
    ignored: dict[str, str] = {}
    for col in chosen:
        if col == target:
            continue
        kind = overrides.get(col) or _infer_kind(col, df[col])
        if kind.startswith("ignore"):
            ignored[col] = "overridden with --kinds" if col in overrides else kind[len("ignore: ") :]
        else:
            result[col] = kind
    if TABULAR in result and result[TABULAR] not in ("numeric", "categorical"):
        raise MmfuseError(f"column name {TABULAR!r} is reserved for the tabular modality; rename it")
    if not result:
        raise MmfuseError("no usable feature columns: " + _describe_ignored(ignored))
    tracks: tuple[str, ...] = ()
    if use_audio_tracks and base_dir is not None:
        tracks = tuple(c for c, k in result.items() if k == "video" and _has_audio(df[c], base_dir))
    return Schema(result, target, ignored, tracks)


def _check_columns(
    columns: list[str],
    target: str | None,
    overrides: Mapping[str, str],
    features: Sequence[str] | None,
) -> None:
    listing = ", ".join(columns)
    if target is not None and target not in columns:
        raise MmfuseError(f"unknown target column {target!r}; the columns are: {listing}")
    for col in list(overrides) + list(features or []):
        if col not in columns:
            raise MmfuseError(f"unknown column {col!r}; the columns are: {listing}")
    if features and target is not None and set(features) == {target}:
        raise MmfuseError(f"--features lists only the target column {target!r}; a model cannot "
                          "take what it predicts as input: name the columns to learn from")


def _describe_ignored(ignored: Mapping[str, str]) -> str:
    listed = "; ".join(f"{c}: {why}" for c, why in ignored.items())
    return listed or "the table has no columns besides the target; add the columns to learn from"


def _infer_kind(name: str, series: pd.Series) -> str:
    values = series.dropna()
    values = values[values.map(lambda v: not (isinstance(v, str) and not v.strip()))]
    if values.empty:
        return "ignore: the column is empty"
    if pd.api.types.is_bool_dtype(series):
        return "categorical"
    if pd.api.types.is_numeric_dtype(series):
        return _numeric_or_id(name, values)
    sample = values.iloc[np.unique(np.linspace(0, len(values) - 1, min(KIND_SAMPLE, len(values))).astype(int))]
    memory = _in_memory_kind(name, sample)
    if memory is not None:
        return memory
    if sample.map(lambda v: isinstance(v, (list, tuple, np.ndarray))).mean() >= 0.8:
        return "embedding"
    text = _as_text(sample)
    lower = text.str.lower()
    for kind, suffixes in (("image", IMAGE_SUFFIXES), ("audio", AUDIO_SUFFIXES), ("video", VIDEO_SUFFIXES)):
        if lower.str.endswith(suffixes).mean() >= 0.8:
            return kind
    if (lower.str.endswith(".npy") | text.map(_is_json_vector)).mean() >= 0.8:
        return "embedding"
    numbers = pd.to_numeric(text, errors="coerce")
    if np.isfinite(numbers.to_numpy(dtype=float, na_value=np.nan)).mean() >= 0.9:
        return "numeric"
    text = _as_text(values)
    words = text.str.split().str.len()
    n_unique = text.nunique()
    if _looks_like_id(name, text) and n_unique == len(text) and words.max() == 1:
        return "ignore: identifier-like (one distinct value per row)"
    if n_unique <= max(20, int(0.05 * len(text))) and words.max() <= 3:
        return "categorical"
    if n_unique == len(text) and words.max() == 1 and len(text) > 20:
        return "ignore: identifier-like (one distinct value per row)"
    return "text"


def _as_text(values: pd.Series) -> pd.Series:
    """The values as stripped strings. Object dtype: pandas' default string dtype (pyarrow)
    rejects the surrogates that stand for undecodable bytes, and those cells must reach
    preprocessing to be reported."""
    return pd.Series([str(v) for v in values], index=values.index, dtype=object).str.strip()


def _in_memory_kind(name: str, values: pd.Series) -> str | None:
    """The kind of a column of in-memory media (None when under 80 % of its cells are)."""
    from mmfuse._hints import option
    from mmfuse.data.cells import in_memory_kind

    kinds = pd.Series([in_memory_kind(v) for v in values], dtype=object)
    if kinds.notna().mean() < 0.8:
        return None
    counts = kinds.value_counts()
    kind = str(counts.index[0])
    if kind and counts.iloc[0] >= 0.8 * len(kinds):
        return kind
    seen = ", ".join(f"{k or 'unrecognised'}: {n}" for k, n in counts.items())
    return (
        f"ignore: in-memory cells of no single kind ({seen}); an image cell is a PIL image, a "
        f"uint8 array or image bytes, an audio cell audio bytes or an (array, rate) pair, a "
        f"video cell video bytes; name the kind with {option('kinds', f'{name}=image')} (or "
        f"audio, video)"
    )


def _numeric_or_id(name: str, values: pd.Series) -> str:
    if _looks_like_id(name, values.astype(str)) and values.nunique() == len(values):
        return "ignore: identifier-like (one distinct value per row)"
    return "numeric"


def _looks_like_id(name: str, values: pd.Series) -> bool:
    lower = name.lower()
    return lower in ("id", "uid", "uuid", "key", "index") or lower.endswith(("_id", "_key"))


def _is_json_vector(text: str) -> bool:
    if not (text.startswith("[") and text.endswith("]")):
        return False
    parts = text[1:-1].split(",")
    if len(parts) < 2:
        return False
    try:
        [float(p) for p in parts]
    except ValueError:
        return False
    return True


def _has_audio(series: pd.Series, base_dir: str | Path, probes: int = 32) -> bool:
    """True when at least half of up to 32 clips, spread evenly over the column, have audio.

    A column where only a few clips carry sound gets no audio modality (use ``--kinds`` and a
    separate audio column if those tracks matter).
    """
    from mmfuse.data.video import has_audio_track

    values = series.dropna()
    values = values[values.map(lambda v: not isinstance(v, str) or bool(v.strip()))]
    picks = np.unique(np.linspace(0, len(values) - 1, min(probes, len(values))).round().astype(int))
    clips = [_probed_clip(values.iloc[i], base_dir) for i in picks] if len(values) else []
    found = [has_audio_track(c) for c in clips if c is not None]
    return bool(found) and sum(found) >= 0.5 * len(found)


def _probed_clip(value: object, base_dir: str | Path) -> Path | bytes | None:
    """A video cell's bytes, or the file it names if that exists; None otherwise."""
    from mmfuse.data.cells import is_in_memory

    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if is_in_memory(value):  # an array or other value a video column does not take
        return None
    path = Path(base_dir) / str(value).strip()
    try:
        return path if path.exists() else None
    except OSError:  # a name too long for the file system, ...
        return None
