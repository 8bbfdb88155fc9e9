"""The status-stream edge: live execution events over WebSocket, SSE and GraphQL.

Routes (``stream_routes``; ``create_stream_app`` serves them with the edge's lifespan):

- ``WS /ws/executions/{id}?after=N``: JSON messages, one per event (the event's
  ``to_json_dict()``), ``{"type": "keepalive"}`` when idle; the client may send
  ``{"resume": N}``. Closes 1000 after the terminal event; 4404 unknown id, 4401/4403
  authentication/authorization, 4400 bad cursor, 1013 consumer too slow.
- ``WS /ws/workflows/{id}?after=<cursor>``: live events of every execution of the
  workflow; the cursor ``<executionId>:<seq>,...`` replays the executions it names.
- ``GET /sse/executions/{id}`` and ``/sse/workflows/{id}``: ``text/event-stream``
  (sse-starlette) with ``id:`` (the seq, or the workflow cursor), ``event: <type>``,
  ``data: <json>``; ``Last-Event-ID`` (or ``?after=``) resumes. A consumer the broker
  cut off gets an ``error`` event with code SLOW_CONSUMER, then the stream ends.
- ``WS /graphql``: GraphQL subscriptions over ``graphql-transport-ws``.
- ``GET /health``.

Credentials: what the edge's authenticator accepts (an API key header), or, for
browsers, a stream token (``shared.api.stream_tokens``) as ``?token=`` or the
WebSocket subprotocol ``wfe-stream-token.<token>``, valid for that one stream.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Collection
from typing import Any

from sse_starlette import EventSourceResponse, ServerSentEvent
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

from shared.api._subscription import SlowConsumer, parse_after
from shared.api._ws import serve_session
from shared.api.auth import Forbidden, authorize
from shared.api.broker import EventStream
from shared.api.edge import Edge
from shared.api.errors import error_response, install_error_handlers
from shared.api.graphql.app import GraphQLApp
from shared.api.middleware import CatchAll
from shared.api.stream_tokens import presented_token, selected_protocol
from shared.errors import WorkflowError
from shared.models import ExecutionEvent
from shared.observability import TelemetryMiddleware

__all__ = ["StreamEndpoints", "create_stream_app", "stream_routes"]

KEEPALIVE_SECONDS = 15.0
RETRY_MILLISECONDS = 2000
"""Reconnection delay suggested to browsers (the ``retry:`` field)."""
SEND_TIMEOUT_SECONDS = 30.0
"""An SSE client that takes no bytes for this long is disconnected."""
SSE_CURSOR_EXECUTIONS = 50
"""A workflow SSE ``id:`` names the executions most recently active, up to this many."""


class StreamEndpoints:
    """The route handlers of one edge, with their settings."""

    def __init__(
        self,
        edge: Edge,
        *,
        keepalive: float = KEEPALIVE_SECONDS,
        allowed_origins: Collection[str] = (),
    ) -> None:
        self.edge = edge
        self.keepalive = keepalive
        self.allowed_origins = normalize_allowed_origins(allowed_origins)

    async def open_stream(
        self,
        connection: HTTPConnection,
        *,
        execution_id: str | None = None,
        workflow_id: str | None = None,
        position: str | None = None,
    ) -> EventStream:
        """Authenticate, check the target exists in the caller's tenant and may be read,
        start. ``position``: a seq for an execution, a cursor for a workflow."""
        token = presented_token(connection)
        if token is None:
            principal = await self.edge.authenticator.authenticate(connection)
        elif workflow_id is not None:
            principal = self.edge.stream_tokens.verify(token, "workflow", workflow_id)
        else:
            assert execution_id is not None
            principal = self.edge.stream_tokens.verify(token, "execution", execution_id)
        broker = self.edge.broker
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

    async def ws_execution(self, websocket: WebSocket) -> None:
        execution_id = websocket.path_params["execution_id"]
        await self._ws(
            websocket,
            lambda pos: self.open_stream(websocket, execution_id=execution_id, position=pos),
        )

    async def ws_workflow(self, websocket: WebSocket) -> None:
        workflow_id = websocket.path_params["workflow_id"]
        await self._ws(
            websocket,
            lambda pos: self.open_stream(websocket, workflow_id=workflow_id, position=pos),
        )

    async def _ws(self, websocket: WebSocket, opener: Callable[[str | None], Any]) -> None:
        if not self._origin_allowed(websocket):
            await websocket.close(1008)  # before accept: the handshake is refused (403)
            return
        await serve_session(
            websocket, opener, self.keepalive, subprotocol=selected_protocol(websocket)
        )

    def _origin_allowed(self, websocket: WebSocket) -> bool:
        """Cross-site WebSocket hijacking guard: browsers send ``Origin``, others do not."""
        origin = websocket.headers.get("origin")
        if origin is None or "*" in self.allowed_origins:
            return True
        if is_same_origin(origin, websocket.headers.get("host")):
            return True
        return normalize_origin(origin) in self.allowed_origins

    async def sse_execution(self, request: Request) -> Response:
        return await self.sse(request, execution_id=request.path_params["execution_id"])

    async def sse_workflow(self, request: Request) -> Response:
        return await self.sse(request, workflow_id=request.path_params["workflow_id"])

    async def sse(
        self, request: Request, *, execution_id: str | None = None, workflow_id: str | None = None
    ) -> Response:
        """SSE of one execution or one workflow; errors before streaming as JSON."""
        # A browser reconnecting sends Last-Event-ID and the original URL: the header wins.
        position = request.headers.get("last-event-id") or request.query_params.get("after")
        try:
            stream = await self.open_stream(
                request, execution_id=execution_id, workflow_id=workflow_id, position=position
            )
        except WorkflowError as error:
            return error_response(error)
        event_id: Callable[[ExecutionEvent], str] = (
            (lambda event: str(event.seq))
            if execution_id is not None
            else (lambda event: stream.cursor(SSE_CURSOR_EXECUTIONS))
        )
        return EventSourceResponse(
            _frames(stream, event_id),
            ping=self.keepalive,
            ping_message_factory=lambda: ServerSentEvent(comment="keepalive"),
            send_timeout=SEND_TIMEOUT_SECONDS,
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    async def health(self, request: Request) -> Response:
        return JSONResponse(
            {
                "status": "ok",
                "service": "status-stream",
                "subscribers": self.edge.broker.subscriber_count,
            }
        )

    def routes(self, *, graphql: bool = True, health: bool = True) -> list[BaseRoute]:
        routes: list[BaseRoute] = [Route("/health", self.health, methods=["GET"])] if health else []
        routes += [
            WebSocketRoute("/ws/executions/{execution_id}", self.ws_execution),
            WebSocketRoute("/ws/workflows/{workflow_id}", self.ws_workflow),
            Route("/sse/executions/{execution_id}", self.sse_execution, methods=["GET"]),
            Route("/sse/workflows/{workflow_id}", self.sse_workflow, methods=["GET"]),
        ]
        if graphql:
            subscriptions = GraphQLApp(self.edge, http=False, allowed_origins=self.allowed_origins)
            routes += [
                WebSocketRoute("/graphql", subscriptions),
                Route("/graphql", subscriptions, methods=["GET", "POST"]),
            ]
        return routes


async def _frames(
    stream: EventStream, event_id: Callable[[ExecutionEvent], str]
) -> AsyncIterator[ServerSentEvent]:
    """The stream's events as SSE frames; ends with the stream or a cut-off."""
    retry: int | None = RETRY_MILLISECONDS  # rides on the first event
    try:
        while True:
            try:
                event = await stream.next()
            except StopAsyncIteration:
                return
            except SlowConsumer as error:
                yield ServerSentEvent(
                    json.dumps({"error": error.to_dict()}, separators=(",", ":")), event="error"
                )
                return
            assert event is not None  # no timeout: sse-starlette sends the keepalives
            yield ServerSentEvent(
                event.wire_json(), id=event_id(event), event=event.type, retry=retry
            )
            retry = None
    finally:
        await stream.aclose()


