"""The one table that maps core errors to HTTP status codes, the error body, and the
exception handlers every edge app installs so that every failure has that body.

``{"error": {"code", "message", "path"?, "errors"?, "details"?}}``: a stable code, a
message, and a JSON pointer for input errors.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi.exceptions import RequestValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Match, Route

from shared.errors import (
    Conflict,
    DefinitionInvalid,
    InputInvalid,
    InvalidState,
    Issue,
    NotFound,
    WorkflowError,
    json_pointer,
)

log = logging.getLogger(__name__)

STATUS_BY_CODE: dict[str, int] = {
    "VALIDATION_FAILED": 422,
    "INVALID_INPUT": 400,
    "INVALID_FORMAT": 400,
    "INVALID_WINDOW": 400,
    "WINDOW_TOO_LARGE": 400,
    "INVALID_SETTINGS": 500,
    "UNAUTHENTICATED": 401,
    "FORBIDDEN": 403,
    "UNKNOWN_PRINCIPAL": 403,
    "TENANT_BINDING_INVALID": 403,
    "TENANT_DISABLED": 403,
    "EVENT_SENDER_NOT_ALLOWED": 403,
    "NOT_FOUND": 404,
    "METHOD_NOT_ALLOWED": 405,
    "CONFLICT": 409,
    "VERSION_MISMATCH": 409,
    "INVALID_STATE": 409,
    "WORKFLOW_INACTIVE": 409,
    "REPLAYED": 409,
    "EXECUTION_ID_REUSED": 409,
    "WORKFLOW_NAME_TAKEN": 409,
    "TENANT_EXISTS": 409,
    "PAYLOAD_TOO_LARGE": 413,
    "UNSUPPORTED_MEDIA_TYPE": 415,
    "RATE_LIMITED": 429,
    "QUOTA_EXCEEDED": 429,
    "TRANSIENT": 503,
}

CODE_BY_STATUS: dict[int, str] = {
    400: "INVALID_INPUT",
    401: "UNAUTHENTICATED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    429: "RATE_LIMITED",
    503: "TRANSIENT",
}
"""The code of a framework-raised HTTP error (no route, wrong method...)."""


RETRY_AFTER_SECONDS = 2
"""``Retry-After`` of a 503: a dependency failed in a way retrying is expected to fix."""


def status_for(error: WorkflowError) -> int:
    """HTTP status of a core error: by code, else by its class (a specific code such as
    ``FLOW_KEY_INVALID`` on an ``InputInvalid`` is still bad input: 400), else 503 when
    retryable, else 500. A QUOTA_EXCEEDED that waiting cannot lift (not retryable:
    maxWorkflows) is 409."""
    if error.code == "QUOTA_EXCEEDED" and not error.retryable:
        return 409
    if error.code in STATUS_BY_CODE:
        return STATUS_BY_CODE[error.code]
    for kind, status in _STATUS_BY_CLASS:
        if isinstance(error, kind):
            return status
    return 503 if error.retryable else 500


_STATUS_BY_CLASS: tuple[tuple[type[WorkflowError], int], ...] = (
    (DefinitionInvalid, 422),
    (InputInvalid, 400),
    (NotFound, 404),
    (Conflict, 409),
    (InvalidState, 409),
)


def error_response(error: Exception) -> JSONResponse:
    """``{"error": {...}}`` with the mapped status; anything unexpected is a logged 500."""
    if isinstance(error, WorkflowError):
        status = status_for(error)
        response = JSONResponse({"error": error.to_dict()}, status_code=status)
        retry_after = error.details.get("retryAfterSeconds") if error.details else None
        if error.code in ("RATE_LIMITED", "QUOTA_EXCEEDED") and isinstance(retry_after, int):
            response.headers["Retry-After"] = str(retry_after)
        elif status == 503:  # a store or queue outage: come back soon
            response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
    log.error("unhandled error", exc_info=error)
    return JSONResponse(
        {"error": {"code": "INTERNAL", "message": "internal error"}}, status_code=500
    )


def _issue(item: dict[str, Any]) -> Issue:
    kind = str(item.get("type", ""))
    if kind == "missing":
        code = "FIELD_REQUIRED"
    elif kind == "extra_forbidden":
        code = "UNKNOWN_FIELD"
    elif kind.endswith(("_type", "_parsing")):
        code = "FIELD_TYPE"
    else:
        code = "INVALID_VALUE"
    return Issue(code, str(item.get("msg", "invalid")), json_pointer(*item.get("loc", ())[1:]))


def validation_error(errors: Sequence[Any]) -> WorkflowError:
    """A request the framework could not validate, as one of our errors.

    Query, path and header parameters, a body that is not JSON, or a body that is
    not an object are INVALID_INPUT (400); a JSON object of the wrong shape (or whose
    fields do not fit together) is VALIDATION_FAILED (422) with one JSON-pointer issue
    per problem.
    """
    items = [dict(item) for item in errors]
    first = items[0] if items else {"loc": (), "msg": "invalid request"}
    where = tuple(first.get("loc", ()))
    if where and where[0] in ("query", "path", "header", "cookie"):
        name = str(where[1]) if len(where) > 1 else ""
        return InputInvalid(
            f"{where[0]} parameter {name!r}: "
            f"{str(first.get('msg', 'invalid')).removeprefix('Value error, ')}",
            path=f"/{name}",
        )
    if first.get("type") == "json_invalid":
        context = first.get("ctx")
        detail = context.get("error", "") if isinstance(context, dict) else ""
        return InputInvalid(f"body is not valid JSON: {detail}".rstrip(": "))
    if len(where) <= 1 and first.get("type") != "value_error":
        return InputInvalid("body must be a JSON object")  # the body: missing, not an object
    return DefinitionInvalid([_issue(item) for item in items])


async def _on_workflow_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, WorkflowError)
    return error_response(exc)


async def _on_validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return error_response(validation_error(exc.errors()))


async def _on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = CODE_BY_STATUS.get(exc.status_code, "INTERNAL" if exc.status_code >= 500 else "ERROR")
    message = str(exc.detail)
    if exc.status_code == 404 and message == "Not Found":
        message = f"no such endpoint: {request.url.path}"
    response = JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=exc.status_code
    )
    response.headers.update(exc.headers or {})
    if exc.status_code == 405:
        allowed = allowed_methods(request)
        response.headers["Allow"] = ", ".join(allowed)
        response.body = response.render(
            {
                "error": {
                    "code": code,
                    "message": f"{request.method} is not allowed here; use {', '.join(allowed)}",
                    "details": {"allowed": allowed},
                }
            }
        )
        response.headers["content-length"] = str(len(response.body))
    return response


def allowed_methods(request: Request) -> list[str]:
    """The methods of the resource the request's path names: every route with the path
    template of the first route that matches it (the router names only one route's)."""
    probe = {**request.scope, "method": ""}
    routes = [r for r in request.app.router.routes if isinstance(r, Route) and r.methods]
    for route in routes:
        if route.matches(probe)[0] != Match.NONE:
            same = (r for r in routes if r.path == route.path)
            return sorted({method for r in same for method in r.methods or ()})
    return []


def install_error_handlers(app: Starlette) -> None:
    """Give every expected failure of ``app`` the one error body (unexpected ones are
    answered by ``shared.api.middleware.CatchAll``, which logs them once)."""
    app.add_exception_handler(WorkflowError, _on_workflow_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(HTTPException, _on_http_error)
