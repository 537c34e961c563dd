"""ASGI middleware: request body limits, security headers, latency metrics and access logs.

Pure ASGI (no ``BaseHTTPMiddleware``) so streaming bodies are counted as they arrive and a
request over the limit is answered 413 before the app reads it all.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import structlog

from agent.server.metrics import ServerMetrics

__all__ = ["BodyLimitMiddleware", "ObservabilityMiddleware", "SecurityHeadersMiddleware"]

log = structlog.get_logger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

API_CSP = "default-src 'none'; frame-ancestors 'none'"
CONSOLE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; connect-src 'self'"
)


async def _send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class BodyLimitMiddleware:
    """413 for bodies over ``limit`` bytes (``overrides``: larger limits by path prefix)."""

    def __init__(self, app: ASGIApp, *, limit: int, overrides: dict[str, int] | None = None):
        self.app = app
        self.limit = limit
        self.overrides = overrides or {}

    def _limit_for(self, path: str) -> int:
        for prefix, limit in self.overrides.items():
            if path.startswith(prefix):
                return limit
        return self.limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit_for(scope.get("path", ""))
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await _send_json(send, 400, {"detail": "invalid Content-Length"})
                    return
                if declared > limit:
                    await _send_json(send, 413, {"detail": f"request body over {limit} bytes"})
                    return
        received = 0
        started = False
        refused = False

        async def limited_receive() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # Answer 413 now and tell the app the client went away; whatever the app
                    # then tries to send is dropped.
                    refused = True
                    if not started:
                        await _send_json(send, 413, {"detail": f"request body over {limit} bytes"})
                    return {"type": "http.disconnect"}
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if refused:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, limited_receive, tracking_send)


class SecurityHeadersMiddleware:
    """Headers on every response; a strict CSP for console pages, a none-CSP for the API."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        console = scope.get("path", "").startswith("/console")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                extra = [
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"x-frame-options", b"DENY"),
                    (b"cross-origin-opener-policy", b"same-origin"),
                    (b"content-security-policy", (CONSOLE_CSP if console else API_CSP).encode()),
                ]
                if scope.get("path", "") not in ("/healthz", "/readyz"):
                    extra.append((b"cache-control", b"no-store"))
                headers.extend((k, v) for k, v in extra if k not in present)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


class ObservabilityMiddleware:
    """Latency histogram by route template and one ``http_request`` log event per request.

    Logs the route template, status, duration and the caller's token id; never headers,
    query strings or bodies (they may carry tokens or webhook secrets).
    """

    def __init__(self, app: ASGIApp, *, metrics: Callable[[], ServerMetrics | None]) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or "<unmatched>"
            metrics = self.metrics()
            if metrics is not None:
                metrics.latency.labels(scope.get("method", ""), template, str(status)).observe(
                    elapsed
                )
            state = scope.get("state") or {}
            caller = state.get("caller") if isinstance(state, dict) else None
            log.info(
                "http_request",
                method=scope.get("method"),
                route=template,
                status=status,
                duration_ms=round(elapsed * 1000, 2),
                token_id=getattr(caller, "token_id", None),
            )
