"""Executions, step runs and the events streamed about them."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any, Self

from pydantic import Field, PrivateAttr

from shared.models._base import ApiModel, RecordModel, utcnow


class ExecutionStatus(StrEnum):
    PENDING = "pending"
    QUEUED = "queued"
    """Waiting for a concurrency slot (``docs/flow-control.md``); no step is scheduled."""
    RUNNING = "running"
    WAITING = "waiting"
    PAUSED = "paused"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL_EXECUTION


_TERMINAL_EXECUTION = {
    ExecutionStatus.SUCCEEDED,
    ExecutionStatus.FAILED,
    ExecutionStatus.CANCELLED,
    ExecutionStatus.TIMED_OUT,
}


class StepRunStatus(StrEnum):
    SCHEDULED = "scheduled"
    """Created and due at ``due_at``; a task for it is (or will be) on the queue."""
    RUNNING = "running"
    """Claimed by a worker holding a lease."""
    WAITING = "waiting"
    """Parked: a durable wait, an event, branches or a child execution to finish."""
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL_RUN


_TERMINAL_RUN = {
    StepRunStatus.SUCCEEDED,
    StepRunStatus.FAILED,
    StepRunStatus.SKIPPED,
    StepRunStatus.CANCELLED,
}


class ErrorInfo(RecordModel):
    code: str
    message: str
    retryable: bool = False
    step_id: str | None = None


class ParentLink(RecordModel):
    """Where a child execution reports back (a subworkflow step run)."""

    execution_id: str
    run_id: str


class FlowKey(RecordModel):
    """One concurrency key an execution needs a slot of, evaluated at its start."""

    slot_key: str
    """Internal key of the slot set: scope, workflow (scope workflow) and key value."""
    label: str
    """The evaluated key value as users see it (``acme``; ``""`` for the shared key)."""
    limit: int
    scope: str = "workflow"


class QueueState(RecordModel):
    """An execution's flow control state: its keys, the slots it holds, its queue place."""

    keys: list[FlowKey] = Field(default_factory=list)
    held: list[str] = Field(default_factory=list)
    """Ids of the slot documents this execution holds (released when it ends)."""
    priority: int = 0
    """Evaluated ``priority``: higher starts first among queued executions of a key."""
    key: str | None = None
    """While queued: the label of the key it waits for."""
    wait_key: str | None = None
    """While queued: the ``slot_key`` it waits for (the queue it is in)."""
    reason: str | None = None
    """While queued: why (``waiting for concurrency slot key=acme``)."""
    queued_at: datetime | None = None
    position: int | None = None
    """Place in its key's queue (1 = next), computed on read; never stored."""
    timeout_seconds: float | None = None
    """The workflow's time limit, started when the execution leaves the queue."""
    singleton: FlowKey | None = None
    """The ``singleton`` key whose one slot this execution holds until it ends."""
    gates: list[FlowKey] = Field(default_factory=list)
    """Its ``rateLimit``, ``throttle`` and ``debounce`` keys (``docs/flow-control-start-
    controls.md``), evaluated at start; ``scope`` names the control."""
    not_before: datetime | None = None
    """While held back by a start control: when it may start (its ``$start`` timer)."""


class ConcurrencySlot(RecordModel):
    """One of the ``limit`` slot documents of a concurrency key, in the store."""

    id: str
    tenant: str
    slot_key: str
    label: str = ""
    index: int
    holder: str | None = None
    """The execution holding this slot; ``None`` (or an ended execution) = free."""
    tat: datetime | None = None
    """``throttle``: the GCRA theoretical arrival time of the next start."""
    starts: list[datetime] = Field(default_factory=list)
    """``rateLimit``: the times of the latest ``limit`` starts (granted or reserved)."""
    updated_at: datetime = Field(default_factory=utcnow)


