"""The indexed items a search hit points at: image thumbnails and audio / video files.

Only files that an index lists are served, found by the hit's ``row_id``; a request never
names a path.
"""

from __future__ import annotations

import io
from collections import OrderedDict
from pathlib import Path

from PIL import Image

from mmfuse.serve.catalogue import ServedIndex
from mmfuse.serve.errors import RequestError

MEDIA_TYPES = {
    ".wav": "audio/wav", ".flac": "audio/flac", ".ogg": "audio/ogg", ".mp3": "audio/mpeg",
    ".opus": "audio/opus", ".aiff": "audio/aiff", ".aif": "audio/aiff",
    ".mp4": "video/mp4", ".m4v": "video/mp4", ".mov": "video/quicktime", ".webm": "video/webm",
    ".mkv": "video/x-matroska", ".avi": "video/x-msvideo",
}  # fmt: skip
THUMBNAIL_SIZES = (16, 1024)


def item_file(served: ServedIndex, row_id: int) -> Path:
    """The file of the indexed item ``row_id``.

    Raises:
        RequestError: 404 for an unknown row or a file that is gone; 422 for a text index.
    """
    if served.kind not in ("image", "audio", "video"):
        raise RequestError(422, f"index {served.name!r} holds {served.kind}, not media files")
    meta = served.index.metadata
    match = meta.index[meta["row_id"].to_numpy() == row_id]
    if len(match) == 0:
        raise RequestError(404, f"index {served.name!r} has no row_id {row_id} (it has {len(meta)} items)")
    value = Path(str(meta.at[match[0], "value"]))
    base = Path(str(served.index.info.get("base_dir") or served.directory))
    path = value if value.is_absolute() else base / value
    if not path.is_file():
        raise RequestError(404, f"the file of row_id {row_id} is no longer there ({value})")
    return path


class Thumbnails:
    """PNG thumbnails of image files, the most recent ``capacity`` kept in memory."""

    def __init__(self, capacity: int = 512) -> None:
        self.capacity = capacity
        self._kept: OrderedDict[tuple[str, float, int], bytes] = OrderedDict()

    def get(self, path: Path, size: int) -> bytes:
        """The image at ``path`` scaled to fit ``size`` x ``size`` (never enlarged), as PNG."""
        low, high = THUMBNAIL_SIZES
        if not low <= size <= high:
            raise RequestError(422, f"size must be between {low} and {high} pixels, got {size}")
        key = (str(path), path.stat().st_mtime, size)
        if key in self._kept:
            self._kept.move_to_end(key)
            return self._kept[key]
        from mmfuse.data.image import read_image
        from mmfuse.errors import DecodeError

        def scaled(image: Image.Image) -> bytes:
            copy = image.convert("RGBA" if "A" in image.getbands() else "RGB")
            copy.thumbnail((size, size))
            buffer = io.BytesIO()
            copy.save(buffer, format="PNG")
            return buffer.getvalue()

        try:
            self._kept[key] = read_image(path, scaled)
        except DecodeError as err:
            raise RequestError(404, f"the indexed image cannot be shown: {err}") from None
        if len(self._kept) > self.capacity:
            self._kept.popitem(last=False)
        return self._kept[key]
