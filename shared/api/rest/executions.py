"""Execution endpoints: queries, step history, events, and control."""

from __future__ import annotations

from typing import Annotated

from fastapi import Body, Depends, Path, Query
from pydantic import AwareDatetime, BeforeValidator
from starlette.responses import JSONResponse, Response

from shared.api.rest._bodies import json_only
from shared.api.rest._deps import (
    API,
    ExecutionOperator,
    ExecutionReader,
    Reader,
    dump,
    respond,
    respond_page,
)
from shared.api.rest._docs import errors, router_for
from shared.api.rest.schemas import (
    CancelInput,
    EventInput,
    EventPage,
    ExecutionDetail,
    ExecutionPage,
    ExecutionView,
    SignalResult,
    StepList,
    StepRunView,
)
from shared.api.rest.workflows import Cursor, Limit
from shared.app.flow_usage import queue_views
from shared.errors import InputInvalid
from shared.models import ExecutionStatus

router = router_for("executions")

_ONE = f"{API}/executions/{{execution_id}}"
ExecutionId = Annotated[str, Path(description="The execution's id.")]

# The largest event seq a store can hold (SQLite's and Firestore's 64-bit integers).
MAX_SEQ = 2**63 - 1


def _rfc3339_text(value: object) -> object:
    """Only an RFC 3339 text is a moment here: pydantic would also read ``0`` or
    ``1700000000`` as seconds since the epoch, which the OpenAPI ``date-time`` refuses."""
    if isinstance(value, str) and "T" not in value.upper():
        raise ValueError("expected an RFC 3339 date-time such as 2026-12-01T00:00:00Z")
    return value


Moment = Annotated[AwareDatetime, BeforeValidator(_rfc3339_text)]


@router.get(f"{API}/executions", response_model=ExecutionPage, responses=errors(400))
async def list_executions(
    caller: Reader,
    workflow_id: Annotated[
        str | None, Query(description="Executions of this workflow only.")
    ] = None,
    status: Annotated[
        ExecutionStatus | None, Query(description="Executions in this status only.")
    ] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
    started_from: Annotated[
        Moment | None,
        Query(description="Executions started at or after this moment (RFC 3339, with zone)."),
    ] = None,
    started_before: Annotated[
        Moment | None,
        Query(description="Executions started before this moment (RFC 3339, with zone)."),
    ] = None,
) -> Response:
    """List executions, newest first."""
    if started_from and started_before and started_from >= started_before:
        raise InputInvalid("started_from must be before started_before", path="/started_from")
    page = await caller.app.list_executions(
        workflow_id=workflow_id or None,
        status=status,
        limit=limit,
        cursor=cursor or None,
        started_from=started_from,
        started_before=started_before,
    )
    await queue_views(caller.app, page.items)  # the place of each queued one
    return respond_page(page)


@router.get(_ONE, response_model=ExecutionDetail, responses=errors(404))
async def get_execution(execution_id: ExecutionId, caller: ExecutionReader) -> Response:
    """Get an execution with its step history (``steps``, oldest run first)."""
    execution, runs = await caller.app.get_execution_detail(execution_id)
    await queue_views(caller.app, [execution])
    steps = [StepRunView.model_validate(run.model_dump()) for run in runs]
    return respond(ExecutionDetail.of(execution, steps=steps))


@router.get(f"{_ONE}/steps", response_model=StepList, responses=errors(404))
async def list_steps(execution_id: ExecutionId, caller: ExecutionReader) -> Response:
    """List an execution's step runs (every attempt, branch and iteration), oldest first."""
    runs = await caller.app.step_history(execution_id)
    return respond(StepList(items=[StepRunView.model_validate(r.model_dump()) for r in runs]))


@router.get(f"{_ONE}/events", response_model=EventPage, responses=errors(400, 404))
async def list_events(
    execution_id: ExecutionId,
    caller: ExecutionReader,
    after: Annotated[
        int, Query(ge=0, le=MAX_SEQ, description="Only events with a greater seq.")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=1000, description="Most events returned.")] = 1000,
) -> Response:
    """Read an execution's events in seq order (resume with ``after``)."""
    events = await caller.app.events(execution_id, after, limit)
    next_after = events[-1].seq if len(events) == limit else None
    return JSONResponse({"items": [dump(e) for e in events], "nextAfter": next_after})


@router.post(
    f"{_ONE}/events",
    status_code=202,
    response_model=SignalResult,
    responses=errors(400, 403, 404, 409, 413, 415, 422),
    dependencies=[Depends(json_only)],
)
async def send_event(
    execution_id: ExecutionId, body: EventInput, caller: ExecutionOperator
) -> Response:
    """Send an event to an execution; a ``wait_for_event`` step waiting for it resumes."""
    result = await caller.app.send_event(
        execution_id, body.name, body.payload, sender=caller.principal.subject
    )
    return respond(result, 202)


@router.post(
    f"{_ONE}/cancel",
    response_model=ExecutionView,
    responses=errors(400, 403, 404, 409, 413, 415, 422),
    dependencies=[Depends(json_only)],
)
async def cancel_execution(
    execution_id: ExecutionId,
    caller: ExecutionOperator,
    body: Annotated[CancelInput, Body(default_factory=CancelInput)],
) -> Response:
    """Cancel a running, waiting or paused execution."""
    return respond(await caller.app.cancel(execution_id, body.reason))


@router.post(f"{_ONE}/pause", response_model=ExecutionView, responses=errors(403, 404, 409))
async def pause_execution(execution_id: ExecutionId, caller: ExecutionOperator) -> Response:
    """Pause an execution: running steps finish, no new step starts until resumed."""
    return respond(await caller.app.pause(execution_id))


@router.post(f"{_ONE}/resume", response_model=ExecutionView, responses=errors(403, 404, 409))
async def resume_execution(execution_id: ExecutionId, caller: ExecutionOperator) -> Response:
    """Resume a paused execution."""
    return respond(await caller.app.resume(execution_id))


@router.post(f"{_ONE}/redrive", response_model=ExecutionView, responses=errors(403, 404, 409))
async def redrive_execution(execution_id: ExecutionId, caller: ExecutionOperator) -> Response:
    """Re-run a failed or timed-out execution from its failed step, on its pinned version."""
    execution = await caller.app.redrive(execution_id)
    await queue_views(caller.app, [execution])  # a redrive may queue it again
    return respond(execution)
