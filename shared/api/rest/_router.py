"""A small router: method + path pattern -> async handler, with the facts OpenAPI needs.

Patterns use ``{name}`` for one path segment and ``{name:int}`` for a number. Each
route carries its documentation (summary from the handler's docstring, query
parameters, request and response payloads, error statuses) so the OpenAPI document
is generated from the same table that dispatches requests.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from shared.errors import NotFound, WorkflowError

API = "/api/v1"
JSON = "application/json"
YAML = "application/yaml"

_PARAM = re.compile(r"\{([a-z_]+)(?::(int))?\}")


@dataclass(frozen=True)
class Call:
    """One request as a handler sees it: the request, its path parameters, its action."""

    request: Request
    params: Mapping[str, Any]
    action: str | None = None
    """What the route does, for ``authorize`` (read, write, execute, operate, delete)."""

    def path(self, name: str) -> str:
        """A string path parameter."""
        return str(self.params[name])

    def number(self, name: str) -> int:
        """An ``{name:int}`` path parameter."""
        return int(self.params[name])


Handler = Callable[[Call], Awaitable[Response]]


@dataclass(frozen=True)
class Query:
    """A documented query parameter."""

    name: str
    schema: Mapping[str, Any]
    description: str


@dataclass(frozen=True)
class Payload:
    """A documented request or response body.

    ``model`` None means any JSON object; ``many`` also allows a list of them.
    """

    model: type[BaseModel] | None = None
    media: tuple[str, ...] = (JSON,)
    required: bool = True
    many: bool = False


@dataclass(frozen=True)
class Route:
    """One operation: where it is, what runs it and what it documents."""

    method: str
    path: str
    handler: Handler
    tag: str
    status: int = 200
    request: Payload | None = None
    response: Payload | None = None
    query: tuple[Query, ...] = ()
    errors: tuple[int, ...] = ()
    action: str | None = None
    """The action handlers authorize (``ACTION_ROLE`` key); None when they do not."""
    authenticated: bool = True
    headers: tuple[str, ...] = ()
    """Response headers set on success (``Location``, ``ETag``)."""
    regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        pattern = _PARAM.sub(
            lambda m: rf"(?P<{m[1]}>\d+)" if m[2] else rf"(?P<{m[1]}>[^/]+)", self.path
        )
        object.__setattr__(self, "regex", re.compile(f"^{pattern}$"))

    @property
    def operation_id(self) -> str:
        return self.handler.__name__.lstrip("_")

    @property
    def summary(self) -> str:
        doc = inspect.getdoc(self.handler) or self.operation_id
        return doc.splitlines()[0].rstrip(".")

    @property
    def path_params(self) -> list[tuple[str, bool]]:
        """``(name, is_int)`` of each path parameter, in order."""
        return [(m[1], bool(m[2])) for m in _PARAM.finditer(self.path)]

    def match(self, path: str) -> dict[str, Any] | None:
        found = self.regex.match(path)
        if found is None:
            return None
        ints = {name for name, is_int in self.path_params if is_int}
        return {k: int(v) if k in ints else v for k, v in found.groupdict().items()}


class MethodNotAllowed(WorkflowError):
    code = "METHOD_NOT_ALLOWED"


class Router:
    """Routes in registration order; a path without parameters wins over one with."""

    def __init__(self) -> None:
        self.routes: list[Route] = []

    def add(self, method: str, path: str, *, tag: str, **doc: Any) -> Callable[[Handler], Handler]:
        """Decorator: register the handler for ``method path`` with its documentation."""

        def register(handler: Handler) -> Handler:
            self.routes.append(Route(method, path, handler, tag, **doc))
            return handler

        return register

    def resolve(self, method: str, path: str) -> tuple[Route, dict[str, Any]]:
        """The route and path parameters for a request; NOT_FOUND or METHOD_NOT_ALLOWED."""
        if len(path) > 1:
            path = path.rstrip("/")
        matches = [(r, p) for r in self.routes if (p := r.match(path)) is not None]
        if not matches:
            raise NotFound(f"no such endpoint: {path}")
        for route, params in sorted(matches, key=lambda m: len(m[1])):
            if route.method == method:
                return route, params
        allowed = sorted({route.method for route, _ in matches})
        raise MethodNotAllowed(f"{method} is not allowed on {path}", details={"allowed": allowed})


router = Router()
"""The table every handler module registers into."""
