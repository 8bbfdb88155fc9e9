"""GraphQL on strawberry's ASGI integration: HTTP (GET queries, POST queries and
mutations, GraphiQL) and WebSocket (``graphql-transport-ws`` subscriptions).

What is ours around strawberry's transport:

- every request is authenticated with the edge's authenticator *before* strawberry
  sees it, then takes a token from the caller's and the tenant's rate limits: HTTP
  answers 401/403/429 with the error body (429 with ``Retry-After``), a WebSocket is
  accepted and closed with 4401/4403/4429 (the status as a close code, as on
  ``/ws/...``);
- requests strawberry refuses (bad JSON, a mutation over GET, a subscription over
  HTTP...) answer in the GraphQL shape, ``{"data": null, "errors": [{"message",
  "extensions": {"code"}}]}``, with a status and a stable code;
- JSON bodies and ``variables`` are parsed with the edge's depth limit.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from cross_web import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import MissingQueryError
from strawberry.http import GraphQLRequestData
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType

from shared.api._json import parse_json
from shared.api.auth import Principal
from shared.api.edge import Edge
from shared.api.errors import error_response, status_for
from shared.api.graphql.context import Context, build_context
from shared.api.graphql.schema import schema
from shared.errors import WorkflowError

_PRINCIPAL = "wfe.principal"
_ALLOWED = {
    "GET": {OperationType.QUERY},
    "POST": {OperationType.QUERY, OperationType.MUTATION},
}
_CODES = {
    "Unable to parse request body as JSON": (400, "INVALID_FORMAT"),
    "Unsupported content type": (415, "UNSUPPORTED_MEDIA_TYPE"),
}


def refusal(status: int, code: str, message: str) -> JSONResponse:
    """A request GraphQL cannot run, in the GraphQL response shape."""
    body = {"data": None, "errors": [{"message": message, "extensions": {"code": code}}]}
    return JSONResponse(body, status_code=status)


class GraphQLApp(GraphQL[Context, None]):
    """The schema over HTTP and WebSocket for the callers the edge authenticates.

    Args:
        edge: the runtime, authenticator and broker of this process.
        http: serve queries and mutations over HTTP (the management API does; the
            stream service answers 405 and serves subscriptions only).
        allowed_origins: browser origins besides the service's own that may open a
            WebSocket (cross-site WebSocket hijacking guard).
    """

    def __init__(
        self, edge: Edge, *, http: bool = True, allowed_origins: Collection[str] = ()
    ) -> None:
        super().__init__(
            schema,
            graphql_ide="graphiql",
            allow_queries_via_get=True,
            subscription_protocols=[GRAPHQL_TRANSPORT_WS_PROTOCOL],
            allowed_origins=tuple(allowed_origins),
        )
        self.edge = edge
        self.serves_http = http

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self.serves_http:
            message = "GraphQL here serves subscriptions over WebSocket (graphql-transport-ws)"
            refused = WorkflowError(message, code="METHOD_NOT_ALLOWED")
            await error_response(refused)(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            principal = await self.edge.authenticator.authenticate(request)
        except WorkflowError as error:
            await error_response(error)(scope, receive, send)
            return
        request.scope[_PRINCIPAL] = principal
        try:
            await self._admit(principal)
        except WorkflowError as error:
            await error_response(error)(scope, receive, send)
            return
        try:
            response = await self.run(request)
        except HTTPException as exc:
            status, code = _CODES.get(exc.reason, (exc.status_code, _code(exc.status_code)))
            response = refusal(status, code, exc.reason)
        await response(scope, receive, send)

    async def _admit(self, principal: Principal) -> None:
        """Take a token from the principal's and the tenant's rate limits (RATE_LIMITED)."""
        quotas = self.edge.app.quotas
        if quotas is not None:
            await quotas.admit_request(principal.subject, principal.tenant)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        if not self._check_websocket_origin(websocket):
            await self.reject_websocket(websocket)
            return
        try:
            principal = await self.edge.authenticator.authenticate(websocket)
        except WorkflowError as error:
            await websocket.accept(subprotocol=await self.pick_websocket_subprotocol(websocket))
            await websocket.close(4000 + status_for(error), error.message[:120])
            return
        try:
            await self._admit(principal)
        except WorkflowError as error:
            await websocket.accept(subprotocol=await self.pick_websocket_subprotocol(websocket))
            await websocket.close(4000 + status_for(error), error.message[:120])
            return
        websocket.scope[_PRINCIPAL] = principal
        await self.run(websocket)

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        principal = request.scope[_PRINCIPAL]
        assert isinstance(principal, Principal)
        context = build_context(principal, self.edge.app, self.edge.broker, request, response)
        context["introspection"] = self.edge.settings.graphql_introspection
        return context

    async def render_graphql_ide(self, request: Request) -> Response:
        if not self.edge.settings.graphql_introspection:
            raise HTTPException(400, "GraphiQL is off while introspection is disabled")
        return await super().render_graphql_ide(request)

    def decode_json(self, data: str | bytes) -> object:
        return parse_json(data)

    async def execute_single(
        self,
        request: Request,
        request_adapter: Any,
        sub_response: Response,
        context: Context,
        root_value: None,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        """Strawberry's, with the operations each method may run: queries over GET,
        queries and mutations over POST (405 for a mutation over GET)."""
        method = request_adapter.method
        if not isinstance(request_data.query, str) or not request_data.query.strip():
            raise HTTPException(400, "'query' must be a non-empty string")
        try:
            result = await self.schema.execute(
                request_data.query,
                root_value=root_value,
                variable_values=request_data.variables,
                context_value=context,
                operation_name=request_data.operation_name,
                allowed_operation_types=_ALLOWED.get(method, set()),
                operation_extensions=request_data.extensions,
            )
        except InvalidOperationTypeError as exc:
            if exc.operation_type == OperationType.SUBSCRIPTION:
                raise HTTPException(
                    400,
                    "subscriptions run over WebSocket (graphql-transport-ws) on /graphql",
                ) from exc
            raise HTTPException(405, exc.as_http_error_reason(method)) from exc
        except CannotGetOperationTypeError as exc:
            raise HTTPException(400, exc.as_http_error_reason()) from exc
        except MissingQueryError as exc:
            raise HTTPException(400, "'query' must be a non-empty string") from exc
        assert isinstance(result, ExecutionResult)
        return result


def _code(status: int) -> str:
    return {405: "METHOD_NOT_ALLOWED", 404: "NOT_FOUND", 415: "UNSUPPORTED_MEDIA_TYPE"}.get(
        status, "INVALID_INPUT"
    )
