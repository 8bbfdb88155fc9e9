"""``TelemetryMiddleware``: one SERVER span per HTTP request or WebSocket session."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from opentelemetry.trace import SpanKind, Status, StatusCode

from shared.observability._tracing import extract_context, start_span

__all__ = ["TelemetryMiddleware"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_TRACE_HEADERS = frozenset({b"traceparent", b"tracestate", b"x-cloud-trace-context"})
_TRACED = "wfe.traced"
"""Scope key set by the outermost middleware: inner ones pass the request through."""
access_log = logging.getLogger("wfe.access")


def _access_line(method: str, path: str, status: int, seconds: float) -> None:
    request = {
        "requestMethod": method,
        "requestUrl": path,
        "status": status,
        "latency": f"{seconds:.6f}s",
    }
    access_log.info(
        "%s %s %d", method, path, status, extra={"json_fields": {"httpRequest": request}}
    )


class TelemetryMiddleware:
    """Pure ASGI middleware: continues the caller's trace and opens a span per request.

    The incoming context comes from ``traceparent`` or ``X-Cloud-Trace-Context`` (Cloud
    Run sends both); the span, named ``"<METHOD> <path>"``, is current while the app
    runs, so every log line of the request carries its trace and span ids. Each HTTP
    request ends with one INFO line, ``"<METHOD> <path> <status>"`` with Cloud
    Logging's ``httpRequest`` (status, latency), inside the span. An app wrapped twice
    (the dev server mounts the functions' apps) gets one span and one line, from the
    outer middleware. Lifespan and other scopes pass through untouched.
    """

    def __init__(self, app: ASGIApp, *, service: str = "wfe") -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket") or scope.get(_TRACED):
            await self.app(scope, receive, send)
            return
        scope[_TRACED] = True
        started = time.perf_counter()
        status = 0
        carrier = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in scope.get("headers", ())
            if name.lower() in _TRACE_HEADERS
        }
        method = scope.get("method", "GET") if kind == "http" else "WEBSOCKET"
        path = scope.get("path", "/")
        with start_span(
            f"{method} {path}", parent=extract_context(carrier), kind=SpanKind.SERVER
        ) as span:
            if span.is_recording():
                span.set_attributes(
                    {
                        "http.request.method": method,
                        "url.path": path,
                        "url.scheme": scope.get("scheme", "http"),
                        "network.protocol.version": scope.get("http_version", "1.1"),
                        "wfe.service": self.service,
                    }
                )

            async def traced_send(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = int(message["status"])
                    if span.is_recording():
                        span.set_attribute("http.response.status_code", status)
                        if status >= 500:
                            span.set_status(Status(StatusCode.ERROR))
                await send(message)

            try:
                await self.app(scope, receive, traced_send)
            finally:
                if kind == "http":
                    _access_line(method, path, status or 500, time.perf_counter() - started)
