"""``create``: the management API function (REST under ``/api/v1``, GraphQL, health).

A thin edge: every path and method reaches ``create``, which hands the request to
``shared.api.rest.handle``. Nothing is built at import time; the runtime is built
from the ``WFE_*`` settings on the first request.
"""

from __future__ import annotations

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

from shared.api.rest import handle


@functions_framework.aio.http
async def create(request: Request) -> Response:
    """Serve one request of the management API."""
    return await handle(request)
