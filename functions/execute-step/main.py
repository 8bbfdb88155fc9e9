"""execute-step: the Cloud Tasks target; runs one delivery of a step task.

Deploy with ``--target execute_step``. The body is ``{"executionId", "runId",
"wakeSeq"}``; see ``shared/api/tasks.py`` for the codec and the answers.
"""

from __future__ import annotations

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

from shared.composition.hosting import FunctionHost

host = FunctionHost("execute-step")
app = host.app
"""The same app for uvicorn: ``uvicorn --app-dir functions/execute-step main:app``."""


@functions_framework.aio.http
async def execute_step(request: Request) -> Response:
    """Run one delivery of a step task."""
    return await host.forward(request)
