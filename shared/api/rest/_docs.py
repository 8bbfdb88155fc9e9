"""What the OpenAPI document says of every route besides its own models: the error
body for each status it may answer, and the statuses every authenticated route has."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from shared.api.rest._bodies import GuardedRoute
from shared.api.rest.schemas import ErrorBody

_MEANING = {
    400: "The request is malformed (query, path or body).",
    401: "No valid credentials.",
    403: "The caller's role does not allow this.",
    404: "No such workflow, version or execution in the caller's tenant.",
    409: "The object's state or version does not allow this.",
    413: "The body is larger than allowed.",
    415: "The body's media type is not accepted here.",
    422: "The body is well-formed but invalid; `errors` lists every problem.",
    429: "Too many requests: wait the `Retry-After` seconds (code `RATE_LIMITED`).",
}


_HEADERS: dict[int, dict[str, Any]] = {
    429: {
        "Retry-After": {
            "description": "Seconds to wait before trying again.",
            "schema": {"type": "integer", "minimum": 1},
        }
    }
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries with the error body (and headers) for each status."""
    return {
        status: {
            "model": ErrorBody,
            "description": _MEANING.get(status, "Error."),
            **({"headers": _HEADERS[status]} if status in _HEADERS else {}),
        }
        for status in sorted(set(statuses))
    }


def router_for(tag: str) -> APIRouter:
    """A router of authenticated, rate-limited routes (401 and 429 documented on each)."""
    return APIRouter(tags=[tag], route_class=GuardedRoute, responses=errors(401, 429))


def without_framework_errors(document: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI document without the 422 FastAPI adds to every route with parameters:
    its shape (``HTTPValidationError``) is not ours (``install_error_handlers`` answers
    parameter errors 400 and body errors 422 with ``ErrorBody``), and routes document
    the statuses they answer themselves."""
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.get("responses", {})
            unprocessable = responses.get("422", {})
            schema = unprocessable.get("content", {}).get("application/json", {}).get("schema")
            if schema == {"$ref": "#/components/schemas/HTTPValidationError"}:
                del responses["422"]
    schemas = document.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    return document
