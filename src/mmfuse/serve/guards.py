"""What every request passes through: the size limit, the API key, and the metrics.

Pure ASGI middleware (no buffering): a body is counted as it arrives, so an oversized upload
is refused without being held in memory, whether or not it declares its length.
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

PROTECTED = ("/v1/", "/metrics")
"""Paths that need the API key when one is set (the page, /health and /docs stay open)."""


async def send_json(send: Send, status: int, detail: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    """A JSON error ``{"detail": ...}`` as the whole response."""
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()), *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


class TooLarge(Exception):
    """Raised from ``receive`` once a body passes the limit."""


class BodyLimit:
    """413 for a request body larger than ``max_mb`` megabytes (2**20 bytes), declared or streamed."""

    def __init__(self, app: App, max_mb: float) -> None:
        self.app, self.max_mb = app, max_mb
        self.max_bytes = int(max_mb * 2**20)

    def refusal(self, size: str) -> str:
        return (f"the request is larger than the server's limit of {self.max_mb:g} MB ({size}); "
                "send a smaller file, or start the server with a larger --max-request-mb")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await send_json(send, 413, self.refusal(f"{int(declared):,} bytes declared"))
            return
        received, started = 0, False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise TooLarge
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except TooLarge:
            if not started:
                await send_json(send, 413, self.refusal("more than that was sent"))


class ApiKey:
    """401 on the protected paths unless the request carries ``key`` (Bearer or X-API-Key)."""

    def __init__(self, app: App, key: str) -> None:
        self.app, self.key = app, key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(PROTECTED) and not self._allowed(scope):
            await send_json(send, 401, "this server needs an API key: send the header "
                            "'Authorization: Bearer KEY' or 'X-API-Key: KEY'",
                            [(b"www-authenticate", b"Bearer")])
            return
        await self.app(scope, receive, send)

    def _allowed(self, scope: Scope) -> bool:
        headers = dict(scope.get("headers") or [])
        given = headers.get(b"x-api-key", b"")
        auth = headers.get(b"authorization", b"")
        if auth[:7].lower() == b"bearer ":
            given = auth[7:].strip()
        return hmac.compare_digest(given, self.key)


class Metrics:
    """Prometheus metrics of one server: requests, latency, batch sizes, records."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter("mmfuse_requests_total", "HTTP requests by endpoint and status",
                                ["endpoint", "status"], registry=self.registry)
        self.latency = Histogram("mmfuse_request_seconds", "Request latency by endpoint", ["endpoint"],
                                 registry=self.registry,
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
        self.batch = Histogram("mmfuse_batch_size", "Records per model batch", ["target"],
                               registry=self.registry, buckets=(1, 2, 4, 8, 16, 32, 64, 128))
        self.records = Counter("mmfuse_records_total", "Records served by model or index", ["target"],
                               registry=self.registry)

    def on_batch(self, target: str) -> Callable[[int], None]:
        def record(size: int) -> None:
            self.batch.labels(target).observe(size)
            self.records.labels(target).inc(size)

        return record

    def text(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)



class Measured:
    """Counts every request and its latency in ``metrics``, labelled by route."""

    def __init__(self, app: App, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = [500]

        async def tracked(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        started = time.perf_counter()
        try:
            await self.app(scope, receive, tracked)
        finally:
            endpoint = getattr(scope.get("route"), "path", None) or "(unmatched)"
            self.metrics.requests.labels(endpoint, str(status[0])).inc()
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - started)
