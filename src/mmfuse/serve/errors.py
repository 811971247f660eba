"""The one error type of the server: a request it refuses, with its HTTP status."""

from __future__ import annotations


class RequestError(Exception):
    """A request the server refuses: ``status`` (4xx) and a message for the client that names
    the field and says what to do."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
