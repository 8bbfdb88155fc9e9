"""``publish`` (a message on the event bus) and ``subworkflow`` (a child execution)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from shared.engine.steps import (
    QUICK_STEP_SECONDS,
    Complete,
    Outcome,
    StartChild,
    StepConfig,
    StepContext,
    StepType,
)
from shared.errors import Issue, StepFailed
from shared.expressions import check_template
from shared.models import WorkflowStep
from shared.ports import WorkflowQuery


class PublishConfig(StepConfig):
    topic: str = Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9_.\-~%+]+$")
    data: Any = None
    """Message body template (JSON)."""
    attributes: dict[str, str] = Field(default_factory=dict)


class PublishStep(StepType):
    type_name = "publish"
    config_model = PublishConfig

    def time_limit(self, config: Any) -> float | None:
        return QUICK_STEP_SECONDS  # it only records what comes next

    def check(self, step: WorkflowStep, config: Any, path: str) -> list[Issue]:
        return check_template(
            {"data": config.data, "attributes": config.attributes}, f"{path}/config"
        )

    async def execute(self, ctx: StepContext) -> Outcome:
        bus = ctx.services.event_bus
        if bus is None:
            raise StepFailed("no event bus is configured", code="NO_EVENT_BUS", retryable=False)
        data = ctx.render(ctx.config.data)
        attributes = {k: str(v) for k, v in ctx.render(ctx.config.attributes).items()}
        attributes.setdefault("executionId", ctx.execution.id)
        ctx.run.input = {"topic": ctx.config.topic, "data": data, "attributes": attributes}
        message_id = await bus.publish(ctx.config.topic, data, attributes, ctx.run.id)
        return Complete(output={"messageId": message_id, "topic": ctx.config.topic})


MAX_DEPTH = 8


class SubworkflowConfig(StepConfig):
    workflow_id: str | None = Field(default=None, min_length=1)
    workflow_name: str | None = Field(default=None, min_length=1)
    """Alternative to ``workflow_id``: the active workflow with this name."""
    version: int | None = Field(default=None, ge=1)
    """Pinned version of the child; the latest when absent (resolved when the step runs)."""
    input: Any = Field(default_factory=dict)
    """Template of the child's input (must render to an object)."""

    @model_validator(mode="after")
    def _one_target(self) -> SubworkflowConfig:
        if (self.workflow_id is None) == (self.workflow_name is None):
            raise ValueError("give exactly one of 'workflowId' or 'workflowName'")
        if self.workflow_name is not None and self.version is not None:
            raise ValueError("'version' needs 'workflowId'")
        return self


class SubworkflowStep(StepType):
    type_name = "subworkflow"
    config_model = SubworkflowConfig

    def time_limit(self, config: Any) -> float | None:
        return QUICK_STEP_SECONDS  # it only records what comes next

    def check(self, step: WorkflowStep, config: Any, path: str) -> list[Issue]:
        return check_template(config.input, f"{path}/config/input")

    async def execute(self, ctx: StepContext) -> Outcome:
        child = await _find_child(ctx.services.workflows, ctx.config, ctx.execution.tenant)
        if child is None:
            target = ctx.config.workflow_id or ctx.config.workflow_name
            raise StepFailed(
                f"workflow {target} not found", code="SUBWORKFLOW_NOT_FOUND", retryable=False
            )
        if int(ctx.execution.trigger.get("depth", 0)) >= MAX_DEPTH:
            raise StepFailed(
                f"subworkflows nested deeper than {MAX_DEPTH}",
                code="SUBWORKFLOW_TOO_DEEP",
                retryable=False,
            )
        data = ctx.render(ctx.config.input)
        if not isinstance(data, dict):
            raise StepFailed(
                "subworkflow input must be an object", code="INVALID_INPUT", retryable=False
            )
        ctx.run.input = {"workflowId": child.id, "version": child.version, "input": data}
        return StartChild(definition=child, input=data)

    def resume(self, ctx: StepContext, payload: Any) -> Outcome:
        if payload.get("ok"):
            return Complete(output=payload.get("value"))
        error = payload.get("error") or {}
        raise StepFailed(
            error.get("message", "child execution failed"),
            code=error.get("code", "CHILD_FAILED"),
            retryable=False,
        )


async def _find_child(store: Any, config: SubworkflowConfig, tenant: str) -> Any:
    if config.workflow_id is not None:
        if config.version is not None:
            return await store.get_version(config.workflow_id, config.version, tenant)
        return await store.get_workflow(config.workflow_id, tenant)
    cursor = None
    while True:
        page = await store.list_workflows(
            WorkflowQuery(tenant=tenant, active_only=True, limit=200, cursor=cursor)
        )
        for definition in page.items:
            if definition.name == config.workflow_name:
                return definition
        if page.next_cursor is None:
            return None
        cursor = page.next_cursor
