"""The status-stream edge: live execution events over WebSocket, SSE and GraphQL.

Routes (``create_app``):

- ``WS /ws/executions/{id}?after=N``: JSON messages, one per event (the event's
  ``to_json_dict()``), ``{"type": "keepalive"}`` when idle; the client may send
  ``{"resume": N}``. Closes 1000 after the terminal event; 4404 unknown id, 4401/4403
  authentication/authorization, 4400 bad cursor, 1013 consumer too slow.
- ``WS /ws/workflows/{id}?after=<cursor>``: live events of every execution of the
  workflow; the cursor ``<executionId>:<seq>,...`` replays the executions it names.
- ``GET /sse/executions/{id}`` and ``/sse/workflows/{id}``: ``text/event-stream``
  with ``id:`` (the seq, or the workflow cursor), ``event: <type>``, ``data: <json>``;
  ``Last-Event-ID`` (or ``?after=``) resumes.
- ``WS /graphql``: GraphQL subscriptions over ``graphql-transport-ws``.
- ``GET /health``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Collection
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket
from strawberry.http.websocket_origin import (
    is_same_origin,
    normalize_allowed_origins,
    normalize_origin,
)

from shared.api._graphql_ws import LazyGraphQL
from shared.api._sse import KEEPALIVE_SECONDS, EventSourceResponse
from shared.api._subscription import parse_after
from shared.api._ws import serve_session
from shared.api.auth import Forbidden, authorize
from shared.api.broker import EventStream, current_broker, get_broker
from shared.api.errors import error_response
from shared.api.runtime import get_authenticator
from shared.errors import NotFound, WorkflowError
from shared.models import ExecutionEvent

__all__ = ["StreamEndpoints", "create_app", "dispatch_sse", "open_stream"]

SSE_CURSOR_EXECUTIONS = 50
"""A workflow SSE ``id:`` names the executions most recently active, up to this many."""
_SSE_PATH = re.compile(r"(?:^|/)sse/(executions|workflows)/([^/]+)/?$")


async def open_stream(
    connection: HTTPConnection,
    *,
    execution_id: str | None = None,
    workflow_id: str | None = None,
    position: str | None = None,
) -> EventStream:
    """Authenticate, check the target exists in the caller's tenant and may be read, start.

    ``position`` is the client's resume point: a seq for an execution, a cursor
    ``<executionId>:<seq>,...`` for a workflow.
    """
    principal = await get_authenticator().authenticate(connection)
    broker = await get_broker()
    if workflow_id is not None:
        authorize(principal, "read", workflow_id)
        stream = broker.open(
            tenant=principal.tenant, workflow_id=workflow_id, cursor=position or None
        )
    else:
        stream = broker.open(
            tenant=principal.tenant, execution_id=execution_id, after=parse_after(position)
        )
    await stream.start()
    if stream.execution is not None:
        try:
            authorize(principal, "read", stream.execution.workflow_id)
        except Forbidden:
            await stream.aclose()
            raise
    return stream


class StreamEndpoints:
    """The route handlers, with their settings (bound methods, so no app state needed)."""

    def __init__(
        self, *, keepalive: float = KEEPALIVE_SECONDS, allowed_origins: Collection[str] = ()
    ) -> None:
        self.keepalive = keepalive
        self.allowed_origins = normalize_allowed_origins(allowed_origins)

    async def ws_execution(self, websocket: WebSocket) -> None:
        execution_id = websocket.path_params["execution_id"]
        await self._ws(
            websocket, lambda pos: open_stream(websocket, execution_id=execution_id, position=pos)
        )

    async def ws_workflow(self, websocket: WebSocket) -> None:
        workflow_id = websocket.path_params["workflow_id"]
        await self._ws(
            websocket, lambda pos: open_stream(websocket, workflow_id=workflow_id, position=pos)
        )

    async def _ws(self, websocket: WebSocket, opener: Callable[[str | None], Any]) -> None:
        if not self._origin_allowed(websocket):
            await websocket.close(1008)  # before accept: the handshake is refused (403)
            return
        await serve_session(websocket, opener, self.keepalive)

    def _origin_allowed(self, websocket: WebSocket) -> bool:
        """Cross-site WebSocket hijacking guard: browsers send ``Origin``, others do not."""
        origin = websocket.headers.get("origin")
        if origin is None or "*" in self.allowed_origins:
            return True
        if is_same_origin(origin, websocket.headers.get("host")):
            return True
        return normalize_origin(origin) in self.allowed_origins

    async def sse_execution(self, request: Request) -> Response:
        return await self.sse(request, "executions", request.path_params["execution_id"])

    async def sse_workflow(self, request: Request) -> Response:
        return await self.sse(request, "workflows", request.path_params["workflow_id"])

    async def sse(self, request: Request, kind: str, target_id: str) -> Response:
        """SSE of one execution or one workflow; errors before streaming as JSON."""
        # A browser reconnecting sends Last-Event-ID and the original URL: the header wins.
        position = request.headers.get("last-event-id") or request.query_params.get("after")
        try:
            if kind == "executions":
                stream = await open_stream(request, execution_id=target_id, position=position)
            else:
                stream = await open_stream(request, workflow_id=target_id, position=position)
        except WorkflowError as error:
            return error_response(error)
        event_id: Callable[[ExecutionEvent], str] = (
            (lambda event: str(event.seq))
            if kind == "executions"
            else (lambda event: stream.cursor(SSE_CURSOR_EXECUTIONS))
        )
        return EventSourceResponse(stream, event_id=event_id, keepalive=self.keepalive)

    async def dispatch_sse(self, request: Request) -> Response:
        """Route by path alone (the functions-framework target gets every path)."""
        path = request.url.path
        if path.rstrip("/").endswith("/health"):
            return await self.health(request)
        match = _SSE_PATH.search(path)
        if match is None or request.method != "GET":
            return error_response(NotFound(f"no stream at {request.method} {path}"))
        return await self.sse(request, match.group(1), match.group(2))

    async def health(self, request: Request) -> Response:
        broker = current_broker()  # a health check builds nothing
        return JSONResponse(
            {
                "status": "ok",
                "service": "status-stream",
                "subscribers": broker.subscriber_count if broker is not None else 0,
            }
        )

    def routes(self, *, graphql: bool = True) -> list[BaseRoute]:
        routes: list[BaseRoute] = [
            Route("/health", self.health, methods=["GET"]),
            WebSocketRoute("/ws/executions/{execution_id}", self.ws_execution),
            WebSocketRoute("/ws/workflows/{workflow_id}", self.ws_workflow),
            Route("/sse/executions/{execution_id}", self.sse_execution, methods=["GET"]),
            Route("/sse/workflows/{workflow_id}", self.sse_workflow, methods=["GET"]),
        ]
        if graphql:
            lazy = LazyGraphQL(allowed_origins=self.allowed_origins)
            routes += [
                WebSocketRoute("/graphql", lazy),
                Route("/graphql", lazy, methods=["GET", "POST"]),
            ]
        return routes


def create_app(
    *,
    keepalive: float = KEEPALIVE_SECONDS,
    allowed_origins: Collection[str] | None = None,
    graphql: bool = True,
) -> Starlette:
    """The ASGI app of the status-stream service (builds nothing until a client comes).

    ``allowed_origins``: browser origins other than the service's own that may open
    WebSockets and read SSE (CORS); ``["*"]`` for any. Default: the comma-separated
    ``WFE_STREAM_ALLOWED_ORIGINS`` variable, else none.
    """
    if allowed_origins is None:
        raw = os.environ.get("WFE_STREAM_ALLOWED_ORIGINS", "")
        allowed_origins = [origin.strip() for origin in raw.split(",") if origin.strip()]
    endpoints = StreamEndpoints(keepalive=keepalive, allowed_origins=allowed_origins)
    middleware = []
    if allowed_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(allowed_origins),
                allow_methods=["GET"],
                allow_headers=["Authorization", "X-API-Key", "X-Tenant", "Last-Event-ID"],
            )
        )
    return Starlette(routes=endpoints.routes(graphql=graphql), middleware=middleware)


_default = StreamEndpoints()


async def dispatch_sse(request: Request) -> Response:
    """SSE and health for a plain HTTP function (functions-framework cannot hold WebSockets)."""
    return await _default.dispatch_sse(request)
