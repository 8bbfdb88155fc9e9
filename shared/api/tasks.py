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
- 400 for a payload that cannot be decoded; see ``handle_task_request``.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from shared.api.errors import error_response
from shared.api.runtime import get_runtime
from shared.errors import WorkflowError
from shared.task_codec import TaskPayloadInvalid, decode_task, encode_task

__all__ = ["TaskPayloadInvalid", "decode_task", "encode_task", "handle_task_request"]

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


async def handle_task_request(request: Request) -> JSONResponse:
    """Run one delivery of a step task and answer Cloud Tasks."""
    if request.method == "GET" and request.url.path.rstrip("/").endswith("healthz"):
        return JSONResponse({"status": "ok"})
    if request.method != "POST":
        return JSONResponse(
            {
                "status": "rejected",
                "error": {"code": "METHOD_NOT_ALLOWED", "message": "POST a task payload"},
            },
            status_code=405,
        )
    if request.url.path.rstrip("/").endswith("/sweep"):
        return await _sweep()
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
    runtime = await get_runtime()
    try:
        result = await runtime.app.execute_step(task)
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
    except Exception as exc:  # an unexpected error: 500, and the queue retries
        return error_response(exc)
    fields.update(status=result.status, steps=result.steps)
    log.info("step task %s: %s", task.name, result.status, extra={"json_fields": fields})
    return JSONResponse({"status": result.status, "steps": result.steps})


async def _sweep() -> JSONResponse:
    """``POST /sweep``: re-enqueue overdue step runs (a lost enqueue, a dead worker).

    In the cloud a Cloud Scheduler job calls it every minute; locally the runtime's own
    sweeper loop does the same. Safe to call any number of times.
    """
    runtime = await get_runtime()
    try:
        count = await runtime.engine.sweep(runtime.settings.sweep_grace_seconds)
    except WorkflowError as exc:
        return JSONResponse(
            {"status": "failed", "error": exc.to_dict()}, status_code=503 if exc.retryable else 500
        )
    return JSONResponse({"status": "swept", "requeued": count})
