"""The management API: REST under ``/api/v1`` on FastAPI, GraphQL at ``/graphql``.

``create_management_app(edge)`` builds the app the ``create`` function serves:
routes in ``workflows``, ``imports``, ``executions``, ``audit``, ``stream_tokens`` and
``meta`` (each handler declares its caller and role as dependencies and calls one use case),
GraphQL over HTTP and WebSocket on strawberry, FastAPI's OpenAPI document at
``/api/v1/openapi.json`` and Swagger UI at ``/api/v1/docs`` (ReDoc at
``/api/v1/redoc``), served from a package, not a CDN; the web console at ``/console``
(``shared/api/console``) and ``GET /api/v1/session`` (who the caller is) for it.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline
from starlette.routing import Route, WebSocketRoute

from shared.api.console import console_routes
from shared.api.edge import Edge
from shared.api.errors import install_error_handlers
from shared.api.graphql.app import GraphQLApp
from shared.api.middleware import JSON_MEDIA, YAML_MEDIA, CatchAll, RequestGuard
from shared.api.rest import (
    admin,
    analytics,
    audit,
    evaluations,
    executions,
    flow,
    imports,
    meta,
    migration,
    session,
    stream_tokens,
    templates,
    version_diff,
    workflows,
)
from shared.api.rest._audit import AuditMiddleware
from shared.api.rest._deps import API
from shared.api.rest._docs import without_framework_errors
from shared.observability import TelemetryMiddleware

__all__ = ["create_management_app"]

DESCRIPTION = """Manage workflows and their executions.

Errors have one shape, `{"error": {"code", "message", "path"?, "errors"?}}`: a stable
code, a message and, for invalid input, a JSON pointer into what was sent."""


def create_management_app(
    edge: Edge, *, allowed_origins: Collection[str] = (), lifespan: bool = True
) -> FastAPI:
    """The management API of ``edge``; the edge starts with the app's lifespan.

    Args:
        allowed_origins: browser origins besides the service's own that may send
            state-changing requests (a console on another host).
        lifespan: start and stop the edge with the app (False when a parent app,
            such as the dev server, does).
    """
    app = FastAPIOffline(
        title="Workflow Engine API",
        version="1",
        description=DESCRIPTION,
        openapi_url=f"{API}/openapi.json",
        docs_url=f"{API}/docs",
        redoc_url=f"{API}/redoc",
        static_url=f"{API}/docs/static",
        separate_input_output_schemas=False,
        lifespan=edge.lifespan if lifespan else None,
    )
    app.state.edge = edge
    install_error_handlers(app)
    # The routers' routes carry their tags and responses already; one flat table lets
    # a 405 name every method a path has (``errors.allowed_methods``).
    routers = (
        imports,  # before workflows: its path is not a workflow id (405's Allow)
        workflows,
        evaluations,  # guardrail evaluations of a workflow (docs/ai.md)
        version_diff,
        flow,
        templates,
        executions,
        migration,
        analytics,
        audit,
        admin,
        stream_tokens,
        session,
        meta,
    )
    for router in (module.router for module in routers):
        app.router.routes.extend(router.routes)
    graphql = GraphQLApp(edge, allowed_origins=allowed_origins)
    for path in ("/graphql", f"{API}/graphql"):
        app.router.routes.append(Route(path, graphql, methods=["GET", "POST"]))
        app.router.routes.append(WebSocketRoute(path, graphql))
    app.router.routes.extend(console_routes())  # the web console at /console
    openapi = app.openapi

    def document() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = without_framework_errors(openapi())
        return app.openapi_schema

    app.openapi = document  # type: ignore[method-assign]
    app.add_middleware(AuditMiddleware)  # innermost: sees the route, principal and answer
    app.add_middleware(
        RequestGuard, media_types=JSON_MEDIA | YAML_MEDIA, allowed_origins=allowed_origins
    )
    app.add_middleware(CatchAll)
    app.add_middleware(TelemetryMiddleware, service="create")  # outermost: logs carry the trace
    return app
