"""GraphQL over HTTP for the management function (``POST/GET /graphql``).

POST takes ``{"query", "variables", "operationName"}`` as JSON. GET takes the same
as query parameters and runs queries only (a mutation over GET answers 405); a GET
without ``query`` from a browser gets GraphiQL while introspection is enabled.
Every answer has the GraphQL shape ``{"data", "errors"}``; requests that cannot be
run at all get a 4xx with a single error carrying ``extensions.code``.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from strawberry.exceptions import MissingQueryError
from strawberry.http.ides import get_graphql_ide_html
from strawberry.schema.exceptions import InvalidOperationTypeError
from strawberry.types.graphql import OperationType

from shared.api.auth import Principal
from shared.api.graphql.context import build_context
from shared.api.graphql.limits import introspection_enabled
from shared.api.graphql.schema import schema

MAX_BODY_BYTES = 1024 * 1024
"""Largest request body accepted (a document plus its variables)."""


class _Refused(Exception):
    """A request that cannot be run: its HTTP status and error code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _refusal(status: int, code: str, message: str) -> JSONResponse:
    body = {"data": None, "errors": [{"message": message, "extensions": {"code": code}}]}
    return JSONResponse(body, status_code=status)


def _wants_ide(request: Request) -> bool:
    return (
        request.method == "GET"
        and "query" not in request.query_params
        and "text/html" in request.headers.get("accept", "")
        and introspection_enabled()
    )


async def _read_post(request: Request) -> dict[str, Any]:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise _Refused(415, "UNSUPPORTED_MEDIA_TYPE", "send the operation as application/json")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _Refused(413, "PAYLOAD_TOO_LARGE", f"body larger than {MAX_BODY_BYTES} bytes")
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise _Refused(413, "PAYLOAD_TOO_LARGE", f"body larger than {MAX_BODY_BYTES} bytes")
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _Refused(400, "INVALID_FORMAT", "the body is not valid JSON") from exc
    if not isinstance(data, dict):
        raise _Refused(400, "INVALID_INPUT", "the body must be a JSON object")
    return data


def _read_get(request: Request) -> dict[str, Any]:
    params = request.query_params
    data: dict[str, Any] = {
        "query": params.get("query"),
        "operationName": params.get("operationName"),
    }
    if "variables" in params:
        try:
            data["variables"] = json.loads(params["variables"])
        except json.JSONDecodeError as exc:
            raise _Refused(400, "INVALID_FORMAT", "'variables' is not valid JSON") from exc
    return data


def _operation(data: dict[str, Any]) -> tuple[str, dict[str, Any] | None, str | None]:
    query, variables, name = data.get("query"), data.get("variables"), data.get("operationName")
    if not isinstance(query, str) or not query.strip():
        raise _Refused(400, "INVALID_INPUT", "'query' must be a non-empty string")
    if variables is not None and not isinstance(variables, dict):
        raise _Refused(400, "INVALID_INPUT", "'variables' must be a JSON object")
    if name is not None and not isinstance(name, str):
        raise _Refused(400, "INVALID_INPUT", "'operationName' must be a string")
    return query, variables, name


async def handle_http(request: Request, principal: Principal) -> Response:
    """Run one GraphQL operation for an authenticated principal."""
    if _wants_ide(request):
        return HTMLResponse(get_graphql_ide_html("graphiql"))
    if request.method not in ("GET", "POST"):
        return _refusal(405, "METHOD_NOT_ALLOWED", "use GET or POST")
    try:
        data = await _read_post(request) if request.method == "POST" else _read_get(request)
        query, variables, name = _operation(data)
    except _Refused as refused:
        return _refusal(refused.status, refused.code, refused.message)
    allowed = (
        (OperationType.QUERY,)
        if request.method == "GET"
        else (OperationType.QUERY, OperationType.MUTATION)
    )
    try:
        result = await schema.execute(
            query,
            variable_values=variables,
            context_value=await build_context(principal, request),
            operation_name=name,
            allowed_operation_types=allowed,
        )
    except InvalidOperationTypeError as exc:
        if exc.operation_type == OperationType.SUBSCRIPTION:
            return _refusal(
                400,
                "INVALID_INPUT",
                "subscriptions run over WebSocket (graphql-transport-ws) on the stream server",
            )
        return _refusal(405, "METHOD_NOT_ALLOWED", exc.as_http_error_reason(request.method))
    except MissingQueryError:
        return _refusal(400, "INVALID_INPUT", "'query' must be a non-empty string")
    body: dict[str, Any] = {"data": result.data}
    if result.errors:
        body["errors"] = [error.formatted for error in result.errors]
    return JSONResponse(body)
