"""Request bodies at the edge: JSON (through FastAPI) and definitions as JSON or YAML.

Size and media type were checked by ``RequestGuard`` before the handler runs. What
is left here is parsing that cannot take the service down: a document nested deeper
than ``MAX_DEPTH`` (or deep enough to exhaust the parser's recursion) is refused
with INVALID_INPUT, never a RecursionError and a 500.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

import yaml
from fastapi import Request
from fastapi.routing import APIRoute
from starlette.responses import Response

from shared.api._json import MAX_DEPTH, parse_json, too_deep
from shared.api.middleware import JSON_MEDIA, YAML_MEDIA, media_type
from shared.errors import InputInvalid
from shared.models.safe_yaml import load_yaml_documents


class _GuardedRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            try:
                self._json = parse_json(await self.body())
            except UnicodeDecodeError as exc:
                raise json.JSONDecodeError(f"not UTF-8: {exc.reason}", "", 0) from None
        return self._json


class GuardedRoute(APIRoute):
    """A route whose JSON bodies are parsed by ``parse_json`` (depth-limited)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            return await handler(_GuardedRequest(request.scope, request.receive))

        return guarded


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputInvalid(f"body is not UTF-8: {exc.reason}") from exc


def _is_yaml(request: Request) -> bool:
    return media_type(request.headers) in YAML_MEDIA


def _json_document(text: str) -> Any:
    try:
        return parse_json(text)
    except json.JSONDecodeError as exc:
        raise InputInvalid(f"body is not valid JSON: {exc.msg}") from exc


async def _text(request: Request) -> str:
    text = _decode(await request.body())
    if not text.strip():
        raise InputInvalid("body is required")
    return text


async def read_documents(request: Request) -> list[Any]:
    """Definition bodies: JSON (an object or a list) or YAML (one or more documents)."""
    text = await _text(request)
    if not _is_yaml(request):
        body = _json_document(text)
        return body if isinstance(body, list) else [body]
    try:
        documents = load_yaml_documents(text)
    except yaml.YAMLError as exc:
        raise InputInvalid(f"body is not valid YAML: {exc}".splitlines()[0]) from exc
    except RecursionError:
        raise InputInvalid(f"body is nested deeper than {MAX_DEPTH} levels") from None
    if not documents:
        raise InputInvalid("body holds no YAML document")
    if too_deep(documents, MAX_DEPTH + 1):
        raise InputInvalid(f"body is nested deeper than {MAX_DEPTH} levels")
    return documents


async def read_definition(request: Request) -> dict[str, Any]:
    """One definition document, as JSON or YAML."""
    if _is_yaml(request):
        documents = await read_documents(request)
    else:
        documents = [_json_document(await _text(request))]
    if len(documents) != 1 or not isinstance(documents[0], dict):
        raise InputInvalid("body must hold exactly one definition object")
    document: dict[str, Any] = documents[0]
    return document


def if_match_version(raw: str | None) -> int | None:
    """The version an ``If-Match`` header expects (``3``, ``"3"`` or ``W/"3"``)."""
    if raw is None or raw.strip() == "*":
        return None
    value = raw.strip().removeprefix("W/").strip('"')
    if not value.isdigit():
        raise InputInvalid(f"If-Match must be a workflow version, not {raw!r}")
    return int(value)


def definition_body(*, many: bool = False) -> dict[str, Any]:
    """``openapi_extra`` documenting a definition body in JSON or YAML."""
    schema: dict[str, Any] = {"$ref": "#/components/schemas/WorkflowDefinition"}
    if many:
        schema = {"anyOf": [schema, {"type": "array", "items": schema, "minItems": 1}]}
    yaml_schema = schema if not many else {"$ref": "#/components/schemas/WorkflowDefinition"}
    content = {media: {"schema": schema} for media in sorted(JSON_MEDIA)}
    content.update({"application/yaml": {"schema": yaml_schema}})
    return {"requestBody": {"required": True, "content": content}}


async def json_only(request: Request) -> None:
    """Dependency of routes whose body is JSON only (YAML is for definitions)."""
    if _is_yaml(request):
        raise UnsupportedMediaType("this endpoint takes application/json")


class UnsupportedMediaType(InputInvalid):
    code = "UNSUPPORTED_MEDIA_TYPE"
