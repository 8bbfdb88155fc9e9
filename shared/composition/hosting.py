"""Serving a function's app under functions-framework (``--asgi``) and uvicorn.

functions-framework wraps the target in a Starlette app of its own and calls it with
a ``Request``; it runs no lifespan of ours. ``FunctionHost`` builds the function's
app (settings, authenticator, runtime: nothing connects) when ``main.py`` is
imported, runs the app's lifespan (the edge starts) before the first request is
forwarded, and forwards each request's ASGI scope to the app untouched, so FastAPI
and strawberry route and answer it as they would under uvicorn. No request is ever
answered before the edge has started, and none by anything but the app.
"""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from shared.composition.edge import build_function_app
from shared.composition.heap import freeze_startup_heap
from shared.settings import Settings

__all__ = ["FunctionHost"]


class _Forward(Response):
    """A response that hands the request's ASGI scope to another app."""

    def __init__(self, app: ASGIApp) -> None:  # no body, headers or status of its own
        self.app = app
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


class FunctionHost:
    """One function's app, built now, started before the first request it forwards."""

    def __init__(self, service: str, settings: Settings | None = None) -> None:
        app = build_function_app(service, settings)
        assert isinstance(app, Starlette)
        self.app: Starlette = app
        self._lifespan: AbstractAsyncContextManager[object] | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        """Run the app's lifespan startup once (the edge starts); idempotent."""
        if self._lifespan is not None:
            return
        async with self._lock:
            if self._lifespan is None:
                lifespan = self.app.router.lifespan_context(self.app)
                await lifespan.__aenter__()
                self._lifespan = lifespan
                freeze_startup_heap()  # the instance is built (shared.composition.heap)

    async def stop(self) -> None:
        if self._lifespan is not None:
            lifespan, self._lifespan = self._lifespan, None
            await lifespan.__aexit__(None, None, None)

    async def forward(self, request: Request) -> Response:
        """The functions-framework target's answer: the app serves the request."""
        await self.start()
        return _Forward(self.app)
