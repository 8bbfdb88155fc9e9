"""The Cloud Tasks target: the task payload codec and the answer to one delivery.

A task body carries ids only, ``{"executionId", "runId", "wakeSeq"}``: the store holds
everything else, so a task never carries stale state. The Cloud Tasks adapter encodes
with ``encode_task``; the ``execute-step`` function decodes with ``decode_task``.

Answers (Cloud Tasks retries any answer outside 200-299, by the queue's retry config):

- 200 for every outcome the engine reached (done, duplicate, busy, early, paused,
  cancelled, unknown, lost_lease) and for permanent failures, which the engine has
  recorded: retrying them can only repeat the failure.
- 503 for retryable errors (a transaction conflict, a store or queue outage), so the
  queue retries with its backoff (Cloud Tasks backs off harder on 503).
- 400 for a payload that cannot be decoded; see ``execute_task``.
- 401 ``UNAUTHENTICATED`` without a valid OIDC token of the tasks invoker account
  (``shared.api.identity``); nothing is read or run.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from shared.api.edge import Edge, edge_of
from shared.api.errors import install_error_handlers
from shared.api.middleware import CatchAll, RequestGuard
from shared.errors import WorkflowError
from shared.observability import TelemetryMiddleware
from shared.task_codec import TaskPayloadInvalid, decode_task, encode_task

__all__ = ["TaskPayloadInvalid", "create_tasks_app", "decode_task", "encode_task"]

log = logging.getLogger(__name__)

_HEADERS = {
    "x-cloudtasks-taskname": "taskName",
    "x-cloudtasks-taskretrycount": "retryCount",
    "x-cloudtasks-taskexecutioncount": "executionCount",
    "x-cloudtasks-queuename": "queueName",
}


def _delivery_fields(request: Request) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for header, name in _HEADERS.items():
        value = request.headers.get(header)
        if value is not None:
            fields[name] = int(value) if value.isdigit() else value
    return fields


async def execute_task(request: Request) -> Response:
    """Run one delivery of a step task and answer Cloud Tasks (its OIDC token first)."""
    await edge_of(request).identity.check(request, "tasks")
    fields = _delivery_fields(request)
    try:
        task = decode_task(await request.body())
    except TaskPayloadInvalid as exc:
        # 400, not 2xx: the delivery failed and must show as failed in the queue's
        # metrics and logs. Not 5xx: nothing transient is wrong and a retry cannot
        # decode it either. Cloud Tasks still retries every non-2xx answer, so the
        # queue's retryConfig (maxAttempts / maxRetryDuration, set in Terraform) is
        # what keeps such a poison task from being retried forever; each retry is
        # answered here in microseconds without touching the store.
        log.error(
            "undecodable task payload: %s",
            exc.message,
            extra={"json_fields": {**fields, "code": exc.code}},
        )
        return JSONResponse({"status": "rejected", "error": exc.to_dict()}, status_code=400)
    fields.update(executionId=task.execution_id, runId=task.run_id, wakeSeq=task.wake_seq)
    try:
        result = await edge_of(request).app.execute_step(task)
    except WorkflowError as exc:
        fields["code"] = exc.code
        if exc.retryable:
            log.warning(
                "step task failed, asking for a retry: %s",
                exc.message,
                extra={"json_fields": fields},
            )
            return JSONResponse({"status": "retry", "error": exc.to_dict()}, status_code=503)
        log.error("step task failed for good: %s", exc.message, extra={"json_fields": fields})
        return JSONResponse({"status": "failed", "error": exc.to_dict()})
    fields.update(status=result.status, steps=result.steps)
    log.info("step task %s: %s", task.name, result.status, extra={"json_fields": fields})
    return JSONResponse({"status": result.status, "steps": result.steps})


async def sweep(request: Request) -> Response:
    """``POST /sweep``: re-enqueue overdue step runs (a lost enqueue, a dead worker).

    In the cloud a Cloud Scheduler job calls it every minute; locally the runtime's own
    sweeper loop does the same. Safe to call any number of times. The caller is the
    scheduler's or the tasks' invoker account (OIDC token).
    """
    await edge_of(request).identity.check(request, "sweep")
    try:
        count = await edge_of(request).runtime.sweep_once()
    except WorkflowError as exc:
        return JSONResponse(
            {"status": "failed", "error": exc.to_dict()}, status_code=503 if exc.retryable else 500
        )
    return JSONResponse({"status": "swept", "requeued": count})


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


MAX_TASK_BODY = 64 * 1024
"""A task body carries ids only; anything bigger is not ours."""


def create_tasks_app(edge: Edge, *, lifespan: bool = True) -> Starlette:
    """The execute-step app: ``POST /sweep``, ``GET /healthz``, and ``POST`` of a task
    body on any other path (Cloud Tasks posts to the URL the queue was given)."""
    app = Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/sweep", sweep, methods=["POST"]),
            Route("/{path:path}", execute_task, methods=["POST"]),
        ],
        middleware=[
            Middleware(TelemetryMiddleware, service="execute-step"),
            Middleware(CatchAll),
            Middleware(RequestGuard, max_body=MAX_TASK_BODY, media_types=None, check_origin=True),
        ],
        lifespan=edge.lifespan if lifespan else None,
    )
    app.state.edge = edge
    install_error_handlers(app)
    return app
