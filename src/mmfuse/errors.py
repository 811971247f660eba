"""User-facing errors. The CLI turns these into exit code 2 and one clear message."""

from __future__ import annotations


class MmfuseError(Exception):
    """A user or data mistake: bad option, unreadable file, wrong column, ...

    The message names what is wrong and, where known, the file, row and column.
    """


class DecodeError(MmfuseError):
    """A single value could not be read or decoded (corrupt or missing media, bad number)."""


class RecordError(MmfuseError):
    """A value in one record is bad; carries where it is so it can be reported or skipped.

    Args:
        reason: What is wrong with the value.
        file: The data file (or "<DataFrame>").
        row: Zero-based row index in the data file.
        column: Column name.
    """

    def __init__(self, reason: str, file: str, row: int, column: str) -> None:
        self.reason = reason
        self.file = file
        self.row = row
        self.column = column
        super().__init__(f"{file}, row {row}, column {column!r}: {reason}")
