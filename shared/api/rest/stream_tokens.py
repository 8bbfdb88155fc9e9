"""``POST /api/v1/stream-tokens``: a short-lived token a browser opens one stream with."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from urllib.parse import quote

from fastapi import Body, Depends, Request
from pydantic import Field, model_validator
from starlette.responses import Response

from shared.api.auth import Principal, authorize
from shared.api.edge import edge_of
from shared.api.rest._bodies import json_only
from shared.api.rest._deps import API, principal_of, respond
from shared.api.rest._docs import errors, router_for
from shared.api.rest.schemas import _Body
from shared.api.stream_tokens import Target

router = router_for("streams")

_ID = Field(default=None, min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:\-]+$")


class StreamTokenInput(_Body):
    """The one stream the token opens: an execution's or a workflow's."""

    execution_id: str | None = _ID
    workflow_id: str | None = _ID

    @model_validator(mode="after")
    def _one_target(self) -> StreamTokenInput:
        if (self.execution_id is None) == (self.workflow_id is None):
            raise ValueError("name exactly one of executionId and workflowId")
        return self


class StreamToken(_Body):
    token: str
    """Pass as ``?token=`` or as the WebSocket subprotocol ``wfe-stream-token.<token>``."""
    expires_at: datetime
    """After this the token opens nothing (a stream already open goes on)."""
    websocket: str
    """Path of the WebSocket stream, token included."""
    sse: str
    """Path of the server-sent events stream, token included."""


@router.post(
    f"{API}/stream-tokens",
    status_code=201,
    response_model=StreamToken,
    responses=errors(400, 403, 404, 413, 415, 422),
    dependencies=[Depends(json_only)],
)
async def create_stream_token(
    request: Request,
    principal: Annotated[Principal, Depends(principal_of)],
    body: Annotated[StreamTokenInput, Body()],
) -> Response:
    """Mint a token that opens one execution's or workflow's stream for about a minute
    (browsers cannot send an API key header on an EventSource or a WebSocket)."""
    edge = edge_of(request)
    app = edge.app.for_tenant(principal.tenant)
    target: Target
    if body.execution_id is not None:
        execution = await app.get_execution(body.execution_id)  # 404 outside the tenant
        target, target_id, workflow_id = "execution", execution.id, execution.workflow_id
    else:
        assert body.workflow_id is not None
        workflow = await app.get_workflow(body.workflow_id)
        target, target_id, workflow_id = "workflow", workflow.id, workflow.id
    authorize(principal, "read", workflow_id)
    minted = edge.stream_tokens.mint(principal, target, target_id, principal.role_on(workflow_id))
    query = f"?token={quote(minted.token, safe='')}"
    kind = "executions" if target == "execution" else "workflows"
    return respond(
        StreamToken(
            token=minted.token,
            expires_at=minted.expires_at,
            websocket=f"/ws/{kind}/{target_id}{query}",
            sse=f"/sse/{kind}/{target_id}{query}",
        ),
        201,
    )
