"""status-stream: live execution events over WebSocket, GraphQL subscriptions and SSE.

Two targets, both thin wiring over ``shared.api.streams``; nothing is built at
import time (the runtime and the broker come up on the first connection):

- ``app``: the full ASGI app for Cloud Run (WebSocket, GraphQL subscriptions, SSE,
  health). The directory name has a dash, so point uvicorn at it with ``--app-dir``::

      uvicorn --app-dir functions/status-stream main:app --port 8080

- ``status_stream``: SSE and health only, for functions-framework (which cannot
  hold WebSockets)::

      functions-framework --source functions/status-stream/main.py \\
          --target status_stream --asgi
"""

from __future__ import annotations

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

from shared.api.streams import create_app, dispatch_sse

app = create_app()


@functions_framework.aio.http
async def status_stream(request: Request) -> Response:
    """``GET /sse/executions/{id}``, ``GET /sse/workflows/{id}`` and ``GET /health``."""
    return await dispatch_sse(request)
