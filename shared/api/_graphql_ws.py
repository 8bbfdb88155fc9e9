"""GraphQL subscriptions (``graphql-transport-ws``) at ``/graphql``, loaded on first use.

The schema is ``shared.api.graphql.schema.schema``; the context comes from an
async ``get_context(request, response)`` in that module or in
``shared.api.graphql.context`` (else strawberry's ``{"request", "response"}``).
Queries and mutations over HTTP belong to the ``create`` function: here
``/graphql`` answers HTTP with 405.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Awaitable, Callable, Collection
from typing import Any, cast

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

from shared.api.errors import error_response
from shared.errors import WorkflowError

log = logging.getLogger(__name__)

SCHEMA_MODULE = "shared.api.graphql.schema"

ContextGetter = Callable[[Any, Any], Awaitable[Any]]


class _SubscriptionsOnly(GraphQL[Any, Any]):
    def __init__(
        self, schema: Any, context_getter: ContextGetter | None, allowed_origins: Collection[str]
    ) -> None:
        super().__init__(
            schema,
            graphql_ide=None,
            allow_queries_via_get=False,
            subscription_protocols=[GRAPHQL_TRANSPORT_WS_PROTOCOL],
            allowed_origins=tuple(allowed_origins),
        )
        self._context_getter = context_getter

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Any:
        if self._context_getter is not None:
            return await self._context_getter(request, response)
        return await super().get_context(request, response)


class LazyGraphQL:
    """The strawberry ASGI app for WebSockets, built when the first client connects."""

    def __init__(self, allowed_origins: Collection[str] = (), module: str = SCHEMA_MODULE) -> None:
        self.allowed_origins = allowed_origins
        self.module = module
        self._app: GraphQL[Any, Any] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            response = error_response(
                WorkflowError(
                    "GraphQL here serves subscriptions over WebSocket (graphql-transport-ws); "
                    "queries and mutations are served by the management API",
                    code="METHOD_NOT_ALLOWED",
                )
            )
            await response(scope, receive, send)
            return
        try:
            app = self.app()
        except ModuleNotFoundError as exc:
            if not (exc.name or "").startswith("shared.api.graphql"):
                raise
            log.error("GraphQL subscriptions unavailable: %s", exc)
            await WebSocket(scope, receive, send).close(1011)  # refused handshake: HTTP 403
            return
        await app(scope, receive, send)

    def app(self) -> GraphQL[Any, Any]:
        if self._app is None:
            module = importlib.import_module(self.module)
            self._app = _SubscriptionsOnly(
                module.schema, _context_getter(module), self.allowed_origins
            )
        return self._app


def _context_getter(schema_module: Any) -> ContextGetter | None:
    """``get_context`` of the schema module, else of the sibling ``context`` module."""
    getter = getattr(schema_module, "get_context", None)
    if getter is None:
        package = schema_module.__name__.rpartition(".")[0]
        try:
            getter = getattr(importlib.import_module(f"{package}.context"), "get_context", None)
        except ModuleNotFoundError:
            getter = None
    return cast(ContextGetter | None, getter)
