"""Execution control: cancel, pause, resume, redrive, send an event; batch cancel."""

# mypy: disable-error-code="untyped-decorator"
# (strawberry.field(...) with arguments is typed as returning Any)
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

import strawberry
from strawberry.scalars import JSON

from shared import models
from shared.api.graphql.context import Caller, GqlInfo, caller
from shared.api.graphql.errors import (
    ConflictError,
    ForbiddenError,
    InvalidStateError,
    NotFoundError,
    ValidationErrors,
    as_payload,
)
from shared.api.graphql.execution_api import ExecutionPayload, load_execution
from shared.api.graphql.execution_types import WorkflowExecution
from shared.api.graphql.limits import MAX_BATCH
from shared.app import WorkflowApp
from shared.errors import InputInvalid


@strawberry.type(description="An event sent to an execution.")
class EventDelivery:
    signal_id: strawberry.ID
    delivered: bool = strawberry.field(
        description="True if a waiting step took it now; else it is kept until one does."
    )


SendEventPayload = Annotated[
    EventDelivery
    | ValidationErrors
    | NotFoundError
    | ConflictError
    | InvalidStateError
    | ForbiddenError,
    strawberry.union("SendEventPayload"),
]

Operation = Callable[[WorkflowApp, str], Awaitable[models.WorkflowExecution]]


async def _operate(
    who: Caller, execution_id: str, operation: Operation
) -> models.WorkflowExecution:
    await load_execution(who, execution_id, "operate")
    return await operation(who.app, execution_id)


async def _control(info: GqlInfo, execution_id: str, operation: Operation) -> ExecutionPayload:
    work = _operate(await caller(info), execution_id, operation)
    return await as_payload(work, WorkflowExecution.from_model)


@strawberry.type
class ControlMutation:
    @strawberry.mutation(description="Cancel a running, waiting or paused execution.")
    async def cancel_execution(
        self, info: GqlInfo, id: strawberry.ID, reason: str = ""
    ) -> ExecutionPayload:
        return await _control(info, id, lambda app, eid: app.cancel(eid, reason))

    @strawberry.mutation(description="Pause: no new step starts until it is resumed.")
    async def pause_execution(self, info: GqlInfo, id: strawberry.ID) -> ExecutionPayload:
        return await _control(info, id, WorkflowApp.pause)

    @strawberry.mutation(description="Resume a paused execution.")
    async def resume_execution(self, info: GqlInfo, id: strawberry.ID) -> ExecutionPayload:
        return await _control(info, id, WorkflowApp.resume)

    @strawberry.mutation(description="Re-run a failed execution from its failed step.")
    async def redrive_execution(self, info: GqlInfo, id: strawberry.ID) -> ExecutionPayload:
        return await _control(info, id, WorkflowApp.redrive)

    @strawberry.mutation(
        description=(
            "Send an event to an execution: a `wait_for_event` step's event, an agent's"
            " tool-call approval or a guardrail escalation's decision."
        )
    )
    async def send_event(
        self,
        info: GqlInfo,
        execution_id: strawberry.ID,
        name: str,
        payload: JSON | None = None,
    ) -> SendEventPayload:
        who = await caller(info)

        async def work() -> EventDelivery:
            await load_execution(who, execution_id, "operate")
            sent = await who.app.send_event(
                execution_id, name, payload, sender=who.principal.subject
            )
            return EventDelivery(
                signal_id=strawberry.ID(sent["signalId"]), delivered=bool(sent["delivered"])
            )

        return await as_payload(work(), lambda delivery: delivery)

    @strawberry.mutation(description="Cancel several executions; one result per id, in order.")
    async def cancel_executions(
        self, info: GqlInfo, ids: list[strawberry.ID], reason: str = ""
    ) -> list[ExecutionPayload]:
        if len(ids) > MAX_BATCH:
            raise InputInvalid(f"at most {MAX_BATCH} items per batch", path="/ids")
        who = await caller(info)

        async def cancel(app: WorkflowApp, execution_id: str) -> models.WorkflowExecution:
            return await app.cancel(execution_id, reason)

        return [
            await as_payload(_operate(who, execution_id, cancel), WorkflowExecution.from_model)
            for execution_id in ids
        ]
