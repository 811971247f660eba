"""How to tell the user to set a parameter: as a flag on the command line, as a keyword in
Python. The CLI marks its calls (``from_cli``); messages ask ``option`` for the spelling, which
comes from the parameter's one declaration in ``mmfuse.params``."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager

_cli_depth = 0
"""How many ``from_cli`` blocks are open: process-wide, since decoding runs in worker threads
(which a context variable would not reach)."""


@contextmanager
def from_cli() -> Iterator[None]:
    """Within the block, ``option`` spells parameters as command-line flags."""
    global _cli_depth
    _cli_depth += 1
    try:
        yield
    finally:
        _cli_depth -= 1


def option(name: str, value: object = True) -> str:
    """``--on-bad-record skip`` on the command line, ``on_bad_record='skip'`` in Python.

    Booleans: ``option("allow_missing_columns")`` is ``--allow-missing-columns`` /
    ``allow_missing_columns=True``; ``option("use_cache", False)`` is ``--no-cache`` /
    ``use_cache=False``.
    """
    if not _cli_depth:
        return f"{name}={value!r}"
    from mmfuse.params import EstimatorParams, RetrieverParams, cli_of, flag_of

    declared = {f.name: f for cls in (EstimatorParams, RetrieverParams)
                for f in dataclasses.fields(cls)}
    f = declared.get(name)
    if f is None:
        return "--" + name.replace("_", "-") + ("" if isinstance(value, bool) else f" {value}")
    if isinstance(value, bool):
        spec = cli_of(f)
        return (spec.off or flag_of(f)) if value != f.default else (spec.flag or flag_of(f))
    return f"{flag_of(f)} {value}"