class WorkflowExecution(ApiModel):
    """One run of a workflow (the seed's WorkflowExecution, extended)."""

    id: str
    workflow_id: str
    workflow_version: int
    """The definition version this execution is pinned to."""
    status: ExecutionStatus = ExecutionStatus.PENDING
    current_step: str | None = None
    variables: dict[str, Any] = Field(default_factory=dict)
    input: dict[str, Any] = Field(default_factory=dict)
    result: Any = None
    error: str | None = None
    error_info: ErrorInfo | None = None
    started_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    completed_at: datetime | None = None
    duration: float | None = None
    """Milliseconds from start to completion."""
    deadline: datetime | None = None
    trigger: dict[str, Any] = Field(default_factory=lambda: {"type": "manual"})
    """How it started: type plus trigger-specific fields (message id, schedule time...)."""
    parent: ParentLink | None = None
    tenant: str = "default"
    redrive_count: int = 0
    event_seq: int = 0
    """Sequence number of the last event emitted for this execution."""
    steps_run: int = 0
    """Step runs finished so far (guards against runaway executions)."""
    failed_run_id: str | None = None
    queue: QueueState | None = None
    """Flow control: concurrency keys, held slots, queue place (``None`` without limits)."""


class StepRun(RecordModel):
    """One attempt of one step in one scope: the unit of exactly-once recording."""

    id: str
    execution_id: str
    workflow_id: str = ""
    step_id: str
    step_type: str
    scope: str = ""
    """'' for the main flow; '<owner run id>/<index>' inside a parallel branch or map item."""
    iteration: int = 1
    attempt: int = 1
    status: StepRunStatus = StepRunStatus.SCHEDULED
    due_at: datetime | None = Field(default_factory=utcnow)
    """When the run's task is due; ``None`` for a parked run with no timer."""
    generation: int = 0
    """Redrive generation the run belongs to (part of its id)."""
    visits: dict[str, int] = Field(default_factory=dict)
    """Visits of loop steps (steps on a cycle) along this run's path in its scope."""
    context: dict[str, Any] = Field(default_factory=dict)
    """Values the step sees besides vars: ``prev`` output, map ``item`` and ``index``."""
    input: Any = None
    """The step's resolved configuration, as recorded when it ran."""
    output: Any = None
    output_truncated: bool = False
    error: ErrorInfo | None = None
    state: dict[str, Any] = Field(default_factory=dict)
    """Durable state of a parked step (wait target, wake payload, branch count...)."""
    wake_seq: int = 0
    """Bumped each time the run is re-queued while parked; part of the task name."""
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_ms: float | None = None
    idempotency_key: str = ""
    predecessor_id: str | None = None
    deliveries: int = 0
    """How many task deliveries claimed this run."""


class ExecutionEvent(RecordModel):
    """A change streamed to clients; ``seq`` is gap-free per execution."""

    execution_id: str
    workflow_id: str
    seq: int
    type: str
    """execution.queued|execution.dequeued|execution.started|step.started|step.succeeded|step.failed|step.retrying|step.waiting|
    step.skipped|execution.waiting|execution.paused|execution.resumed|execution.succeeded|
    execution.failed|execution.cancelled|execution.timed_out"""
    step_id: str | None = None
    run_id: str | None = None
    status: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    at: datetime = Field(default_factory=utcnow)

    _wire: str | None = PrivateAttr(default=None)

    def wire_json(self) -> str:
        """``to_json_dict()`` as compact JSON, encoded once per event however many
        stream subscribers it is sent to (an event is not changed once published)."""
        if self._wire is None:
            self._wire = json.dumps(self.to_json_dict(), separators=(",", ":"))
        return self._wire

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy; one with changed fields is encoded anew."""
        copy = super().model_copy(update=update, deep=deep)
        if update:
            copy._wire = None
        return copy


class JoinMark(RecordModel):
    """A finished branch or map item of a fan-out step run."""

    owner_run_id: str
    index: int
    status: StepRunStatus
    output: Any = None
    error: ErrorInfo | None = None


class Signal(RecordModel):
    """An event sent to an execution, consumed by a ``wait_for_event`` step."""

    id: str
    execution_id: str
    name: str
    payload: Any = None
    sender: str | None = None
    """The authenticated principal who sent it (its subject), when sent through the API."""
    consumed_by: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
