"""Analytics of the caller's tenant or one of its workflows: ``GET /api/v1/analytics``."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Depends, Query, Request
from starlette.responses import Response

from shared.api.auth import Principal, authorize
from shared.api.edge import edge_of
from shared.api.rest._deps import API, principal_of, respond
from shared.api.rest._docs import errors, router_for
from shared.api.rest.audit import Moment
from shared.app.analytics import Analytics, analytics, rollups_of

router = router_for("analytics")


@router.get(f"{API}/analytics", response_model=Analytics, responses=errors(400, 403))
async def get_analytics(
    request: Request,
    principal: Annotated[Principal, Depends(principal_of)],
    workflow_id: Annotated[
        str | None,
        Query(
            alias="workflowId",
            max_length=200,
            description="One workflow's figures; without it, the whole tenant's.",
        ),
    ] = None,
    start: Annotated[
        Moment | None,
        Query(alias="from", description="Window start (RFC 3339); default `to` - 7 days."),
    ] = None,
    end: Annotated[Moment | None, Query(alias="to", description="Window end; default now.")] = None,
    bucket: Annotated[
        Literal["hour", "day"] | None,
        Query(
            description="Bucket size; default hour for windows up to 2 days, else day. "
            "At most 744 hour or 400 day buckets (else 400 `WINDOW_TOO_LARGE`)."
        ),
    ] = None,
) -> Response:
    """Executions by status over time, duration percentiles per workflow and step, step
    failures and retries by error code, the slowest steps, the trigger mix, decision
    routes with their success rates and model usage, from pre-aggregated rollups
    (viewers and up; the window is widened to whole buckets)."""
    authorize(principal, "read", workflow_id)
    app = edge_of(request).app.for_tenant(principal.tenant)
    figures = await analytics(
        rollups_of(app),
        principal.tenant,
        workflow_id=workflow_id,
        start=start,
        end=end,
        bucket=bucket,
    )
    return respond(figures)
