"""A search query: which modality it is and which tower embeds it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

from mmfuse.errors import MmfuseError

QUERY_KINDS = ("text", "image", "audio", "video")


class QueryTower(NamedTuple):
    """The tower that embeds a query, and the query's modality kind."""

    tower: str
    kind: str


def query_kind(query: str, modality: str | None = None) -> str:
    """"text", or the media kind of an existing file (by extension); ``modality`` forces it.

    Raises:
        MmfuseError: Empty query; a path-like query whose file does not exist; an unknown
            ``modality``.
    """
    from mmfuse.data.audio import AUDIO_EXTENSIONS
    from mmfuse.data.image import IMAGE_EXTENSIONS
    from mmfuse.data.video import VIDEO_EXTENSIONS

    if not query or not query.strip():
        raise MmfuseError("the query is empty; give a text or the path of an image, audio or video file")
    if modality is not None:
        if modality not in QUERY_KINDS:
            raise MmfuseError(f"unknown --modality {modality!r}; choose one of: {', '.join(QUERY_KINDS)}")
        return modality
    suffixes = {**{s: "image" for s in IMAGE_EXTENSIONS}, **{s: "audio" for s in AUDIO_EXTENSIONS},
                **{s: "video" for s in VIDEO_EXTENSIONS}}  # fmt: skip
    path = Path(query.strip()).expanduser()
    kind = suffixes.get(path.suffix.lower()) if " " not in query.strip() else None
    if kind is None:
        return "text"
    if not path.is_file():
        raise MmfuseError(f"query file not found: {path} (use --modality text to search for this text)")
    return kind


def choose_tower(kinds: Mapping[str, str], kind: str, collection_tower: str) -> QueryTower:
    """The tower for a query of ``kind`` against a collection embedded by ``collection_tower``.

    The other tower when it takes this kind (cross-modal search, or the second view of an
    image-image model); else the collection's own tower when it does (same-modality search).
    """
    others = [m for m in kinds if m != collection_tower]
    for tower in [*others, collection_tower]:
        if kinds[tower] == kind:
            return QueryTower(tower, kind)
    raise MmfuseError(
        f"this model embeds {' and '.join(f'{m} ({k})' for m, k in kinds.items())}; "
        f"a {kind} query cannot be embedded (use --modality to say what the query is)"
    )
