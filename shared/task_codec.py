"""The payload of a step task on the wire (Cloud Tasks body): ids only, JSON.

``{"executionId", "runId", "wakeSeq"}`` plus, when the enqueuing hop was traced, its
W3C ``traceparent`` (bodies without one decode as before; a malformed one is dropped,
never a reason to refuse the task), and ``"cheap": true`` when the run's step does no
I/O (``StepTask.cheap``: a hint the engine checks).

Below the adapters and the API edge alike: the Cloud Tasks adapter encodes with it,
the execute-step function decodes with it.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from shared.errors import WorkflowError
from shared.ports import StepTask

__all__ = ["MAX_TASK_BODY", "TaskPayloadInvalid", "decode_task", "encode_task"]

MAX_TASK_BODY = 16 * 1024
"""A real payload is under 300 bytes; anything much larger is not ours."""
_ID_MAX = 256
_TRACEPARENT = re.compile(r"[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")


class TaskPayloadInvalid(WorkflowError):
    """The task body is not a step task payload."""

    code = "INVALID_INPUT"


def encode_task(task: StepTask) -> bytes:
    """The HTTP body of a Cloud Task for ``task`` (compact JSON: ids and the trace)."""
    payload: dict[str, Any] = {
        "executionId": task.execution_id,
        "runId": task.run_id,
        "wakeSeq": task.wake_seq,
    }
    if task.trace:
        payload["traceparent"] = task.trace
    if task.cheap:
        payload["cheap"] = True
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
        trace=_traceparent(payload.get("traceparent")),
        cheap=payload.get("cheap") is True,
    )


def _traceparent(value: Any) -> str | None:
    """A well-formed ``traceparent`` (W3C syntax), else None."""
    if isinstance(value, str) and _TRACEPARENT.fullmatch(value) and not value.startswith("ff"):
        return value
    return None
