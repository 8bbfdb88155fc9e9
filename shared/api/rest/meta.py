"""Health, the OpenAPI document, and the door to GraphQL."""

from __future__ import annotations

import importlib

from starlette.responses import JSONResponse, Response

from shared.api.rest._edge import respond
from shared.api.rest._router import API, JSON, Call, Payload, router
from shared.api.rest.openapi import build_document
from shared.api.rest.schemas import Health
from shared.api.runtime import get_authenticator

_ANY_JSON = Payload(None, media=(JSON,))


@router.add("GET", "/health", tag="meta", response=Payload(Health), authenticated=False)
@router.add("GET", f"{API}/health", tag="meta", response=Payload(Health), authenticated=False)
async def health(call: Call) -> Response:
    """Liveness: the function is up (touches no dependency)."""
    return respond(Health(status="ok", service="create"))


@router.add("GET", f"{API}/openapi.json", tag="meta", response=_ANY_JSON, authenticated=False)
async def openapi_document(call: Call) -> Response:
    """This API's OpenAPI 3.1 document."""
    return JSONResponse(build_document(router))


@router.add("GET", "/graphql", tag="graphql", response=_ANY_JSON, errors=(400,))
@router.add("POST", "/graphql", tag="graphql", request=_ANY_JSON, response=_ANY_JSON, errors=(400,))
@router.add("GET", f"{API}/graphql", tag="graphql", response=_ANY_JSON, errors=(400,))
@router.add(
    "POST", f"{API}/graphql", tag="graphql", request=_ANY_JSON, response=_ANY_JSON, errors=(400,)
)
async def graphql(call: Call) -> Response:
    """GraphQL queries and mutations (GET for queries, POST for both)."""
    principal = await get_authenticator().authenticate(call.request)
    graphql_api = importlib.import_module("shared.api.graphql")  # on use: owned elsewhere
    response: object = await graphql_api.handle_http(call.request, principal)
    if not isinstance(response, Response):
        raise TypeError("shared.api.graphql.handle_http must return a starlette Response")
    return response
