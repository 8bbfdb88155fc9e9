"""``create``: the management API function (REST under ``/api/v1``, GraphQL, health).

A thin edge: functions-framework hands every request to ``create``, which forwards
it to the FastAPI app (``shared.api.rest.create_management_app``). The app, its
settings and its authenticator are built when this module is imported; the runtime
starts before the first request is served (``shared.composition.hosting``).
"""

from __future__ import annotations

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

from shared.composition.hosting import FunctionHost

host = FunctionHost("create")
app = host.app
"""The same app for uvicorn: ``uvicorn --app-dir functions/create main:app``."""


@functions_framework.aio.http
async def create(request: Request) -> Response:
    """Serve one request of the management API."""
    return await host.forward(request)
