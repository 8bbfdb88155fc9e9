"""Flow control in GraphQL: an execution's ``queue`` (its place while queued) and the
``workflowConcurrency`` query (per-key usage), the same reads as REST's
``GET /workflows/{id}/concurrency`` (``shared.app.flow_usage``)."""

# mypy: disable-error-code="untyped-decorator"
# (strawberry.field(...) with arguments is typed as returning Any)
from __future__ import annotations

from datetime import datetime

import strawberry

from shared import models
from shared.api.auth import authorize
from shared.api.graphql.context import GqlInfo, caller
from shared.app import WorkflowApp
from shared.app.flow_usage import ConcurrencyUsage, concurrency_usage, public_queue, queue_views
from shared.errors import NotFound

__all__ = ["ConcurrencyScope", "FlowQuery", "QueuePlace", "queue_of"]

ConcurrencyScope = strawberry.enum(
    models.ConcurrencyScope,
    name="ConcurrencyScope",
    description="Who shares a concurrency key's slots: one workflow, or the tenant.",
)


@strawberry.type(description="Where a queued execution waits for a concurrency slot.")
class QueuePlace:
    reason: str | None = strawberry.field(
        description="Why it waits (`waiting for concurrency slot key=acme`)."
    )
    key: str | None = strawberry.field(description="The key value it waits for.")
    priority: int = strawberry.field(description="Higher starts first among the key's queue.")
    queued_at: datetime | None
    position: int | None = strawberry.field(
        description="1 = next to start on its key; computed on read, counted up to 1000."
    )
    not_before: datetime | None = strawberry.field(
        description="Held back until then by a start control (rateLimit, throttle, debounce)."
    )


async def queue_of(app: WorkflowApp, execution: models.WorkflowExecution) -> QueuePlace | None:
    """The place of a queued execution (null unless it is queued)."""
    if public_queue(execution) is None:
        return None
    await queue_views(app, [execution])
    view = public_queue(execution)
    assert view is not None
    return QueuePlace(
        reason=view.reason,
        key=view.key,
        priority=view.priority,
        queued_at=view.queued_at,
        position=view.position,
        not_before=view.not_before,
    )


@strawberry.type(description="One key value of a workflow's concurrency: slots and queue.")
class KeyUsage:
    key: str = strawberry.field(description="The key value ('' for a shared key).")
    scope: models.ConcurrencyScope
    limit: int
    running: int = strawberry.field(description="Slots held by started executions.")
    queued: int = strawberry.field(description="Executions waiting (counted up to 1000).")
    oldest_queued_at: datetime | None
    oldest_queued_seconds: float | None = strawberry.field(
        description="How long the longest-waiting execution of the key has waited."
    )


@strawberry.type(description="A declared `concurrency` entry of a workflow.")
class ConcurrencyLimit:
    limit: int
    key: str | None = strawberry.field(description="CEL over input/trigger; null = shared.")
    scope: models.ConcurrencyScope


@strawberry.type(description="Per-key usage of a workflow's concurrency entries, read now.")
class WorkflowConcurrency:
    workflow_id: strawberry.ID
    limits: list[ConcurrencyLimit]
    keys: list[KeyUsage] = strawberry.field(
        description="Key values in use, busiest first (at most 200)."
    )
    truncated: bool
    read_at: datetime

    @classmethod
    def from_model(cls, usage: ConcurrencyUsage) -> WorkflowConcurrency:
        return cls(
            workflow_id=strawberry.ID(usage.workflow_id),
            limits=[
                ConcurrencyLimit(limit=spec.limit, key=spec.key, scope=spec.scope)
                for spec in usage.limits
            ],
            keys=[
                KeyUsage(
                    key=key.key,
                    scope=key.scope,
                    limit=key.limit,
                    running=key.running,
                    queued=key.queued,
                    oldest_queued_at=key.oldest_queued_at,
                    oldest_queued_seconds=key.oldest_queued_seconds,
                )
                for key in usage.keys
            ],
            truncated=usage.truncated,
            read_at=usage.read_at,
        )


@strawberry.type
class FlowQuery:
    @strawberry.field(
        description="Slots in use and queues per key value of a workflow's `concurrency`; "
        "null if the workflow is not in the caller's tenant."
    )
    async def workflow_concurrency(
        self, info: GqlInfo, workflow_id: strawberry.ID
    ) -> WorkflowConcurrency | None:
        who = await caller(info)
        authorize(who.principal, "read", workflow_id)
        try:
            usage = await concurrency_usage(who.app, workflow_id)
        except NotFound:
            return None
        return WorkflowConcurrency.from_model(usage)
