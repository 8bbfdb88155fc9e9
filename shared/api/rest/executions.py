"""Execution endpoints: queries, step history, events, and control."""

from __future__ import annotations

from starlette.responses import JSONResponse, Response

from shared.api.rest._edge import (
    authorized,
    authorized_for_execution,
    dump,
    respond,
    respond_page,
)
from shared.api.rest._request import parse_body, query_choice, query_int, query_limit, read_json
from shared.api.rest._router import API, Call, Payload, Query, router
from shared.api.rest.schemas import (
    CancelInput,
    EventInput,
    EventPage,
    ExecutionDetail,
    ExecutionPage,
    SignalResult,
    StepList,
    StepRunView,
)
from shared.api.rest.workflows import CURSOR, LIMIT
from shared.models import ExecutionStatus, WorkflowExecution

_EXECUTION = Payload(WorkflowExecution)
_ONE = f"{API}/executions/{{execution_id}}"
_STATUSES = tuple(status.value for status in ExecutionStatus)


@router.add(
    "GET",
    f"{API}/executions",
    tag="executions",
    action="read",
    response=Payload(ExecutionPage),
    errors=(400,),
    query=(
        Query("workflow_id", {"type": "string"}, "Executions of this workflow only."),
        Query("status", {"enum": list(_STATUSES)}, "Executions in this status only."),
        LIMIT,
        CURSOR,
    ),
)
async def list_executions(call: Call) -> Response:
    """List executions, newest first."""
    workflow_id = call.request.query_params.get("workflow_id") or None
    _, app = await authorized(call, workflow_id)
    status = query_choice(call.request, "status", _STATUSES)
    page = await app.list_executions(
        workflow_id=workflow_id,
        status=ExecutionStatus(status) if status else None,
        limit=query_limit(call.request),
        cursor=call.request.query_params.get("cursor") or None,
    )
    return respond_page(page)


@router.add(
    "GET", _ONE, tag="executions", action="read", response=Payload(ExecutionDetail), errors=(404,)
)
async def get_execution(call: Call) -> Response:
    """Get an execution with its step history (``steps``, oldest run first)."""
    app = await authorized_for_execution(call, call.path("execution_id"))
    execution, runs = await app.get_execution_detail(call.path("execution_id"))
    steps = [StepRunView.model_validate(run.model_dump()) for run in runs]
    return respond(ExecutionDetail(**dict(execution), steps=steps))


@router.add(
    "GET",
    f"{_ONE}/steps",
    tag="executions",
    action="read",
    response=Payload(StepList),
    errors=(404,),
)
async def list_steps(call: Call) -> Response:
    """List an execution's step runs (every attempt, branch and iteration), oldest first."""
    app = await authorized_for_execution(call, call.path("execution_id"))
    runs = await app.step_history(call.path("execution_id"))
    return respond(StepList(items=[StepRunView.model_validate(r.model_dump()) for r in runs]))


@router.add(
    "GET",
    f"{_ONE}/events",
    tag="executions",
    action="read",
    response=Payload(EventPage),
    errors=(400, 404),
    query=(
        Query(
            "after",
            {"type": "integer", "minimum": 0, "default": 0},
            "Only events with a greater seq.",
        ),
        Query(
            "limit",
            {"type": "integer", "minimum": 1, "maximum": 1000, "default": 1000},
            "Most events returned.",
        ),
    ),
)
async def list_events(call: Call) -> Response:
    """Read an execution's events in seq order (resume with ``after``)."""
    app = await authorized_for_execution(call, call.path("execution_id"))
    after = query_int(call.request, "after", default=0, low=0)
    limit = query_limit(call.request, high=1000, default=1000)
    events = await app.events(call.path("execution_id"), after, limit)
    next_after = events[-1].seq if len(events) == limit else None
    return JSONResponse({"items": [dump(e) for e in events], "nextAfter": next_after})


@router.add(
    "POST",
    f"{_ONE}/events",
    tag="executions",
    action="operate",
    status=202,
    request=Payload(EventInput),
    response=Payload(SignalResult),
    errors=(400, 404, 409, 413, 415, 422),
)
async def send_event(call: Call) -> Response:
    """Send an event to an execution; a ``wait_for_event`` step waiting for it resumes."""
    app = await authorized_for_execution(call, call.path("execution_id"))
    body = parse_body(EventInput, await read_json(call.request))
    result = await app.send_event(call.path("execution_id"), body.name, body.payload)
    return respond(result, 202)


@router.add(
    "POST",
    f"{_ONE}/cancel",
    tag="executions",
    action="operate",
    request=Payload(CancelInput, required=False),
    response=_EXECUTION,
    errors=(400, 404, 409, 413, 415, 422),
)
async def cancel_execution(call: Call) -> Response:
    """Cancel a running, waiting or paused execution."""
    app = await authorized_for_execution(call, call.path("execution_id"))
    body = parse_body(CancelInput, await read_json(call.request, optional=True))
    return respond(await app.cancel(call.path("execution_id"), body.reason))


@router.add(
    "POST",
    f"{_ONE}/pause",
    tag="executions",
    action="operate",
    response=_EXECUTION,
    errors=(404, 409),
)
async def pause_execution(call: Call) -> Response:
    """Pause an execution: running steps finish, no new step starts until resumed."""
    app = await authorized_for_execution(call, call.path("execution_id"))
    return respond(await app.pause(call.path("execution_id")))


@router.add(
    "POST",
    f"{_ONE}/resume",
    tag="executions",
    action="operate",
    response=_EXECUTION,
    errors=(404, 409),
)
async def resume_execution(call: Call) -> Response:
    """Resume a paused execution."""
    app = await authorized_for_execution(call, call.path("execution_id"))
    return respond(await app.resume(call.path("execution_id")))


@router.add(
    "POST",
    f"{_ONE}/redrive",
    tag="executions",
    action="operate",
    response=_EXECUTION,
    errors=(404, 409),
)
async def redrive_execution(call: Call) -> Response:
    """Re-run a failed or timed-out execution from its failed step, on its pinned version."""
    app = await authorized_for_execution(call, call.path("execution_id"))
    return respond(await app.redrive(call.path("execution_id")))
