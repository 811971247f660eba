"""Command-line options generated from the parameter declarations in ``mmfuse.params``.

Every option's default is ``argparse.SUPPRESS``: an option the user did not give is absent from
the parsed namespace, so the estimator's own default applies (one default, declared once). The
help text shows that default, and where estimators differ, each one's (``default: 30;
retrieval: 40``).
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Collection, Mapping
from typing import Any

from mmfuse.errors import MmfuseError
from mmfuse.params import cli_of, flag_of, names


def add_params(
    parser: argparse.ArgumentParser,
    variants: Mapping[str, type],
    only: Collection[str] | None = None,
    exclude: Collection[str] = (),
) -> None:
    """Adds one option per parameter of the params classes in ``variants`` (label -> class; the
    first label is the main one, shown without a name in the defaults)."""
    declared: dict[str, list[tuple[str, dataclasses.Field[Any]]]] = {}
    for label, params in variants.items():
        for f in dataclasses.fields(params):
            if f.name in exclude or (only is not None and f.name not in only):
                continue
            declared.setdefault(f.name, []).append((label, f))
    group = parser.add_argument_group("model and run parameters (the same names in Python)")
    for name, decls in declared.items():
        _add_option(group, name, decls)


def _add_option(group: Any, name: str, decls: list[tuple[str, dataclasses.Field[Any]]]) -> None:
    f = decls[0][1]
    spec = cli_of(f)
    text = spec.help + ("; this option turns it off" if spec.off else _defaults_text(decls))
    text = text.replace("%", "%%")
    common = {"dest": name, "default": argparse.SUPPRESS, "help": text}
    if isinstance(f.default, bool):
        action = "store_false" if spec.off else "store_true"
        group.add_argument(flag_of(f), action=action, **common)
        return
    kind = spec.kind or (type(f.default) if f.default is not None else str)
    group.add_argument(flag_of(f), type=kind, choices=spec.choices, metavar=spec.metavar, **common)


def _defaults_text(decls: list[tuple[str, dataclasses.Field[Any]]]) -> str:
    def show(value: Any) -> str:
        if isinstance(value, bool):
            return "on" if value else "off"
        return "none" if value is None else f"{value:g}" if isinstance(value, float) else str(value)

    values = [(label, show(f.default)) for label, f in decls]
    if len({v for _, v in values}) == 1:
        return f" (default: {values[0][1]})" if values[0][1] != "none" else ""
    return " (default: " + "; ".join(f"{label + ': ' if label else ''}{v}" for label, v in values) + ")"


def given(args: argparse.Namespace, params: type) -> dict[str, Any]:
    """The parameters of ``params`` that the user set on the command line."""
    return {name: getattr(args, name) for name in names(params) if hasattr(args, name)}


def refuse_foreign(args: argparse.Namespace, offered: Mapping[str, type], used: type, what: str) -> None:
    """Exit 2 when an option was given that the chosen estimator does not take."""
    accepted = set(names(used))
    for params in offered.values():
        for f in dataclasses.fields(params):
            if f.name not in accepted and hasattr(args, f.name):
                raise MmfuseError(f"{flag_of(f)} does not apply to {what}")
