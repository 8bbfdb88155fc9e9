"""GraphQL types of workflow definitions, built from the pydantic models by ``from_model``."""

# mypy: disable-error-code="untyped-decorator"
# (strawberry.field(...) with arguments is typed as returning Any)
from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry.scalars import JSON

from shared import models
from shared.api.auth import authorize
from shared.api.graphql.context import GqlInfo, caller
from shared.api.graphql.enums import ErrorStrategy, ExecutionStatus
from shared.api.graphql.pagination import check_first, offset_page
from shared.errors import NotFound

if TYPE_CHECKING:
    from shared.api.graphql.execution_types import WorkflowExecution


@strawberry.type(description="Retry schedule of a step; delays grow by `multiplier`.")
class RetryPolicy:
    max_attempts: int
    initial_delay_seconds: float
    multiplier: float
    max_delay_seconds: float
    jitter: float
    retry_on: list[str] | None

    @classmethod
    def from_model(cls, model: models.RetryPolicy) -> RetryPolicy:
        return cls(
            max_attempts=model.max_attempts,
            initial_delay_seconds=model.initial_delay_seconds,
            multiplier=model.multiplier,
            max_delay_seconds=model.max_delay_seconds,
            jitter=model.jitter,
            retry_on=model.retry_on,
        )


@strawberry.type(description="The seed's onError: strategy, retry policy, fallback step.")
class ErrorHandling:
    strategy: ErrorStrategy
    retry: RetryPolicy | None
    fallback_step: str | None

    @classmethod
    def from_model(cls, model: models.ErrorHandling) -> ErrorHandling:
        return cls(
            strategy=ErrorStrategy(model.strategy.value),
            retry=RetryPolicy.from_model(model.retry) if model.retry else None,
            fallback_step=model.fallback_step,
        )


@strawberry.type(description="A CEL guard; the step is skipped unless every one is true.")
class StepCondition:
    expression: str
    description: str | None


@strawberry.type(description="One step of a workflow (the seed's WorkflowStep).")
class WorkflowStep:
    id: str
    name: str
    type: str
    config: JSON = strawberry.field(description="Type-specific configuration.")
    conditions: list[StepCondition] | None
    next_steps: list[str]
    on_error: ErrorHandling
    timeout_seconds: float | None
    max_iterations: int | None
    output_var: str | None

    @classmethod
    def from_model(cls, model: models.WorkflowStep) -> WorkflowStep:
        conditions = model.conditions
        return cls(
            id=model.id,
            name=model.name,
            type=model.type,
            config=JSON(model.config),
            conditions=[
                StepCondition(expression=c.expression, description=c.description)
                for c in conditions
            ]
            if conditions is not None
            else None,
            next_steps=model.next_steps,
            on_error=ErrorHandling.from_model(model.on_error),
            timeout_seconds=model.timeout_seconds,
            max_iterations=model.max_iterations,
            output_var=model.output_var,
        )


@strawberry.type(description="How executions start: manual, schedule, event or webhook.")
class WorkflowTrigger:
    type: str
    cron: str | None = None
    timezone: str | None = None
    input: JSON | None = None
    topic: str | None = None
    filter: str | None = None
    secret_ref: str | None = None

    @classmethod
    def from_model(cls, model: Any) -> WorkflowTrigger:
        data: dict[str, Any] = model.model_dump()
        return cls(
            type=data["type"],
            cron=data.get("cron"),
            timezone=data.get("timezone"),
            input=JSON(data["input"]) if "input" in data else None,
            topic=data.get("topic"),
            filter=data.get("filter"),
            secret_ref=data.get("secret_ref"),
        )


