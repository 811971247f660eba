"""The files of a model directory, read back checked: every file present and a regular file,
JSON that parses to an object with the sections mmfuse wrote, a known ``format_version``,
and sections whose keys and value types match the classes they rebuild.

Nothing here unpickles or runs code from the directory; any other file in it (a planted
``model.pkl``) is never opened. Every problem is an ``MmfuseError`` that names the file and
what is wrong, so the CLI exits 2 instead of showing a traceback.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import reprlib
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from mmfuse import __version__
from mmfuse.errors import MmfuseError

FORMAT_VERSION = 1
SUPPORTED_FORMAT_VERSIONS = (1,)
CONFIG, WEIGHTS, PREPROCESS = "config.json", "model.safetensors", "preprocess.json"
METRICS, HISTORY = "metrics.json", "history.csv"
MODEL_FILES = (CONFIG, WEIGHTS, PREPROCESS, METRICS, HISTORY)
CONFIG_SECTIONS = ("estimator", "params", "model", "training", "fingerprint")
PREPROCESS_SECTIONS = ("schema", "config", "vocabularies", "embedding_dims")
FIX = "fit the model again, or restore the model directory from a backup"
PARSE_ERRORS = (KeyError, TypeError, ValueError, AttributeError, IndexError)
"""What rebuilding an object from a damaged JSON section raises (see ``reading``)."""


def damaged(path: Path, what: str) -> MmfuseError:
    """The error for a model file that is not what mmfuse wrote."""
    return MmfuseError(f"{path}: {what}; the file is damaged or was edited: {FIX}")


def check_model_dir(folder: Path) -> None:
    """``folder`` is a directory holding every file of ``MODEL_FILES``, each a regular file."""
    if not folder.exists():
        raise MmfuseError(f"model directory not found: {folder}")
    if not folder.is_dir():
        raise MmfuseError(
            f"{folder} is a file, not a model directory (`mmfuse fit --out DIR` writes one)"
        )
    for name in MODEL_FILES:
        path = folder / name
        if not path.exists():
            raise MmfuseError(
                f"{folder} is not an mmfuse model directory: {name} is missing "
                f"(a complete one holds {', '.join(MODEL_FILES)}); {FIX}"
            )
        if not path.is_file():
            raise damaged(path, "is a folder or a special file, not a regular file")


def read_model_json(folder: Path, name: str, sections: tuple[str, ...] = ()) -> dict[str, Any]:
    """The JSON object in ``folder/name``, which must hold every key in ``sections``."""
    path = folder / name
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise damaged(path, f"is not UTF-8 text (byte {err.start})") from None
    if not text.strip():
        raise damaged(path, "is empty")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        where = f"line {err.lineno}, column {err.colno}"
        raise damaged(path, f"is not valid JSON ({err.msg} at {where})") from None
    if not isinstance(value, dict):
        raise damaged(path, f"holds a JSON {json_type(value)}, not an object")
    require_keys(path, value, sections)
    return value


def require_keys(
    path: Path, value: Mapping[str, Any], keys: tuple[str, ...], where: str = ""
) -> None:
    """Every key in ``keys`` is in ``value`` (the ``where`` section of ``path``)."""
    missing = ", ".join(repr(key) for key in keys if key not in value)
    if missing and where:
        raise damaged(path, f"section {where!r} lacks {missing}")
    if missing:
        raise damaged(path, f"has no {missing} section")


def check_format_version(path: Path, config: Mapping[str, Any]) -> None:
    """``format_version`` is an integer this mmfuse reads."""
    supported = ", ".join(map(str, SUPPORTED_FORMAT_VERSIONS))
    if "format_version" not in config:
        raise damaged(path, f"has no format_version (this mmfuse reads format version {supported})")
    version = config["format_version"]
    is_int = isinstance(version, int) and not isinstance(version, bool)
    if is_int and version > max(SUPPORTED_FORMAT_VERSIONS):
        raise MmfuseError(
            f"{path}: format_version {version} is newer than this mmfuse ({__version__}) reads "
            f"(format version {supported}); the model was saved by mmfuse "
            f"{config.get('mmfuse_version', '?')}: upgrade mmfuse, or fit the model again "
            "with this one"
        )
    if not is_int or version not in SUPPORTED_FORMAT_VERSIONS:
        raise damaged(
            path,
            f"format_version {version!r} is not one this mmfuse reads (format version {supported})",
        )


def json_type(value: Any) -> str:
    """The JSON name of a parsed value's type."""
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


