"""GraphQL types of executions, step runs and events, built by ``from_model``."""

# mypy: disable-error-code="untyped-decorator"
# (strawberry.field(...) with arguments is typed as returning Any)
from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from strawberry.scalars import JSON

from shared import models
from shared.api.graphql.context import GqlInfo, caller
from shared.api.graphql.enums import ExecutionStatus, StepRunStatus
from shared.api.graphql.flow_api import QueuePlace, queue_of
from shared.api.graphql.pagination import check_first, offset_page
from shared.api.graphql.workflow_types import Workflow
from shared.errors import NotFound


def _json(value: Any) -> JSON | None:
    return None if value is None else JSON(value)


@strawberry.type(description="Why a step or an execution failed.")
class ErrorInfo:
    code: str
    message: str
    retryable: bool
    step_id: str | None

    @classmethod
    def from_model(cls, model: models.ErrorInfo | None) -> ErrorInfo | None:
        if model is None:
            return None
        return cls(
            code=model.code, message=model.message, retryable=model.retryable, step_id=model.step_id
        )


@strawberry.type(description="One attempt of one step: the unit of exactly-once recording.")
class StepRun:
    id: strawberry.ID
    step_id: str
    step_type: str
    scope: str = strawberry.field(description="'' for the main flow, else the branch/item.")
    iteration: int
    attempt: int
    status: StepRunStatus
    input: JSON | None = strawberry.field(description="The resolved configuration it ran with.")
    output: JSON | None
    output_truncated: bool
    error: ErrorInfo | None
    due_at: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: float | None
    idempotency_key: str
    deliveries: int

    @classmethod
    def from_model(cls, model: models.StepRun) -> StepRun:
        return cls(
            id=strawberry.ID(model.id),
            step_id=model.step_id,
            step_type=model.step_type,
            scope=model.scope,
            iteration=model.iteration,
            attempt=model.attempt,
            status=StepRunStatus(model.status.value),
            input=_json(model.input),
            output=_json(model.output),
            output_truncated=model.output_truncated,
            error=ErrorInfo.from_model(model.error),
            due_at=model.due_at,
            created_at=model.created_at,
            started_at=model.started_at,
            finished_at=model.finished_at,
            duration_ms=model.duration_ms,
            idempotency_key=model.idempotency_key,
            deliveries=model.deliveries,
        )


@strawberry.type(description="A recorded change of an execution; `seq` is gap-free.")
class ExecutionEvent:
    execution_id: strawberry.ID
    workflow_id: strawberry.ID
    seq: int
    type: str = strawberry.field(description="e.g. step.succeeded, execution.waiting.")
    step_id: str | None
    run_id: str | None
    status: str | None = strawberry.field(
        description="Status value of the step run (step.*) or of the execution (execution.*)."
    )
    data: JSON
    at: datetime

    @classmethod
    def from_model(cls, model: models.ExecutionEvent) -> ExecutionEvent:
        return cls(
            execution_id=strawberry.ID(model.execution_id),
            workflow_id=strawberry.ID(model.workflow_id),
            seq=model.seq,
            type=model.type,
            step_id=model.step_id,
            run_id=model.run_id,
            status=model.status,
            data=JSON(model.data),
            at=model.at,
        )


@strawberry.type(description="One run of a workflow (the seed's WorkflowExecution).")
class WorkflowExecution:
    id: strawberry.ID
    workflow_id: strawberry.ID
    workflow_version: int = strawberry.field(description="The pinned definition version.")
    status: ExecutionStatus
    current_step: str | None
    variables: JSON
    input: JSON
    result: JSON | None
    error: str | None
    error_info: ErrorInfo | None
    started_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    duration: float | None = strawberry.field(description="Milliseconds, once finished.")
    trigger: JSON
    redrive_count: int
    parent_execution_id: strawberry.ID | None
    last_event_seq: int = strawberry.field(description="Resume `events`/streams after this.")
    model: strawberry.Private[models.WorkflowExecution | None] = None

    @classmethod
    def from_model(cls, model: models.WorkflowExecution) -> WorkflowExecution:
        parent = model.parent
        return cls(
            id=strawberry.ID(model.id),
            workflow_id=strawberry.ID(model.workflow_id),
            workflow_version=model.workflow_version,
            status=ExecutionStatus(model.status.value),
            current_step=model.current_step,
            variables=JSON(model.variables),
            input=JSON(model.input),
            result=_json(model.result),
            error=model.error,
            error_info=ErrorInfo.from_model(model.error_info),
            started_at=model.started_at,
            updated_at=model.updated_at,
            completed_at=model.completed_at,
            duration=model.duration,
            trigger=JSON(model.trigger),
            redrive_count=model.redrive_count,
            parent_execution_id=strawberry.ID(parent.execution_id) if parent else None,
            last_event_seq=model.event_seq,
            model=model,
        )

    @strawberry.field(description="Where it waits for a concurrency slot; null unless queued.")
    async def queue(self, info: GqlInfo) -> QueuePlace | None:
        if self.model is None:
            return None
        return await queue_of((await caller(info)).app, self.model)

    @strawberry.field(description="The definition at the version this execution is pinned to.")
    async def workflow(self, info: GqlInfo) -> Workflow | None:
        app = (await caller(info)).app
        try:
            definition = await app.get_version(self.workflow_id, self.workflow_version)
        except NotFound:
            return None
        return Workflow.from_model(definition)

    @strawberry.field(description="Step history (every step run), oldest first.")
    async def steps(
        self,
        info: GqlInfo,
        step_id: str | None = None,
        first: int = 100,
        after: str | None = None,
    ) -> list[StepRun]:
        app = (await caller(info)).app
        runs = await app.step_history(self.id)
        if step_id is not None:
            runs = [run for run in runs if run.step_id == step_id]
        items, _ = offset_page(runs, first, after)
        return [StepRun.from_model(run) for run in items]

    @strawberry.field(description="Recorded events with `seq` greater than `after`.")
    async def events(self, info: GqlInfo, after: int = 0, first: int = 100) -> list[ExecutionEvent]:
        app = (await caller(info)).app
        events = await app.events(self.id, after_seq=after, limit=check_first(first))
        return [ExecutionEvent.from_model(event) for event in events]
