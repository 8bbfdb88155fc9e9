"""Flow control made visible: a queued execution's place, a workflow's per-key usage.

Both are computed on read from the store (``queue_position``, ``queue_summary``,
``list_slots``), never stored: a place changes each time the queue moves, and writing
it would turn every promotion into a write to every queued execution. Each read is
bounded (``QUEUE_COUNT_MOST`` entries counted; ``MAX_KEYS`` keys summarised).
``docs/flow-control.md`` tells the whole story.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from pydantic import Field

from shared.models import (
    ConcurrencyScope,
    ConcurrencySpec,
    ExecutionStatus,
    WorkflowExecution,
)
from shared.models._base import ApiModel, utcnow
from shared.ports.stores import QUEUE_COUNT_MOST

if TYPE_CHECKING:
    from shared.app.service import WorkflowApp

__all__ = [
    "MAX_KEYS",
    "ConcurrencyUsage",
    "KeyUsage",
    "QueueView",
    "concurrency_usage",
    "public_queue",
    "queue_views",
]

MAX_KEYS = 200
"""Most key values one usage read summarises (each costs a bounded count)."""


class QueueView(ApiModel):
    """Where a queued execution waits: what the API shows of its flow-control state.

    The slot document ids it holds and the internal key of its queue (a hash input and
    a workflow-id prefix) stay inside the engine.
    """

    reason: str | None = None
    """Why it waits (``waiting for concurrency slot key=acme``)."""
    key: str | None = None
    """The key value it waits for (``""``: the workflow's one shared key)."""
    priority: int = 0
    """Its evaluated ``priority``: higher starts first among the key's queue."""
    queued_at: datetime | None = None
    position: int | None = None
    """1 = next to start on its key; computed on read, counted up to
    ``QUEUE_COUNT_MOST`` (a larger place reads as ``QUEUE_COUNT_MOST + 1``). Absent
    while it is held by a start control alone (``notBefore``)."""
    not_before: datetime | None = None
    """Held back until then by a start control (``rateLimit``, ``throttle``,
    ``debounce``: ``docs/flow-control-start-controls.md``)."""


class KeyUsage(ApiModel):
    """One concurrency key value of a workflow: its slots in use and its queue."""

    key: str
    """The key value (``""``: the shared key of a spec without ``key``)."""
    scope: ConcurrencyScope
    limit: int
    """The declared limit of the key (the latest version's)."""
    running: int
    """Slots held: executions started and not ended."""
    queued: int
    """Executions waiting for a slot (counted up to ``QUEUE_COUNT_MOST``)."""
    oldest_queued_at: datetime | None = None
    oldest_queued_seconds: float | None = None
    """How long the longest-waiting execution of the key has waited."""


class ConcurrencyUsage(ApiModel):
    """Per-key usage of a workflow's ``concurrency`` entries, read now."""

    workflow_id: str
    limits: list[ConcurrencySpec] = Field(default_factory=list)
    """The declared ``concurrency`` entries (``limit``, ``key``, ``scope``)."""
    keys: list[KeyUsage] = Field(default_factory=list)
    """Key values in use (a slot held or an execution queued), busiest first."""
    truncated: bool = False
    """More key values were in use than ``MAX_KEYS``: the least busy are left out."""
    read_at: datetime = Field(default_factory=utcnow)


def public_queue(execution: WorkflowExecution) -> QueueView | None:
    """The visible queue state: only while the execution is queued."""
    state = execution.queue
    if execution.status != ExecutionStatus.QUEUED or state is None:
        return None
    return QueueView(
        reason=state.reason,
        key=state.key,
        priority=state.priority,
        queued_at=state.queued_at,
        position=state.position,
        not_before=state.not_before,
    )


async def queue_views(
    app: WorkflowApp, executions: Sequence[WorkflowExecution]
) -> list[WorkflowExecution]:
    """Fill ``queue.position`` of the queued ones (one bounded count each, concurrently)."""

    async def place(execution: WorkflowExecution) -> None:
        state = execution.queue
        if execution.status != ExecutionStatus.QUEUED or state is None or not state.wait_key:
            return
        state.position = await app.executions.queue_position(
            execution.tenant,
            state.wait_key,
            state.priority,
            state.queued_at or execution.started_at,
            QUEUE_COUNT_MOST,
        )

    await asyncio.gather(*(place(execution) for execution in executions))
    return list(executions)


async def concurrency_usage(app: WorkflowApp, workflow_id: str) -> ConcurrencyUsage:
    """Usage of each key value of a workflow of the app's tenant (NotFound otherwise)."""
    definition = await app.get_workflow(workflow_id)
    tenant = app.tenant
    found: dict[tuple[str, ConcurrencyScope], list[int]] = {}
    limits: dict[ConcurrencyScope, int] = {}
    for spec in definition.concurrency:
        limits[spec.scope] = max(limits.get(spec.scope, 0), spec.limit)
        prefix = "t:" if spec.scope == ConcurrencyScope.TENANT else f"w:{definition.id}:"
        if any(scope == spec.scope for _, scope in found):
            continue  # the same prefix is read once
        for slot in await app.executions.list_slots(tenant, prefix):
            held = found.setdefault((slot.slot_key, spec.scope), [0])
            held[0] += slot.holder is not None
    ranked = sorted(found.items(), key=lambda item: (-item[1][0], item[0][0]))
    now = utcnow()

    async def usage(slot_key: str, scope: ConcurrencyScope, running: int) -> KeyUsage:
        summary = await app.executions.queue_summary(tenant, slot_key, QUEUE_COUNT_MOST)
        oldest = summary.oldest_queued_at
        label = slot_key.removeprefix("t:" if scope == ConcurrencyScope.TENANT else "w:")
        if scope == ConcurrencyScope.WORKFLOW:
            label = label.removeprefix(f"{definition.id}:")
        return KeyUsage(
            key=label,
            scope=scope,
            limit=limits[scope],
            running=running,
            queued=summary.queued,
            oldest_queued_at=oldest,
            oldest_queued_seconds=None if oldest is None else (now - oldest).total_seconds(),
        )

    keys = await asyncio.gather(
        *(usage(key, scope, held[0]) for (key, scope), held in ranked[:MAX_KEYS])
    )
    return ConcurrencyUsage(
        workflow_id=definition.id,
        limits=list(definition.concurrency),
        keys=[key for key in keys if key.running or key.queued],
        truncated=len(ranked) > MAX_KEYS,
        read_at=now,
    )
