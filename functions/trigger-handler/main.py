"""trigger-handler: Pub/Sub CloudEvents and push bodies, Cloud Scheduler calls and
signed webhooks become executions.

Deploy with ``--target trigger_handler``. Routes (``shared/api/triggers/routes.py``):
``POST /`` or ``/pubsub``, ``POST /schedule/{workflowId}``, ``POST /webhooks/{workflowId}``,
``GET /healthz``.
"""

from __future__ import annotations

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

from shared.composition.hosting import FunctionHost

host = FunctionHost("trigger-handler")
app = host.app
"""The same app for uvicorn: ``uvicorn --app-dir functions/trigger-handler main:app``."""


@functions_framework.aio.http
async def trigger_handler(request: Request) -> Response:
    """Serve one trigger request."""
    return await host.forward(request)
