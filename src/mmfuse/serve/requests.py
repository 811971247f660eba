"""A request's fields as one record of table cells, checked against the model's columns.

Media arrive as uploaded files (multipart) or base64 (JSON) and become in-memory cells (the
file's bytes), so nothing is ever read from a path a request names: a plain string in a media
column is refused. Every refusal is a ``RequestError`` with the HTTP status and a message
that names the field and says what to do.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mmfuse.data.cells import sniff_media
from mmfuse.serve.catalogue import MEDIA_KINDS, InputField
from mmfuse.serve.errors import RequestError

DATA_URL = re.compile(r"^data:([\w.+-]+/[\w.+-]+)?(;[\w-]+=[\w.-]+)*;base64,(.*)$", re.DOTALL)
FORMATS = {
    "image": "PNG, JPEG, GIF, WebP, BMP or TIFF",
    "audio": "WAV, FLAC, OGG, AIFF or MP3",
    "video": "MP4, MOV, MKV, WebM or AVI",
}


@dataclass(frozen=True)
class Upload:
    """A file sent with a request: its name and declared type (as the client says) and bytes."""

    filename: str
    content_type: str
    data: bytes


def upload_from_json(field: str, value: Mapping[str, Any] | str) -> Upload:
    """``{"base64": ..., "filename": ..., "content_type": ...}`` or a ``data:`` URL as an Upload."""
    if isinstance(value, str):
        match = DATA_URL.match(value)
        if match is None:
            raise RequestError(422, f"field {field!r}: not a data: URL with base64 content")
        mime, payload, name = match.group(1) or "", match.group(3), field
    else:
        unknown = sorted(set(value) - {"base64", "filename", "content_type"})
        if unknown or not isinstance(value.get("base64"), str):
            raise RequestError(
                422, f"field {field!r}: a file in JSON is {{\"base64\": \"...\", \"filename\": "
                "\"x.png\"}} (optional \"content_type\")" + (f"; unknown key(s) {unknown}" if unknown else ""),
            )
        mime, payload = str(value.get("content_type") or ""), value["base64"]
        name = str(value.get("filename") or field)
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError(422, f"field {field!r}: the file's base64 content is not valid base64") from None
    return Upload(name, mime, data)


def record_from_fields(fields: Mapping[str, Any], inputs: list[InputField]) -> dict[str, Any]:
    """The model's columns filled from ``fields`` (absent ones are None: missing modalities).

    Args:
        fields: Column -> a string, a number, None or an ``Upload``.
        inputs: The model's input columns.

    Raises:
        RequestError: An unknown field, a path or text where a file belongs, a file whose
            declared type or content is not the column's kind, a value that is not a number.
    """
    known = {f.name: f for f in inputs}
    unknown = sorted(set(fields) - set(known))
    if unknown:
        raise RequestError(422, f"unknown field(s) {', '.join(map(repr, unknown))}; this model's inputs are: "
                           f"{', '.join(known)}")
    return {name: _cell(f, fields.get(name)) for name, f in known.items()}


def _cell(field: InputField, value: Any) -> Any:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, Upload):
        if not value.data and not value.filename:
            return None  # a form's file input left empty
        if field.kind not in MEDIA_KINDS:
            raise RequestError(422, f"field {field.name!r} takes {field.accepts}, not a file ({value.filename!r})")
        return checked_upload(field.name, field.kind, value)
    if field.kind in MEDIA_KINDS:
        raise RequestError(
            422, f"field {field.name!r} takes an uploaded {field.kind} file (multipart), or base64 in JSON; "
            "the server never reads a path or URL named in a request",
        )
    if field.kind == "numeric":
        return _number(field.name, value)
    if field.kind == "embedding" and not (isinstance(value, list) or str(value).lstrip().startswith("[")):
        raise RequestError(422, f"field {field.name!r} takes a list of numbers (JSON), never a file path")
    if isinstance(value, (dict, list)) and field.kind != "embedding":
        raise RequestError(422, f"field {field.name!r} takes {field.accepts}, not {type(value).__name__}")
    return value if isinstance(value, (str, list)) else str(value)


def checked_upload(name: str, kind: str, upload: Upload) -> bytes:
    """The upload's bytes, after checking its declared type and its content against ``kind``."""
    label = f"field {name!r} ({upload.filename!r})"
    if not upload.data:
        raise RequestError(422, f"{label}: the file is empty")
    declared = upload.content_type.split(";")[0].strip().lower()
    if declared and declared != "application/octet-stream" and declared.split("/")[0] != kind:
        raise RequestError(415, f"{label}: declared as {declared}, but this field takes {kind} ({FORMATS[kind]})")
    found = sniff_media(upload.data[:64])
    if found != kind:
        seen = f"its content looks like {found}" if found else "its content is not a format mmfuse reads"
        raise RequestError(422, f"{label} is not a valid {kind} file: {seen} (expected {FORMATS[kind]})")
    return upload.data


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool):
        raise RequestError(422, f"field {name!r} takes a number, not {str(value).lower()}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise RequestError(422, f"field {name!r} takes a number, got {str(value)[:40]!r}") from None
    if not math.isfinite(number):
        raise RequestError(422, f"field {name!r} takes a finite number, got {value!r}")
    return number
