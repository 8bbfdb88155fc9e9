"""Store ports: workflows and their versions; executions, step runs and events."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, Protocol, TypeVar

from shared.models import (
    ConcurrencySlot,
    ExecutionEvent,
    ExecutionStatus,
    JoinMark,
    Signal,
    StepRun,
    StepRunStatus,
    WorkflowDefinition,
    WorkflowExecution,
)
from shared.ports.analytics import RollupDelta, RollupStore
from shared.ports.retention import RetentionStore

__all__ = [
    "QUEUE_COUNT_MOST",
    "EventListener",
    "EventSource",
    "ExecutionQuery",
    "ExecutionStore",
    "ExecutionTx",
    "Page",
    "QueueSummary",
    "Store",
    "WorkflowHead",
    "WorkflowQuery",
    "WorkflowStore",
]

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a listing; pass ``next_cursor`` back to get the next one."""

    items: list[T]
    next_cursor: str | None = None


QUEUE_COUNT_MOST = 1000
"""How far the queue reads below count (one Firestore read per 1000 index entries)."""


@dataclass(frozen=True)
class QueueSummary:
    """How many executions wait on one concurrency key, and the oldest one's time."""

    queued: int
    """Counted up to the ``most`` asked for (a bounded count)."""
    oldest_queued_at: datetime | None
    """When the longest-waiting execution of the key was queued (``None``: none is)."""


@dataclass(frozen=True)
class WorkflowQuery:
    tenant: str = "default"
    active_only: bool = False
    tags: tuple[str, ...] = ()
    """Workflows carrying every one of these tags."""
    name: str | None = None
    """The workflow of this name only (names are unique in a tenant)."""
    limit: int = 50
    cursor: str | None = None


@dataclass(frozen=True)
class ExecutionQuery:
    tenant: str = "default"
    workflow_id: str | None = None
    status: ExecutionStatus | None = None
    limit: int = 50
    cursor: str | None = None
    started_from: datetime | None = None
    """Executions started at or after this moment only."""
    started_before: datetime | None = None
    """Executions started before this moment only."""


@dataclass(frozen=True)
class WorkflowHead:
    """Where a workflow's head points, without its definition."""

    version: int
    is_active: bool


class WorkflowStore(Protocol):
    """Workflow heads and their immutable versions."""

    async def create_workflow(self, definition: WorkflowDefinition, tenant: str) -> None:
        """Store a new workflow and its version 1 atomically; Conflict if the id exists."""

    async def save_version(
        self, definition: WorkflowDefinition, expected_version: int, tenant: str
    ) -> None:
        """Store ``definition`` (version = expected + 1) as the new head, atomically.

        Raises Conflict when the head is no longer at ``expected_version``.
        """

    async def get_workflow(self, workflow_id: str, tenant: str) -> WorkflowDefinition | None:
        """The head (latest version) of a workflow that is not deleted."""

    async def get_head(self, workflow_id: str, tenant: str) -> WorkflowHead | None:
        """The version and active flag of a workflow that is not deleted, without its
        definition: a start takes that version from the engine's cache of versions
        instead of parsing the head (0.5 ms for a 100-step workflow)."""

    async def get_version(
        self, workflow_id: str, version: int, tenant: str
    ) -> WorkflowDefinition | None:
        """An immutable version; still readable after the workflow is deleted."""

    async def list_versions(self, workflow_id: str, tenant: str) -> list[WorkflowDefinition]: ...

    async def list_workflows(self, query: WorkflowQuery) -> Page[WorkflowDefinition]: ...

    async def delete_workflow(self, workflow_id: str, tenant: str) -> bool:
        """Hide the head; versions stay for the executions pinned to them."""

    async def touch_executed(self, workflow_id: str, at: datetime) -> None:
        """Record ``lastExecuted`` on the head without writing a new version."""


