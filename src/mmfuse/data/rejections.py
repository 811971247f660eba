"""A rejected cell or line (``Rejection``: where it is and why) and the messages that list
rejections for a user."""

from __future__ import annotations

from dataclasses import dataclass

from mmfuse._hints import option
from mmfuse.data.cells import printable


@dataclass(frozen=True)
class Rejection:
    """One bad cell or line: where it is and why it was rejected."""

    row: int
    column: str
    reason: str
    file: str = ""

    def __post_init__(self) -> None:
        # undecodable bytes in a path or header (kept as lone surrogates) must not stop the
        # message or rejected.csv from being written: show them as \xNN
        for name in ("column", "reason", "file"):
            object.__setattr__(self, name, printable(getattr(self, name)))


def _summarise_lines(errors: list[Rejection], limit: int = 10) -> str:
    lines = [
        f"  row {e.row}" + (f", column {e.column!r}" if e.column else "") + f": {e.reason}"
        for e in errors[:limit]
    ]
    if len(errors) > limit:
        lines.append(f"  ... and {len(errors) - limit} more")
    return "\n".join(lines)


def every_record_bad(name: str, errors: list[Rejection]) -> str:
    """The message for a table none of whose records could be read: the first ten reasons."""
    return f"{name}: every record is bad:\n" + _summarise_lines(errors)


def summarise_rejections(name: str, errors: list[Rejection]) -> str:
    """The message for bad values: how many, the first ten by row and column, and the fix."""
    rows = len({e.row for e in errors})
    return (
        f"{name}: {len(errors)} bad value(s) in {rows} record(s):\n"
        + _summarise_lines(errors)
        + f"\nFix them, or pass {option('on_bad_record', 'skip')} to leave these records out "
        "(they are listed in rejected.csv)."
    )
