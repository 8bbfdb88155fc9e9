"""The OpenAPI 3.1 document, generated from the router's routes and the models' schemas.

Nothing here is written by hand per endpoint: paths, parameters, bodies, success and
error responses all come from the route table, so the document cannot drift from
what the router dispatches.
"""

from __future__ import annotations

import functools
from collections import Counter
from http import HTTPStatus
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from shared.api.auth import ACTION_ROLE, Role
from shared.api.rest._router import JSON, YAML, Payload, Route, Router
from shared.api.rest.schemas import ErrorBody

Mode = Literal["validation", "serialization"]
Refs = dict[Any, dict[str, Any]]
"""``$ref`` of each ``(model, mode)`` pair."""
_REF = "#/components/schemas/{model}"
_ANY_OBJECT: dict[str, Any] = {"type": "object"}
_DESCRIPTION = (
    "Management API of the workflow engine: workflow definitions and their versions, "
    "executions, their step history and events, and execution control. Errors always "
    'have the shape `{"error": {"code", "message", "path"?, "errors"?}}`. Listings '
    'are paginated: `{"items": [...], "nextCursor": ...}`; pass `nextCursor` back as '
    "`cursor`. Definitions may be sent as JSON or as YAML (`Content-Type: "
    "application/yaml`). In local mode every caller is an owner of the tenant named by "
    "the `X-Tenant` header (default `default`)."
)


def template(route: Route) -> str:
    """The route's path as an OpenAPI path template (``{version:int}`` -> ``{version}``)."""
    return route.path.replace(":int}", "}")


@functools.cache
def build_document(router: Router) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every route of ``router`` (built once per router)."""
    refs, schemas = _schemas(router.routes)
    names = Counter(route.operation_id for route in router.routes)
    paths: dict[str, dict[str, Any]] = {}
    for route in router.routes:
        operation = _operation(route, refs)
        if names[route.operation_id] > 1:  # one handler on several paths
            slug = template(route).strip("/").replace("/", "_").replace(".", "_")
            operation["operationId"] = f"{route.operation_id}_{route.method.lower()}_{slug}"
        paths.setdefault(template(route), {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "Workflow Engine API", "version": "1.0.0", "description": _DESCRIPTION},
        "servers": [{"url": "/"}],
        "tags": [{"name": name} for name in dict.fromkeys(r.tag for r in router.routes)],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "bearer": {"type": "http", "scheme": "bearer"},
            },
        },
    }


def _schemas(
    routes: list[Route],
) -> tuple[Refs, dict[str, Any]]:
    """``$ref`` of each (model, mode) the routes use, and every component schema."""
    pairs: dict[tuple[type[BaseModel], Mode], None] = {(ErrorBody, "serialization"): None}
    for route in routes:
        if route.request is not None and route.request.model is not None:
            pairs[(route.request.model, "validation")] = None
        if route.response is not None and route.response.model is not None:
            pairs[(route.response.model, "serialization")] = None
    refs, top = models_json_schema(list(pairs), by_alias=True, ref_template=_REF)
    return dict(refs), dict(top.get("$defs", {}))


def _schema_of(payload: Payload, mode: Mode, refs: Refs) -> dict[str, Any]:
    if payload.model is None:
        return dict(_ANY_OBJECT)
    ref = refs[(payload.model, mode)]
    if payload.many:
        return {"oneOf": [ref, {"type": "array", "items": ref}]}
    return ref


def _operation(route: Route, refs: Refs) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": route.operation_id,
        "summary": route.summary,
        "tags": [route.tag],
        "parameters": _parameters(route),
        "responses": _responses(route, refs),
        "security": [{"apiKey": []}, {"bearer": []}] if route.authenticated else [],
    }
    if route.request is not None:
        schema = _schema_of(route.request, "validation", refs)
        operation["requestBody"] = {
            "required": route.request.required,
            "content": {media: {"schema": schema} for media in route.request.media},
        }
        if YAML in route.request.media:
            operation["requestBody"]["description"] = (
                "JSON, or YAML with `Content-Type: application/yaml`"
                + (" (several `---` documents allowed)" if route.request.many else "")
            )
    return operation


def _parameters(route: Route) -> list[dict[str, Any]]:
    parameters: list[dict[str, Any]] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "integer", "minimum": 1} if is_int else {"type": "string"},
        }
        for name, is_int in route.path_params
    ]
    for query in route.query:
        parameters.append(
            {
                "name": query.name,
                "in": "query",
                "required": False,
                "description": query.description,
                "schema": dict(query.schema),
            }
        )
    if "ETag" in route.headers and route.method == "PUT":
        parameters.append(
            {
                "name": "If-Match",
                "in": "header",
                "required": False,
                "description": "Expected current version; 409 VERSION_MISMATCH otherwise.",
                "schema": {"type": "string"},
            }
        )
    return parameters


def _responses(route: Route, refs: Refs) -> dict[str, Any]:
    success: dict[str, Any] = {"description": HTTPStatus(route.status).phrase}
    if route.response is not None:
        schema = _schema_of(route.response, "serialization", refs)
        success["content"] = {media: {"schema": schema} for media in route.response.media}
    if route.headers:
        success["headers"] = {name: {"schema": {"type": "string"}} for name in route.headers}
    responses: dict[str, Any] = {str(route.status): success}
    error = {JSON: {"schema": refs[(ErrorBody, "serialization")]}}
    codes = (*route.errors, *_auth_errors(route))
    for code in sorted(set(codes)):
        responses[str(code)] = {"description": HTTPStatus(code).phrase, "content": error}
    return responses


def _auth_errors(route: Route) -> tuple[int, ...]:
    """401 for every authenticated route; 403 where the action needs more than viewer."""
    if not route.authenticated:
        return ()
    if route.action is not None and ACTION_ROLE[route.action] > Role.VIEWER:
        return (401, 403)
    return (401,)
