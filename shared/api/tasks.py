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

import json
import logging
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from shared.api.errors import error_response
from shared.api.runtime import get_runtime
from shared.errors import WorkflowError
from shared.ports import StepTask

__all__ = ["TaskPayloadInvalid", "decode_task", "encode_task", "handle_task_request"]

log = logging.getLogger(__name__)

MAX_TASK_BODY = 16 * 1024
"""A real payload is under 200 bytes; anything much larger is not ours."""
_ID_MAX = 256
_HEADERS = {
    "x-cloudtasks-taskname": "taskName",
    "x-cloudtasks-taskretrycount": "retryCount",
    "x-cloudtasks-taskexecutioncount": "executionCount",
    "x-cloudtasks-queuename": "queueName",
}


class TaskPayloadInvalid(WorkflowError):
    """The task body is not a step task payload."""

    code = "INVALID_INPUT"


def encode_task(task: StepTask) -> bytes:
    """The HTTP body of a Cloud Task for ``task`` (compact JSON, ids only)."""
    payload = {"executionId": task.execution_id, "runId": task.run_id, "wakeSeq": task.wake_seq}
    return json.dumps(payload, separators=(",", ":")).encode()


def _id(payload: dict[str, Any], name: str) -> str:
    value = payload.get(name)
    if not isinstance(value, str) or not value or len(value) > _ID_MAX:
        raise TaskPayloadInvalid(f"{name} must be a non-empty string", path=f"/{name}")
    return value


def decode_task(body: bytes, *, received_at: datetime | None = None) -> StepTask:
    """Parse a task body; unknown fields are ignored so payloads can grow compatibly.

    ``due_at`` is not carried (Cloud Tasks holds the schedule time and the engine reads
    the run's due time from the store); it is set to ``received_at`` (default: now).
    """
    if len(body) > MAX_TASK_BODY:
        raise TaskPayloadInvalid(f"task body larger than {MAX_TASK_BODY} bytes")
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise TaskPayloadInvalid(f"task body is not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise TaskPayloadInvalid("task body must be a JSON object")
    wake_seq = payload.get("wakeSeq", 0)
    if isinstance(wake_seq, bool) or not isinstance(wake_seq, int) or wake_seq < 0:
        raise TaskPayloadInvalid("wakeSeq must be a non-negative integer", path="/wakeSeq")
    return StepTask(
        execution_id=_id(payload, "executionId"),
        run_id=_id(payload, "runId"),
        due_at=received_at or datetime.now(UTC),
        wake_seq=wake_seq,
    )


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
