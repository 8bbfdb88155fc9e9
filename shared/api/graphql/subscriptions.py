"""Subscriptions over the event broker: an execution's status, or its full events.

Both replay from the store before going live (the broker does), so a client that
subscribes late, or reconnects with ``after``, misses nothing.
"""

# mypy: disable-error-code="untyped-decorator"
# (strawberry.field(...) with arguments is typed as returning Any)
from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from typing import Any

import strawberry

from shared import models
from shared.api.broker import EventBroker
from shared.api.graphql.context import GqlInfo, broker_of, caller
from shared.api.graphql.enums import ExecutionStatus
from shared.api.graphql.execution_api import load_execution
from shared.api.graphql.execution_types import ExecutionEvent

Status = models.ExecutionStatus
ScopeOf = Callable[[str], Awaitable[str]]
_NOT_A_PARK = ("bodies", "childExecutionId")
"""``step.waiting`` data of fan-outs and subworkflows, which do not make an execution wait."""


async def status_after(current: Status, event: Any, scope_of: ScopeOf) -> Status:
    """The execution's status after ``event``, following the engine's transitions.

    ``execution.*`` events carry the execution's status. A step starting makes a
    pending or waiting execution run; a step of the main flow (scope '') parking on a
    timer or a signal makes it wait; other step events leave it as it is.
    """
    if event.type.startswith("execution.") and event.status:
        return Status(event.status)
    if current.terminal:
        return current
    if event.type == "step.started" and current in (Status.PENDING, Status.WAITING):
        return Status.RUNNING
    parked = event.type == "step.waiting" and not any(k in event.data for k in _NOT_A_PARK)
    if parked and event.run_id and await scope_of(event.run_id) == "":
        return Status.WAITING
    return current


async def _events(
    broker: EventBroker, tenant: str, execution_id: str, after: int
) -> AsyncGenerator[Any, None]:
    """The broker's events of one execution with ``seq`` greater than ``after``."""
    async with broker.open(tenant=tenant, execution_id=execution_id, after=after) as stream:
        async for event in stream:
            yield event


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="The execution's status now, then each time it changes; ends after a "
        "terminal status."
    )
    async def workflow_status(
        self, info: GqlInfo, execution_id: strawberry.ID
    ) -> AsyncGenerator[ExecutionStatus, None]:
        who = await caller(info)
        execution = await load_execution(who, execution_id, "read")
        scopes: dict[str, str] = {}

        async def scope_of(run_id: str) -> str:
            if run_id not in scopes:
                scopes[run_id] = (await who.app.get_step_run(execution_id, run_id)).scope
            return scopes[run_id]

        status: Status = execution.status
        yield ExecutionStatus(status.value)
        if status.terminal:
            return
        stream = _events(broker_of(info), who.app.tenant, execution_id, execution.event_seq)
        async with aclosing(stream) as events:
            async for event in events:
                changed = await status_after(status, event, scope_of)
                if changed != status:
                    status = changed
                    yield ExecutionStatus(status.value)
                    if status.terminal:
                        return

    @strawberry.subscription(
        description="Every event of an execution with `seq` greater than `after` "
        "(default 0: all), stored ones first, then live; ends after the terminal event."
    )
    async def execution_events(
        self, info: GqlInfo, execution_id: strawberry.ID, after: int | None = 0
    ) -> AsyncGenerator[ExecutionEvent, None]:
        who = await caller(info)
        await load_execution(who, execution_id, "read")
        stream = _events(broker_of(info), who.app.tenant, execution_id, after or 0)
        async with aclosing(stream) as events:
            async for event in events:
                yield ExecutionEvent.from_model(event)