@contextmanager
def reading(path: Path, section: str | None = None) -> Iterator[None]:
    """Turns the errors of rebuilding objects from ``path`` (its ``section``) into MmfuseError.

    The section is data from disk, so a KeyError or TypeError while rebuilding from it means
    the file is not what mmfuse wrote, not a bug; MmfuseErrors pass through unchanged.
    """
    try:
        yield
    except MmfuseError:
        raise
    except PARSE_ERRORS as err:
        detail = f"missing key {err}" if isinstance(err, KeyError) else str(err).splitlines()[0]
        where = f"section {section!r}" if section else "its content"
        raise damaged(path, f"{where} cannot be read ({type(err).__name__}: {detail})") from None


def construct(
    factory: Callable[..., Any],
    values: Any,
    path: Path,
    section: str,
    create: Callable[[dict[str, Any]], Any] | None = None,
) -> Any:
    """``factory(**values)`` (or ``create(values)``) after checking ``values``' keys and
    types against the signature of ``factory`` (a dataclass or a class)."""
    if not isinstance(values, dict):
        raise damaged(path, f"section {section!r} holds a JSON {json_type(values)}, not an object")
    params = _parameters(factory)
    unknown = sorted(set(values) - set(params))
    if unknown:
        raise damaged(
            path,
            f"section {section!r} has unknown key(s) {', '.join(map(repr, unknown))} "
            f"(known: {', '.join(params)})",
        )
    required = tuple(n for n, p in params.items() if p.default is inspect.Parameter.empty)
    require_keys(path, values, required, section)
    hints = _type_hints(factory)
    for key, value in values.items():
        if key in hints and not matches(value, hints[key]):
            raise damaged(
                path,
                f"section {section!r}: {key} is {reprlib.repr(value)} (a JSON {json_type(value)}); "
                f"expected {_hint_name(hints[key])}",
            )
    with reading(path, section):
        return factory(**values) if create is None else create(values)


def read_history(folder: Path) -> list[dict[str, Any]]:
    """history.csv as records: one per epoch, with at least an ``epoch`` column."""
    path = folder / HISTORY
    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise damaged(path, "is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as err:
        raise damaged(path, f"is not a CSV table ({str(err).splitlines()[0]})") from None
    if "epoch" not in frame.columns:
        raise damaged(path, f"has no 'epoch' column (columns: {', '.join(map(str, frame.columns))})")
    return frame.to_dict("records")


def matches(value: Any, hint: Any) -> bool:
    """Whether a JSON value fits a type hint (shallow: containers by kind; a list for a tuple)."""
    origin = typing.get_origin(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(matches(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    base = origin or hint
    if base in (tuple, list):
        return isinstance(value, (list, tuple))
    if base in (dict, Mapping):
        return isinstance(value, dict)
    return not isinstance(base, type) or isinstance(value, base)


def _parameters(factory: Callable[..., Any]) -> dict[str, inspect.Parameter]:
    params = inspect.signature(factory).parameters
    return {n: p for n, p in params.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


def _type_hints(factory: Callable[..., Any]) -> dict[str, Any]:
    target = factory if dataclasses.is_dataclass(factory) else getattr(factory, "__init__", factory)
    try:
        return typing.get_type_hints(target)
    except (NameError, TypeError):  # an annotation that cannot be resolved: keys are still checked
        return {}


def _hint_name(hint: Any) -> str:
    return hint.__name__ if isinstance(hint, type) else str(hint).replace("typing.", "")