@strawberry.type(description="Counts and durations of a workflow's recent executions.")
class ExecutionStats:
    total: int
    window: int = strawberry.field(
        description="The most executions counted (the latest): 1000 for one workflow."
    )
    by_status: JSON = strawberry.field(description="Execution count per status value.")
    duration_p50_ms: float | None
    duration_p95_ms: float | None
    duration_p99_ms: float | None
    last_error: str | None
    decision_stats: JSON | None = strawberry.field(
        default=None,
        description="Per decision step, per branch: count, succeeded, failed, successRate, "
        "meanDurationMs, meanCostUsd (what the history router learns from).",
    )

    @classmethod
    def from_model(cls, model: models.ExecutionStats) -> ExecutionStats:
        decisions = None
        if model.decision_stats is not None:
            decisions = JSON(
                {
                    step: {branch: stats.to_json_dict() for branch, stats in branches.items()}
                    for step, branches in model.decision_stats.items()
                }
            )
        return cls(
            total=model.total,
            window=model.window,
            by_status=JSON(model.by_status),
            duration_p50_ms=model.duration_p50_ms,
            duration_p95_ms=model.duration_p95_ms,
            duration_p99_ms=model.duration_p99_ms,
            last_error=model.last_error,
            decision_stats=decisions,
        )


_Execution = Annotated["WorkflowExecution", strawberry.lazy("shared.api.graphql.execution_types")]


@strawberry.type(description="A workflow definition at one (immutable) version.")
class Workflow:
    id: strawberry.ID
    name: str
    description: str | None
    version: int
    is_active: bool
    trigger: WorkflowTrigger
    steps: list[WorkflowStep]
    variables: JSON
    owner: str
    tags: list[str]
    created_at: datetime
    updated_at: datetime
    start_step: str | None
    timeout_seconds: float | None
    output: JSON | None
    model: strawberry.Private[models.WorkflowDefinition]

    @classmethod
    def from_model(cls, model: models.WorkflowDefinition) -> Workflow:
        return cls(
            id=strawberry.ID(model.id),
            name=model.name,
            description=model.description,
            version=model.version,
            is_active=model.is_active,
            trigger=WorkflowTrigger.from_model(model.trigger),
            steps=[WorkflowStep.from_model(step) for step in model.steps],
            variables=JSON(model.variables),
            owner=model.owner,
            tags=model.tags,
            created_at=model.created_at,
            updated_at=model.updated_at,
            start_step=model.start_step,
            timeout_seconds=model.timeout_seconds,
            output=JSON(model.output) if model.output is not None else None,
            model=model,
        )

    @strawberry.field(description="The whole definition as JSON (export; valid as input).")
    def definition(self) -> JSON:
        return JSON(self.model.to_json_dict())

    @strawberry.field(description="Start time of the latest execution of this workflow.")
    async def last_executed(self, info: GqlInfo) -> datetime | None:
        app = (await caller(info)).app
        return (await app.get_workflow_with_stats(self.id)).last_executed

    @strawberry.field(description="Statistics over the latest executions (any version).")
    async def execution_stats(self, info: GqlInfo) -> ExecutionStats:
        app = (await caller(info)).app
        definition = await app.get_workflow_with_stats(self.id)
        return ExecutionStats.from_model(definition.execution_stats)

    @strawberry.field(description="Every stored version, oldest first.")
    async def versions(
        self, info: GqlInfo, first: int = 50, after: str | None = None
    ) -> list[Workflow]:
        app = (await caller(info)).app
        items, _ = offset_page(await app.list_versions(self.id), first, after)
        return [Workflow.from_model(v) for v in items]

    @strawberry.field(description="This workflow at another version, or null.")
    async def at_version(self, info: GqlInfo, version: int) -> Workflow | None:
        app = (await caller(info)).app
        try:
            return Workflow.from_model(await app.get_version(self.id, version))
        except NotFound:
            return None

    @strawberry.field(description="Executions of this workflow, newest first.")
    async def executions(
        self,
        info: GqlInfo,
        status: ExecutionStatus | None = None,
        first: int = 20,
        after: str | None = None,
    ) -> list[_Execution]:
        from shared.api.graphql.execution_types import WorkflowExecution

        who = await caller(info)
        authorize(who.principal, "read", self.id)
        page = await who.app.list_executions(
            workflow_id=self.id,
            status=models.ExecutionStatus(status.value) if status else None,
            limit=check_first(first),
            cursor=after,
        )
        return [WorkflowExecution.from_model(e) for e in page.items]
