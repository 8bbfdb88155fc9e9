"""Request and response bodies of the REST API that are not core models.

The core models (``WorkflowDefinition``, ``WorkflowExecution``, ``ExecutionEvent``)
are used as they are; these add the envelopes (pages, errors) and the bodies of
the control endpoints. Every one is camelCase on the wire, like the core models.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from shared.app.flow_usage import QueueView, public_queue
from shared.models import (
    ErrorInfo,
    ExecutionEvent,
    StepRunStatus,
    WorkflowDefinition,
    WorkflowExecution,
)


class _Body(BaseModel):
    """camelCase on the wire; unknown fields refused."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class ExecutionInput(_Body):
    """Body of ``POST /workflows/{id}/execute`` (the seed's ExecutionInput)."""

    input: dict[str, Any] = Field(default_factory=dict)
    """Merged over the workflow's variables."""
    version: int | None = Field(default=None, ge=1, le=2**31 - 1)
    """Run this version instead of the latest."""
    execution_id: str | None = Field(
        default=None, min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:\-]+$"
    )
    """Idempotency id: a second start with the same id returns the first execution."""


class CancelInput(_Body):
    """Optional body of ``POST /executions/{id}/cancel``."""

    reason: str = Field(default="", max_length=1000)


class EventInput(_Body):
    """Body of ``POST /executions/{id}/events``: an event for a ``wait_for_event`` step."""

    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:\-]+$")
    payload: Any = None


class SignalResult(_Body):
    """An event was recorded; ``delivered`` says whether a waiting step took it now."""

    signal_id: str
    delivered: bool


class ValidationResult(_Body):
    valid: bool


class Health(_Body):
    status: Literal["ok"]
    service: str


class IssueBody(_Body):
    code: str
    message: str
    path: str
    """JSON pointer into the submitted document ('' for the whole document)."""


class ErrorDetail(_Body):
    code: str
    """Stable error code (NOT_FOUND, VALIDATION_FAILED, VERSION_MISMATCH...)."""
    message: str
    path: str | None = None
    """JSON pointer of the first problem, for input errors."""
    errors: list[IssueBody] | None = None
    """Every validation problem (VALIDATION_FAILED)."""
    details: dict[str, Any] | None = None


class ErrorBody(_Body):
    """The one error shape of every endpoint."""

    error: ErrorDetail


class StepRunView(_Body):
    """One step run of an execution's history (internal bookkeeping left out)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    id: str
    step_id: str
    step_type: str
    scope: str = ""
    iteration: int = 1
    attempt: int = 1
    status: StepRunStatus
    generation: int = 0
    input: Any = None
    output: Any = None
    output_truncated: bool = False
    error: ErrorInfo | None = None
    due_at: datetime | None = None
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_ms: float | None = None


class ExecutionView(WorkflowExecution):
    """An execution as the API shows it: ``queue`` only while it is queued, and only
    its public part (reason, key, priority, queuedAt and position)."""

    queue: QueueView | None = None  # type: ignore[assignment]

    @classmethod
    def of(cls, execution: WorkflowExecution, **extra: Any) -> Self:
        """The view of ``execution`` (``extra``: fields of a subclass, e.g. ``steps``)."""
        fields = {name: getattr(execution, name) for name in WorkflowExecution.model_fields}
        return cls(**{**fields, "queue": public_queue(execution), **extra})


class ExecutionDetail(ExecutionView):
    """An execution with its step history, oldest run first."""

    steps: list[StepRunView] = Field(default_factory=list)


class WorkflowPage(_Body):
    items: list[WorkflowDefinition]
    next_cursor: str | None = None
    """Pass as ``cursor`` for the next page; null on the last page."""


class ExecutionPage(_Body):
    items: list[ExecutionView]
    next_cursor: str | None = None


class WorkflowList(_Body):
    items: list[WorkflowDefinition]


class StepList(_Body):
    items: list[StepRunView]


class EventPage(_Body):
    items: list[ExecutionEvent]
    next_after: int | None = None
    """Pass as ``after`` to read on; null when there were fewer events than ``limit``."""


class DecisionGraph(_Body):
    """A decision step's tree as a Mermaid flowchart."""

    workflow_id: str
    step_id: str
    version: int | None = None
    """The version asked for; null for the latest."""
    format: Literal["mermaid"] = "mermaid"
    graph: str
    """Mermaid ``flowchart TD`` source."""