class ExecutionTx(Protocol):
    """One atomic unit of work over executions. All reads come before any write."""

    async def get_execution(self, execution_id: str) -> WorkflowExecution | None: ...

    async def get_run(self, run_id: str) -> StepRun | None: ...

    async def list_runs(
        self, execution_id: str, statuses: frozenset[StepRunStatus] | None = None
    ) -> list[StepRun]: ...

    async def list_joins(self, owner_run_id: str) -> list[JoinMark]: ...

    async def find_signal(self, execution_id: str, name: str) -> Signal | None:
        """The oldest unconsumed signal of that name, if any."""

    def put_execution(self, execution: WorkflowExecution) -> None: ...

    def put_run(self, run: StepRun) -> None: ...

    def put_join(self, mark: JoinMark) -> None: ...

    def delete_join(self, owner_run_id: str, index: int) -> None: ...

    def put_signal(self, signal: Signal) -> None: ...

    def add_event(self, event: ExecutionEvent) -> None: ...

    def add_rollup(self, delta: RollupDelta) -> None:
        """Add analytics counters in this transaction (``shared.ports.analytics``)."""

    async def get_slots(self, slot_ids: list[str]) -> dict[str, ConcurrencySlot]:
        """The concurrency slot documents of these ids that exist (flow control)."""

    def put_slot(self, slot: ConcurrencySlot) -> None:
        """Write one concurrency slot document (its holder, or ``None`` = free)."""

    async def queued_executions(
        self, tenant: str, wait_key: str, limit: int
    ) -> list[WorkflowExecution]:
        """Executions of ``tenant`` queued on ``wait_key``: priority desc, then FIFO."""


class ExecutionStore(Protocol):
    """Executions, step runs, join marks, signals and events."""

    @property
    def reruns_transactions(self) -> bool:
        """Whether ``run_transaction`` may call its body more than once (contention
        retries, as Firestore does); callers then hand it fresh copies on each call."""

    async def run_transaction(self, fn: Callable[[ExecutionTx], Awaitable[T]]) -> T:
        """Run ``fn`` in one transaction.

        A store whose ``reruns_transactions`` is true (Firestore) may call ``fn`` again
        on contention, so ``fn`` must not depend on state it changed in an earlier call.
        Writes are buffered and applied when ``fn`` returns; reads in the transaction do
        not see its own buffered writes.
        """

    async def get_execution(self, execution_id: str) -> WorkflowExecution | None: ...

    async def list_executions(self, query: ExecutionQuery) -> Page[WorkflowExecution]: ...

    async def get_run(self, run_id: str) -> StepRun | None: ...

    async def list_runs(self, execution_id: str) -> list[StepRun]:
        """Every step run of an execution, oldest first."""

    async def list_events(
        self, execution_id: str, after_seq: int = 0, limit: int = 1000
    ) -> list[ExecutionEvent]: ...

    async def due_runs(self, now: datetime, grace_seconds: float, limit: int) -> list[StepRun]:
        """Runs the queue should have delivered: scheduled and due more than ``grace``
        ago, or running with an expired lease. The sweeper re-enqueues them."""

    async def list_queued(self, tenant: str | None, limit: int) -> list[WorkflowExecution]:
        """Queued executions (of one tenant, or of all), oldest queued first."""

    async def list_slots(self, tenant: str, slot_key_prefix: str) -> list[ConcurrencySlot]:
        """Concurrency slot documents of a tenant whose key starts with the prefix."""

    async def queue_position(
        self,
        tenant: str,
        wait_key: str,
        priority: int,
        queued_at: datetime,
        most: int = QUEUE_COUNT_MOST,
    ) -> int:
        """Place (1 = next) of an execution of ``priority`` queued at ``queued_at`` in
        the queue of ``wait_key``: 1 + the executions queued there that start before it
        (a higher priority, or the same one queued earlier), counted up to ``most``; ties
        share a place. Outside a transaction: a snapshot that may be stale at once."""

    async def queue_summary(
        self, tenant: str, wait_key: str, most: int = QUEUE_COUNT_MOST
    ) -> QueueSummary:
        """How many executions of ``tenant`` are queued on ``wait_key`` (up to ``most``)
        and when the oldest of them was queued."""


EventListener = Callable[[list[ExecutionEvent]], None]
"""Called with the events of one transaction after it committed."""


class EventSource(Protocol):
    """A store's listener registry: the events of every transaction it commits."""

    def add_listener(self, callback: EventListener) -> None: ...

    def remove_listener(self, callback: EventListener) -> None: ...


class Store(WorkflowStore, ExecutionStore, EventSource, RollupStore, RetentionStore, Protocol):
    """One database holding both: what a runtime wires (SQLite, memory, Firestore);
    its executions are deleted by the retention sweep (``shared.ports.retention``)."""

    async def close(self) -> None:
        """Release connections and clients."""
