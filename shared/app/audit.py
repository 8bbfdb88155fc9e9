"""Recording the audit log: one entry per state-changing call, whatever its outcome.

The edges (REST, GraphQL) and the trigger use cases call ``Auditor.record`` with ids,
names and codes only, never a request body or a header value, so no secret can reach
the log. The request id is the caller's ``X-Request-Id`` (``request_id_var``, set by
the edge) or else the trace id of the current span. A failure to record is logged,
never raised: the call itself has happened.
"""

from __future__ import annotations

import contextvars
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Protocol, TypeVar

from shared.models.audit import AuditEntry, AuditVia
from shared.observability import current_traceparent
from shared.ports import Clock
from shared.ports.audit import AuditLog

__all__ = [
    "Auditor",
    "audited_trigger",
    "current_request_id",
    "outcome_of",
    "record_trigger",
    "request_id_var",
]

log = logging.getLogger(__name__)

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "wfe_request_id", default=None
)
"""The ``X-Request-Id`` of the request being served (set by the edge middleware)."""


def current_request_id() -> str | None:
    """``X-Request-Id`` of the current request, else the current trace id."""
    explicit = request_id_var.get()
    if explicit:
        return explicit
    parent = current_traceparent()
    if parent:
        parts = parent.split("-")
        if len(parts) >= 2 and parts[1].strip("0"):
            return parts[1]
    return None


def outcome_of(error: BaseException | None) -> str:
    """``ok``, or the stable code of the error a call ended with."""
    if error is None:
        return "ok"
    code = getattr(error, "code", None)
    return code if isinstance(code, str) and code else "INTERNAL"


class Auditor:
    """Builds entries and appends them to the ``AuditLog``."""

    def __init__(self, log_: AuditLog, clock: Clock) -> None:
        self.log = log_
        self._clock = clock

    async def record(
        self,
        *,
        tenant: str,
        subject: str,
        action: str,
        target: str | None = None,
        execution_id: str | None = None,
        outcome: str = "ok",
        status: int | None = None,
        via: AuditVia = "rest",
        request_id: str | None = None,
        time: datetime | None = None,
    ) -> AuditEntry | None:
        """Append one entry; returns it (None when it could not be written)."""
        entry = AuditEntry(
            id=uuid.uuid4().hex,
            time=time or self._clock.now(),
            tenant=tenant,
            subject=subject,
            action=action,
            target=target,
            execution_id=execution_id,
            outcome=outcome,
            status=status,
            request_id=request_id or current_request_id(),
            via=via,
        )
        try:
            await self.log.record(entry)
        except Exception:
            log.exception("audit entry %s (%s) could not be written", entry.action, entry.id)
            return None
        return entry


_TRIGGER_OUTCOMES = {
    "started": "ok",
    "duplicate": "ok",
    "inactive": "WORKFLOW_INACTIVE",
    "skipped": "NOT_FOUND",
}
"""The outcome recorded for each status of a trigger's start (a duplicate delivery
found the execution of the first one: the call succeeded)."""


class TriggerStart(Protocol):
    """What a trigger's start answers: a status and, when one exists, the execution."""

    @property
    def status(self) -> str: ...

    @property
    def execution_id(self) -> str | None: ...


S = TypeVar("S", bound=TriggerStart)


async def audited_trigger(
    auditor: Auditor | None,
    *,
    kind: str,
    tenant: str,
    workflow_id: str,
    start: Callable[[], Awaitable[S]],
) -> S:
    """``await start()``, recorded as one call of ``trigger:<kind>``: its status, or the
    error it was refused with (re-raised)."""
    try:
        outcome = await start()
    except Exception as exc:
        await record_trigger(auditor, kind=kind, tenant=tenant, workflow_id=workflow_id, error=exc)
        raise
    await record_trigger(
        auditor,
        kind=kind,
        tenant=tenant,
        workflow_id=workflow_id,
        execution_id=outcome.execution_id,
        status=outcome.status,
    )
    return outcome


async def record_trigger(
    auditor: Auditor | None,
    *,
    kind: str,
    tenant: str,
    workflow_id: str,
    execution_id: str | None = None,
    status: str | None = None,
    error: BaseException | None = None,
) -> None:
    """One trigger call (``kind``: webhook, pubsub, schedule) of ``workflow_id``: the
    start's status, or the error it was refused with."""
    if auditor is None:
        return
    outcome = outcome_of(error) if error is not None else _TRIGGER_OUTCOMES.get(status or "", "ok")
    await auditor.record(
        tenant=tenant,
        subject=f"trigger:{kind}",
        action="execution.start",
        target=workflow_id,
        execution_id=execution_id,
        outcome=outcome,
        via="trigger",
    )
