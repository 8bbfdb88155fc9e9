"""GraphQL input types and their conversion to the JSON the use cases validate.

Inputs mirror the definition's JSON (camelCase), so the JSON pointers of validation
errors (``/steps/1/config/url``) address the ``WorkflowInput`` the client sent.
Unset and null fields are left out: the model's documented defaults apply.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from enum import Enum
from typing import Any

import strawberry
from strawberry.scalars import JSON
from strawberry.utils.str_converters import to_camel_case

from shared.api.graphql.enums import ErrorStrategy, ExecutionStatus


@strawberry.input(description="Retry schedule; omitted fields take the documented defaults.")
class RetryPolicyInput:
    max_attempts: int | None = None
    initial_delay_seconds: float | None = None
    multiplier: float | None = None
    max_delay_seconds: float | None = None
    jitter: float | None = None
    retry_on: list[str] | None = None


@strawberry.input(description="The seed's onError.")
class ErrorHandlingInput:
    strategy: ErrorStrategy | None = None
    retry: RetryPolicyInput | None = None
    fallback_step: str | None = None


@strawberry.input
class StepConditionInput:
    expression: str
    description: str | None = None


@strawberry.input(description="One step; `config` is the type's JSON configuration.")
class WorkflowStepInput:
    id: str
    type: str
    name: str | None = None
    config: JSON | None = None
    conditions: list[StepConditionInput] | None = None
    next_steps: list[str] | None = None
    on_error: ErrorHandlingInput | None = None
    timeout_seconds: float | None = None
    max_iterations: int | None = None
    output_var: str | None = None


@strawberry.input(
    description="type manual | schedule (cron, timezone, input) | event "
    "(topic, filter) | webhook (secretRef)."
)
class WorkflowTriggerInput:
    type: str = "manual"
    cron: str | None = None
    timezone: str | None = None
    input: JSON | None = None
    topic: str | None = None
    filter: str | None = None
    secret_ref: str | None = None


@strawberry.input(description="A workflow definition; an update replaces the whole of it.")
class WorkflowInput:
    name: str
    steps: list[WorkflowStepInput]
    description: str | None = None
    is_active: bool | None = None
    trigger: WorkflowTriggerInput | None = None
    variables: JSON | None = None
    tags: list[str] | None = None
    start_step: str | None = None
    timeout_seconds: float | None = None
    output: JSON | None = None


@strawberry.input
class WorkflowFilter:
    active_only: bool = False
    tags: list[str] | None = strawberry.field(default=None, description="Carrying all of these.")


@strawberry.input
class ExecutionFilter:
    workflow_id: strawberry.ID | None = None
    status: ExecutionStatus | None = None
    started_from: datetime | None = strawberry.field(
        default=None, description="Started at or after this moment (with a time zone)."
    )
    started_before: datetime | None = strawberry.field(
        default=None, description="Started before this moment (with a time zone)."
    )


@strawberry.input(description="How to start an execution.")
class ExecutionInput:
    input: JSON | None = strawberry.field(default=None, description="A JSON object.")
    version: int | None = strawberry.field(default=None, description="Default: the head.")
    execution_id: strawberry.ID | None = strawberry.field(
        default=None, description="Idempotency: a second start with the same id returns the first."
    )


@strawberry.input(description="One start of a batch.")
class ExecuteWorkflowRequest:
    workflow_id: strawberry.ID
    input: JSON | None = None
    version: int | None = None
    execution_id: strawberry.ID | None = None

    def execution(self) -> ExecutionInput:
        return ExecutionInput(
            input=self.input, version=self.version, execution_id=self.execution_id
        )


def to_json(value: Any) -> Any:
    """An input object as camelCase JSON without its unset fields (JSON scalars as is)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            to_camel_case(field.name): to_json(getattr(value, field.name))
            for field in dataclasses.fields(value)
            if getattr(value, field.name) is not None
        }
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, list):
        return [to_json(item) for item in value]
    return value


def definition_json(workflow: WorkflowInput) -> dict[str, Any]:
    """The definition document of a ``WorkflowInput``."""
    raw: dict[str, Any] = to_json(workflow)
    return raw
