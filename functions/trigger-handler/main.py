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

from shared.api.triggers import handle_trigger_request


@functions_framework.aio.http
async def trigger_handler(request: Request) -> Response:
    return await handle_trigger_request(request)
