"""The management REST API under ``/api/v1`` (plus ``/health`` and GraphQL's door).

``handle(request)`` is the single entry ``functions/create`` calls: it resolves the
route, runs its handler and maps every error to the one JSON error shape. Handlers
live in ``workflows``, ``executions`` and ``meta``; each authenticates, authorizes,
calls one use case of ``shared.app`` and maps the result.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from shared.api.errors import error_response
from shared.api.rest import executions, meta, workflows
from shared.api.rest._router import Call, Route, Router, router
from shared.errors import WorkflowError


async def handle(request: Request) -> Response:
    """Serve one request of the management API; errors become ``{"error": {...}}``."""
    try:
        route, params = router.resolve(request.method, request.url.path)
        return await route.handler(Call(request, params, route.action))
    except Exception as error:
        response = error_response(error)
        if isinstance(error, WorkflowError) and error.code == "METHOD_NOT_ALLOWED":
            response.headers["Allow"] = ", ".join(error.details.get("allowed", ()))
        return response


__all__ = ["Route", "Router", "executions", "handle", "meta", "router", "workflows"]
