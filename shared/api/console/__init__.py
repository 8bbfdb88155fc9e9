"""The web console: a no-build single-page app served at ``/console`` (docs/console.md).

``console_routes()`` serves ``static/`` (plain ES modules, the vendored libraries under
``static/vendor/``) on the management app's origin, so the console talks only to the
public REST API, GraphQL and streams of that origin. Every answer carries a strict
Content-Security-Policy: everything from the console's own origin only, no inline
script except the import map of ``index.html`` (allowed by its SHA-256 hash), no
framing. Application files are revalidated on every load (``no-cache`` with their
ETag); the vendored libraries, pinned by ``console/package-lock.json``, are cached.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from functools import cache
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

__all__ = ["STATIC", "console_routes", "content_security_policy"]

STATIC = Path(__file__).parent / "static"
PREFIX = "/console"
_IMPORT_MAP = re.compile(r'<script type="importmap">(.*?)</script>', re.DOTALL)


NONCE = "{{CSP_NONCE}}"
"""Stands in index.html for the nonce of each answer (CodeMirror's style elements)."""


@cache
def _index_template() -> str:
    return (STATIC / "index.html").read_text(encoding="utf-8")


@cache
def _import_map_hashes() -> tuple[str, ...]:
    return tuple(
        "'sha256-" + base64.b64encode(hashlib.sha256(m.encode()).digest()).decode() + "'"
        for m in _IMPORT_MAP.findall(_index_template())
    )


def content_security_policy(nonce: str | None = None) -> str:
    """The console's policy: the import map is its only inline script, pinned by hash;
    the only inline styles are the editor's ``<style>`` elements, carrying the page's
    nonce (a fresh one per load of index.html; files other than index.html get none)."""
    style = "style-src 'self'" + (f" 'nonce-{nonce}'" if nonce else "")
    return "; ".join(
        [
            "default-src 'self'",
            " ".join(["script-src 'self'", *_import_map_hashes()]),
            style,
            "img-src 'self' data:",
            "font-src 'self'",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


def _security_headers(cache_control: str, nonce: str | None = None) -> dict[str, str]:
    return {
        "Content-Security-Policy": content_security_policy(nonce),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
        "Cache-Control": cache_control,
    }


class _ConsoleFiles(StaticFiles):
    """``StaticFiles`` with the console's headers on every answer (404s included)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        cache_control = "public, max-age=86400" if "/vendor/" in path else "no-cache"
        headers = _security_headers(cache_control)

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                raw = [(k, v) for k, v in message.get("headers", []) if k != b"cache-control"]
                raw += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
                message = {**message, "headers": raw}
            await send(message)

        await super().__call__(scope, receive, with_headers)


async def _index(request: Request) -> Response:
    nonce = secrets.token_urlsafe(18)
    body = _index_template().replace(NONCE, nonce)
    headers = _security_headers("no-store", nonce)
    return Response(body, media_type="text/html", headers=headers)


def console_routes() -> list[BaseRoute]:
    """``/console`` and ``/console/`` (index.html) and the files under ``/console/``."""
    return [
        Route(PREFIX, _index, methods=["GET", "HEAD"]),
        Route(f"{PREFIX}/", _index, methods=["GET", "HEAD"]),
        Route(f"{PREFIX}/index.html", _index, methods=["GET", "HEAD"]),
        Mount(PREFIX, _ConsoleFiles(directory=STATIC, html=False), name="console"),
    ]