def stream_routes(
    edge: Edge,
    *,
    keepalive: float = KEEPALIVE_SECONDS,
    allowed_origins: Collection[str] = (),
    graphql: bool = True,
    health: bool = True,
) -> list[BaseRoute]:
    """The stream routes of ``edge`` (the dev server serves them beside the API)."""
    endpoints = StreamEndpoints(edge, keepalive=keepalive, allowed_origins=allowed_origins)
    return endpoints.routes(graphql=graphql, health=health)


def create_stream_app(
    edge: Edge,
    *,
    keepalive: float = KEEPALIVE_SECONDS,
    allowed_origins: Collection[str] = (),
    graphql: bool = True,
    lifespan: bool = True,
) -> Starlette:
    """The ASGI app of the status-stream service; the edge starts with its lifespan.

    ``allowed_origins``: browser origins other than the service's own that may open
    WebSockets and read SSE (CORS); ``["*"]`` for any.
    """
    middleware = [Middleware(TelemetryMiddleware, service="status-stream"), Middleware(CatchAll)]
    if allowed_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(allowed_origins),
                allow_methods=["GET"],
                allow_headers=["Authorization", "X-API-Key", "X-Tenant", "Last-Event-ID"],
            )
        )
    app = Starlette(
        routes=stream_routes(
            edge, keepalive=keepalive, allowed_origins=allowed_origins, graphql=graphql
        ),
        middleware=middleware,
        lifespan=edge.lifespan if lifespan else None,
    )
    app.state.edge = edge
    install_error_handlers(app)
    return app
