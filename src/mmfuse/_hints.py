"""How to tell the user to set a parameter: as a flag on the command line, as a keyword in
Python. The CLI marks its calls (``from_cli``); messages ask ``option`` for the spelling."""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager

_FROM_CLI: contextvars.ContextVar[bool] = contextvars.ContextVar("mmfuse_from_cli", default=False)


@contextmanager
def from_cli() -> Iterator[None]:
    """Within the block, ``option`` spells parameters as command-line flags."""
    token = _FROM_CLI.set(True)
    try:
        yield
    finally:
        _FROM_CLI.reset(token)


def option(name: str, value: object = None) -> str:
    """``--on-bad-record skip`` on the command line, ``on_bad_record="skip"`` in Python (a
    boolean flag without a value: ``--allow-missing-columns`` / ``allow_missing_columns=True``)."""
    if _FROM_CLI.get():
        flag = "--" + name.replace("_", "-")
        return flag if value is None or value is True else f"{flag} {value}"
    return f"{name}={True if value is None else value!r}"
