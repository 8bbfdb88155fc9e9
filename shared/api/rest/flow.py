"""Flow-control usage: ``GET /workflows/{id}/concurrency`` (slots in use and queues per
key value of a workflow's ``concurrency`` entries), read like the workflow itself."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path
from starlette.responses import Response

from shared.api.rest._deps import API, Reader, respond
from shared.api.rest._docs import errors, router_for
from shared.app.flow_usage import ConcurrencyUsage, concurrency_usage

router = router_for("workflows")


@router.get(
    f"{API}/workflows/{{workflow_id}}/concurrency",
    response_model=ConcurrencyUsage,
    responses=errors(404),
)
async def get_concurrency(
    workflow_id: Annotated[str, Path(description="The workflow's id.")], caller: Reader
) -> Response:
    """Per key value of the workflow's `concurrency` entries: the limit, the slots held
    (`running`), the executions queued and how long the oldest has waited; busiest
    keys first, at most 200 (`truncated` says when more are in use)."""
    return respond(await concurrency_usage(caller.app, workflow_id))
