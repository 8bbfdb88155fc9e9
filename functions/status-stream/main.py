"""status-stream: live execution events over WebSocket, GraphQL subscriptions and SSE.

Two targets over one app (``shared.api.streams.create_stream_app``), built when this
module is imported; the runtime and the broker start with the app's lifespan:

- ``app``: the ASGI app for Cloud Run (WebSocket, GraphQL subscriptions, SSE,
  health). The directory name has a dash, so point uvicorn at it with ``--app-dir``::

      uvicorn --app-dir functions/status-stream main:app --port 8080

- ``status_stream``: the same app under functions-framework, which serves plain HTTP
  only (SSE and health; no WebSockets)::

      functions-framework --source functions/status-stream/main.py \\
          --target status_stream --asgi
"""

from __future__ import annotations

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

from shared.composition.hosting import FunctionHost

host = FunctionHost("status-stream")
app = host.app


@functions_framework.aio.http
async def status_stream(request: Request) -> Response:
    """``GET /sse/executions/{id}``, ``GET /sse/workflows/{id}`` and ``GET /health``."""
    return await host.forward(request)
