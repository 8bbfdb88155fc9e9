"""ASGI middleware every edge app runs: the request guard and the last-resort handler.

``RequestGuard`` is the one place that limits bodies (also chunked ones, which carry
no Content-Length), refuses media types the endpoint does not parse (415), and
refuses state-changing requests a browser sends from another site (403). It buffers
the body (at most ``max_body`` bytes) before the app sees the request, so an app
never reads half a body and never answers 413 after it started working.

``CatchAll`` answers an unexpected exception with the 500 error body and logs it
once, with its traceback, instead of letting the server print it line by line.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection
from typing import Any

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
"""Largest body of the management API (a definition, an execution input)."""
JSON_MEDIA = frozenset({"application/json"})
YAML_MEDIA = frozenset({"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def media_type(headers: Headers) -> str:
    return headers.get("content-type", "").split(";")[0].strip().lower()


def _error_body(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}).encode()


async def _answer(send: Send, status: int, code: str, message: str) -> None:
    body = _error_body(code, message)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def same_origin(origin: str, host: str | None) -> bool:
    """``Origin`` names the host the request was sent to (scheme aside)."""
    if not host:
        return False
    return origin.partition("://")[2].rstrip("/").lower() == host.lower()


class RequestGuard:
    """Body size, media type and cross-site checks before the app sees a request.

    Args:
        max_body: largest body accepted, in bytes (413 beyond).
        media_types: media types a body may have (415 otherwise); None accepts any.
        allowed_origins: browser origins besides the service's own that may send
            state-changing requests; ``"*"`` allows every origin.
        check_origin: refuse state-changing requests from other origins (403).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body: int = MAX_BODY_BYTES,
        media_types: Collection[str] | None = None,
        allowed_origins: Collection[str] = (),
        check_origin: bool = True,
    ) -> None:
        self.app = app
        self.max_body = max_body
        self.media_types = frozenset(media_types) if media_types is not None else None
        self.allowed_origins = frozenset(o.rstrip("/").lower() for o in allowed_origins)
        self.check_origin = check_origin

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        refusal = self._refusal(headers)
        if refusal is not None:
            await _answer(send, *refusal)
            return
        body, gone = await self._read(receive)
        if gone:
            return  # the client left before sending its body: nobody to answer
        if body is None:
            await _answer(send, 413, "PAYLOAD_TOO_LARGE", f"body larger than {self.max_body} bytes")
            return
        media = media_type(headers)
        if body and self.media_types is not None and media and media not in self.media_types:
            # No Content-Type at all is read as JSON: no browser sends a body without one.
            accepted = ", ".join(sorted(self.media_types))
            await _answer(send, 415, "UNSUPPORTED_MEDIA_TYPE", f"send the body as {accepted}")
            return
        await self.app(scope, _replay(body, receive), send)

    def _refusal(self, headers: Headers) -> tuple[int, str, str] | None:
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body:
            return 413, "PAYLOAD_TOO_LARGE", f"body of {declared} bytes exceeds {self.max_body}"
        if self.check_origin and not self._origin_allowed(headers):
            return 403, "FORBIDDEN", "cross-site requests may not change state"
        return None

    def _origin_allowed(self, headers: Headers) -> bool:
        origin = headers.get("origin")
        if origin is None or origin == "null":
            # No Origin: not a browser, or a same-origin navigation of an old one.
            # Fetch metadata still tells a cross-site browser request apart.
            return origin is None and headers.get("sec-fetch-site") != "cross-site"
        if "*" in self.allowed_origins or origin.rstrip("/").lower() in self.allowed_origins:
            return True
        return same_origin(origin, headers.get("host"))

    async def _read(self, receive: Receive) -> tuple[bytes | None, bool]:
        """The whole body (None when larger than allowed); whether the client left."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return None, True
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return None, False
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks), False


def _replay(body: bytes, receive: Receive) -> Receive:
    """The buffered body as one message, then the client's own messages."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


class CatchAll:
    """Answers an exception no handler took with the 500 error body, logged once."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            fields: dict[str, Any] = {"method": scope.get("method"), "path": scope.get("path")}
            log.exception("unhandled error", extra={"json_fields": fields})
            if not started:
                await _answer(send, 500, "INTERNAL", "internal error")
