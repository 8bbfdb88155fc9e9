"""In-memory WorkflowStore and ExecutionStore: the fake for unit tests.

Behaves like the SQLite and Firestore stores: transactions buffer their writes, their
reads see only committed state, and everything is copied in and out so callers never
alias a stored object.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from shared.adapters._store_common import (
    Listeners,
    SortKey,
    check_limit,
    epoch,
    epoch_or_none,
    paginate,
)
from shared.adapters.clock import SystemClock
from shared.adapters.memory_rollups import MemoryRollups
from shared.errors import Conflict, InputInvalid, NotFound
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
from shared.ports import Clock, ExecutionQuery, ExecutionTx, Page, WorkflowQuery
from shared.ports.analytics import RollupDelta, RollupQuery, RollupRow
from shared.ports.retention import PurgeCounts, is_expired
from shared.ports.stores import QUEUE_COUNT_MOST, QueueSummary, WorkflowHead

__all__ = ["MemoryStore"]

T = TypeVar("T")
_Record = (
    WorkflowExecution | StepRun | JoinMark | Signal | ExecutionEvent | RollupDelta | ConcurrencySlot
)


@dataclass
class _Head:
    """A workflow head: its latest definition plus what is not part of a version."""

    tenant: str
    doc: WorkflowDefinition
    created: float
    deleted: bool = False


class _MemoryTx:
    """An ExecutionTx over a MemoryStore: reads committed state, buffers writes."""

    def __init__(self, store: MemoryStore) -> None:
        self._store = store
        self.writes: list[_Record | tuple[str, int]] = []

    async def get_execution(self, execution_id: str) -> WorkflowExecution | None:
        return self._store._get_execution(execution_id)

    async def get_run(self, run_id: str) -> StepRun | None:
        return self._store._get_run(run_id)

    async def list_runs(
        self, execution_id: str, statuses: frozenset[StepRunStatus] | None = None
    ) -> list[StepRun]:
        return self._store._list_runs(execution_id, statuses)

    async def list_joins(self, owner_run_id: str) -> list[JoinMark]:
        marks = [m for (owner, _), m in self._store._joins.items() if owner == owner_run_id]
        return [m.model_copy(deep=True) for m in sorted(marks, key=lambda m: m.index)]

    async def find_signal(self, execution_id: str, name: str) -> Signal | None:
        signals = self._store._signals.values()
        for signal in sorted(signals, key=lambda s: self._store._signal_seq[s.id]):
            mine = signal.execution_id == execution_id and signal.name == name
            if mine and signal.consumed_by is None:
                return signal.model_copy(deep=True)
        return None

    def put_execution(self, execution: WorkflowExecution) -> None:
        self.writes.append(execution.model_copy(deep=True))

    def put_run(self, run: StepRun) -> None:
        self.writes.append(run.model_copy(deep=True))

    def put_join(self, mark: JoinMark) -> None:
        self.writes.append(mark.model_copy(deep=True))

    def delete_join(self, owner_run_id: str, index: int) -> None:
        self.writes.append((owner_run_id, index))

    def put_signal(self, signal: Signal) -> None:
        self.writes.append(signal.model_copy(deep=True))

    def add_event(self, event: ExecutionEvent) -> None:
        self.writes.append(event.model_copy(deep=True))

    def add_rollup(self, delta: RollupDelta) -> None:
        self.writes.append(delta)

    async def get_slots(self, slot_ids: list[str]) -> dict[str, ConcurrencySlot]:
        slots = self._store._slots
        return {i: slots[i].model_copy(deep=True) for i in slot_ids if i in slots}

    def put_slot(self, slot: ConcurrencySlot) -> None:
        self.writes.append(slot.model_copy(deep=True))

    async def queued_executions(
        self, tenant: str, wait_key: str, limit: int
    ) -> list[WorkflowExecution]:
        return self._store._queued(tenant, wait_key, limit)


class MemoryStore(Listeners):
    """WorkflowStore and ExecutionStore kept in dicts."""

    reruns_transactions = False
    """``run_transaction`` calls its body once (one lock: no contention retries)."""

    def __init__(self, *, clock: Clock | None = None) -> None:
        super().__init__()
        self._clock = clock or SystemClock()
        self._lock = asyncio.Lock()
        self._seq = itertools.count(1)
        self._heads: dict[str, _Head] = {}
        self._versions: dict[tuple[str, int], WorkflowDefinition] = {}
        self._executions: dict[str, WorkflowExecution] = {}
        self._runs: dict[str, StepRun] = {}
        self._run_seq: dict[str, int] = {}
        self._joins: dict[tuple[str, int], JoinMark] = {}
        self._signals: dict[str, Signal] = {}
        self._signal_seq: dict[str, int] = {}
        self._events: dict[tuple[str, int], ExecutionEvent] = {}
        self._rollups = MemoryRollups()
        self._slots: dict[str, ConcurrencySlot] = {}
        self._doc_bytes: dict[str, int] = {}
        """Size of each stored execution and step run document (by id)."""
        self._stored: dict[str, int] = {}
        """Bytes per tenant: its execution, step run and event documents (as JSON)."""

    async def close(self) -> None:
        """Nothing to release; present for parity with the other stores."""

    # -- workflows ---------------------------------------------------------------

    async def create_workflow(self, definition: WorkflowDefinition, tenant: str) -> None:
        if definition.id in self._heads:
            raise Conflict(f"workflow {definition.id!r} already exists")
        doc = definition.model_copy(deep=True)
        self._heads[doc.id] = _Head(tenant, doc, epoch(doc.created_at))
        self._versions[(doc.id, doc.version)] = doc.model_copy(deep=True)

    async def save_version(
        self, definition: WorkflowDefinition, expected_version: int, tenant: str
    ) -> None:
        if definition.version != expected_version + 1:
            raise InputInvalid(
                f"version {definition.version} does not follow {expected_version}",
                path="/version",
            )
        head = self._live_head(definition.id, tenant)
        if head is None:
            raise NotFound(f"workflow {definition.id!r} not found")
        if head.doc.version != expected_version:
            raise Conflict(
                f"workflow {definition.id!r} is at version {head.doc.version}, "
                f"not {expected_version}"
            )
        doc = definition.model_copy(deep=True)
        if doc.last_executed is None:
            doc.last_executed = head.doc.last_executed
        self._versions[(doc.id, doc.version)] = definition.model_copy(deep=True)
        head.doc = doc

    async def get_workflow(self, workflow_id: str, tenant: str) -> WorkflowDefinition | None:
        head = self._live_head(workflow_id, tenant)
        return None if head is None else head.doc.model_copy(deep=True)

    async def get_head(self, workflow_id: str, tenant: str) -> WorkflowHead | None:
        head = self._live_head(workflow_id, tenant)
        return None if head is None else WorkflowHead(head.doc.version, head.doc.is_active)

    async def get_version(
        self, workflow_id: str, version: int, tenant: str
    ) -> WorkflowDefinition | None:
        head = self._heads.get(workflow_id)
        doc = self._versions.get((workflow_id, version))
        if head is None or head.tenant != tenant or doc is None:
            return None
        return doc.model_copy(deep=True)

    async def list_versions(self, workflow_id: str, tenant: str) -> list[WorkflowDefinition]:
        head = self._heads.get(workflow_id)
        if head is None or head.tenant != tenant:
            return []
        docs = [doc for (wid, _), doc in self._versions.items() if wid == workflow_id]
        return [doc.model_copy(deep=True) for doc in sorted(docs, key=lambda d: d.version)]

    async def list_workflows(self, query: WorkflowQuery) -> Page[WorkflowDefinition]:
        rows: list[tuple[SortKey, WorkflowDefinition]] = []
        for head in self._heads.values():
            if head.deleted or head.tenant != query.tenant:
                continue
            if query.active_only and not head.doc.is_active:
                continue
            if query.name is not None and head.doc.name != query.name:
                continue
            if not set(query.tags) <= set(head.doc.tags):
                continue
            rows.append(((head.created, head.doc.id), head.doc))
        page = paginate(rows, query.cursor, query.limit)
        return Page([doc.model_copy(deep=True) for doc in page.items], page.next_cursor)

    async def delete_workflow(self, workflow_id: str, tenant: str) -> bool:
        head = self._live_head(workflow_id, tenant)
        if head is None:
            return False
        head.deleted = True
        return True

    async def touch_executed(self, workflow_id: str, at: datetime) -> None:
        head = self._heads.get(workflow_id)
        if head is not None:
            head.doc.last_executed = at

    def _live_head(self, workflow_id: str, tenant: str) -> _Head | None:
        head = self._heads.get(workflow_id)
        if head is None or head.deleted or head.tenant != tenant:
            return None
        return head

    # -- executions ----------------------------------------------------------------

    async def run_transaction(self, fn: Callable[[ExecutionTx], Awaitable[T]]) -> T:
        """Run ``fn`` holding the store lock; apply its writes when it returns.

        An existing event seq raises Conflict and nothing is written. ``fn`` must use
        ``tx``, not this store.
        """
        async with self._lock:
            tx = _MemoryTx(self)
            result = await fn(tx)
            events = self._apply(tx.writes)
        self.notify(events)
        return result

    async def get_execution(self, execution_id: str) -> WorkflowExecution | None:
        return self._get_execution(execution_id)

    async def read_rollups(self, query: RollupQuery) -> list[RollupRow]:
        return self._rollups.read(query)

    async def add_rollups(self, deltas: list[RollupDelta]) -> None:
        async with self._lock:
            for delta in deltas:
                self._rollups.add(delta)

    async def list_executions(self, query: ExecutionQuery) -> Page[WorkflowExecution]:
        rows: list[tuple[SortKey, WorkflowExecution]] = [
            ((epoch(ex.started_at), ex.id), ex)
            for ex in self._executions.values()
            if ex.tenant == query.tenant
            and (query.workflow_id is None or ex.workflow_id == query.workflow_id)
            and (query.status is None or ex.status == query.status)
            and (query.started_from is None or ex.started_at >= query.started_from)
            and (query.started_before is None or ex.started_at < query.started_before)
        ]
        page = paginate(rows, query.cursor, query.limit)
        return Page([ex.model_copy(deep=True) for ex in page.items], page.next_cursor)

    async def get_run(self, run_id: str) -> StepRun | None:
        return self._get_run(run_id)

    async def list_runs(self, execution_id: str) -> list[StepRun]:
        return self._list_runs(execution_id, None)

    async def list_events(
        self, execution_id: str, after_seq: int = 0, limit: int = 1000
    ) -> list[ExecutionEvent]:
        check_limit(limit)
        seqs = sorted(seq for (eid, seq) in self._events if eid == execution_id and seq > after_seq)
        return [self._events[(execution_id, seq)].model_copy(deep=True) for seq in seqs[:limit]]

    async def due_runs(self, now: datetime, grace_seconds: float, limit: int) -> list[StepRun]:
        check_limit(limit)
        cutoff = epoch(now) - grace_seconds
        due = [run for run in self._runs.values() if _is_due(run, epoch(now), cutoff)]
        due.sort(key=lambda run: (epoch_or_none(run.due_at) or 0.0, self._run_seq[run.id]))
        return [run.model_copy(deep=True) for run in due[:limit]]

    async def list_queued(self, tenant: str | None, limit: int) -> list[WorkflowExecution]:
        check_limit(limit)
        queued = [
            ex
            for ex in self._executions.values()
            if ex.status == ExecutionStatus.QUEUED and (tenant is None or ex.tenant == tenant)
        ]
        queued.sort(key=lambda ex: (epoch_or_none(_queued_at(ex)) or 0.0, ex.id))
        return [ex.model_copy(deep=True) for ex in queued[:limit]]

    async def list_slots(self, tenant: str, slot_key_prefix: str) -> list[ConcurrencySlot]:
        found = [
            slot
            for slot in self._slots.values()
            if slot.tenant == tenant and slot.slot_key.startswith(slot_key_prefix)
        ]
        found.sort(key=lambda slot: (slot.slot_key, slot.index))
        return [slot.model_copy(deep=True) for slot in found]

    async def queue_position(
        self,
        tenant: str,
        wait_key: str,
        priority: int,
        queued_at: datetime,
        most: int = QUEUE_COUNT_MOST,
    ) -> int:
        place = (-priority, epoch(queued_at))
        ahead = sum(
            1
            for ex in self._queued(tenant, wait_key, None)
            if (-_priority(ex), epoch_or_none(_queued_at(ex)) or 0.0) < place
        )
        return min(ahead, most) + 1

    async def queue_summary(
        self, tenant: str, wait_key: str, most: int = QUEUE_COUNT_MOST
    ) -> QueueSummary:
        queued = self._queued(tenant, wait_key, None)
        times = [t for t in map(_queued_at, queued) if t is not None]
        return QueueSummary(min(len(queued), most), min(times, default=None))

    def _queued(self, tenant: str, wait_key: str, limit: int | None) -> list[WorkflowExecution]:
        queued = [
            ex
            for ex in self._executions.values()
            if ex.status == ExecutionStatus.QUEUED
            and ex.tenant == tenant
            and ex.queue is not None
            and ex.queue.wait_key == wait_key
        ]
        queued.sort(
            key=lambda ex: (
                -(ex.queue.priority if ex.queue else 0),
                epoch_or_none(_queued_at(ex)) or 0.0,
                ex.id,
            )
        )
        return [ex.model_copy(deep=True) for ex in queued[:limit]]

    def _get_execution(self, execution_id: str) -> WorkflowExecution | None:
        execution = self._executions.get(execution_id)
        return None if execution is None else execution.model_copy(deep=True)

    def _get_run(self, run_id: str) -> StepRun | None:
        run = self._runs.get(run_id)
        return None if run is None else run.model_copy(deep=True)

    def _list_runs(
        self, execution_id: str, statuses: frozenset[StepRunStatus] | None
    ) -> list[StepRun]:
        runs = [
            run
            for run in self._runs.values()
            if run.execution_id == execution_id and (statuses is None or run.status in statuses)
        ]
        runs.sort(key=lambda run: self._run_seq[run.id])
        return [run.model_copy(deep=True) for run in runs]

    def _apply(self, writes: list[_Record | tuple[str, int]]) -> list[ExecutionEvent]:
        """Apply a transaction's writes in order, all or nothing; return its events."""
        events = [record for record in writes if isinstance(record, ExecutionEvent)]
        keys = [(event.execution_id, event.seq) for event in events]
        if len(set(keys)) != len(keys) or any(key in self._events for key in keys):
            raise Conflict("an event with the same sequence number already exists")
        by_execution: dict[str, int] = {}
        for record in writes:
            if isinstance(record, WorkflowExecution | StepRun | ExecutionEvent):
                execution_id = (
                    record.id if isinstance(record, WorkflowExecution) else record.execution_id
                )
                size = len(record.model_dump_json(by_alias=True).encode())
                if not isinstance(record, ExecutionEvent):
                    size -= self._doc_bytes.get(record.id, 0)
                    self._doc_bytes[record.id] = size + self._doc_bytes.get(record.id, 0)
                by_execution[execution_id] = by_execution.get(execution_id, 0) + size
            self._apply_one(record)
        for execution_id, delta in by_execution.items():
            execution = self._executions.get(execution_id)
            tenant = execution.tenant if execution is not None else ""
            self._stored[tenant] = self._stored.get(tenant, 0) + delta
        return events

    async def stored_bytes(self, tenant: str) -> int:
        """Bytes the tenant's executions hold (their documents, step runs, events)."""
        return max(0, self._stored.get(tenant, 0))

    async def stored_tenants(self) -> list[str]:
        """Tenants of the executions held, and of any bytes still counted."""
        tenants = {execution.tenant for execution in self._executions.values()}
        return sorted(tenants | {tenant for tenant, held in self._stored.items() if held})

    async def delete_execution(
        self, tenant: str, execution_id: str, finished_before: datetime
    ) -> PurgeCounts:
        """Delete a finished execution and everything of it (``RetentionStore``), under
        the store lock: one step, as a transaction would be."""
        async with self._lock:
            execution = self._executions.get(execution_id)
            if execution is None or not is_expired(execution, tenant, finished_before):
                return PurgeCounts()
            released = self._doc_bytes.pop(execution_id, 0)
            runs = [run.id for run in self._runs.values() if run.execution_id == execution_id]
            for run_id in runs:
                released += self._doc_bytes.pop(run_id, 0)
                del self._runs[run_id]
                self._run_seq.pop(run_id, None)
            owners = set(runs)
            joins = [key for key in self._joins if key[0] in owners]
            for key in joins:
                del self._joins[key]
            signals = [s.id for s in self._signals.values() if s.execution_id == execution_id]
            for signal_id in signals:
                del self._signals[signal_id]
                self._signal_seq.pop(signal_id, None)
            events = [key for key in self._events if key[0] == execution_id]
            for key in events:
                released += len(self._events.pop(key).model_dump_json(by_alias=True).encode())
            del self._executions[execution_id]
            self._stored[tenant] = self._stored.get(tenant, 0) - released
            return PurgeCounts(
                executions=1,
                runs=len(runs),
                events=len(events),
                signals=len(signals),
                joins=len(joins),
                bytes_released=released,
            )

    def _apply_one(self, record: _Record | tuple[str, int]) -> None:
        if isinstance(record, tuple):
            self._joins.pop(record, None)
        elif isinstance(record, WorkflowExecution):
            self._executions[record.id] = record
        elif isinstance(record, RollupDelta):
            self._rollups.add(record)
        elif isinstance(record, ConcurrencySlot):
            self._slots[record.id] = record
        elif isinstance(record, StepRun):
            self._run_seq.setdefault(record.id, next(self._seq))
            self._runs[record.id] = record
        elif isinstance(record, JoinMark):
            self._joins[(record.owner_run_id, record.index)] = record
        elif isinstance(record, Signal):
            self._signal_seq.setdefault(record.id, next(self._seq))
            self._signals[record.id] = record
        else:
            self._events[(record.execution_id, record.seq)] = record


def _queued_at(execution: WorkflowExecution) -> datetime | None:
    return execution.queue.queued_at if execution.queue is not None else None


def _priority(execution: WorkflowExecution) -> int:
    return execution.queue.priority if execution.queue is not None else 0


def _is_due(run: StepRun, now: float, cutoff: float) -> bool:
    """Whether the sweeper should re-deliver ``run`` (see ``ExecutionStore.due_runs``)."""
    due_at = epoch_or_none(run.due_at)
    if run.status == StepRunStatus.SCHEDULED:
        return due_at is not None and due_at <= cutoff
    if run.status == StepRunStatus.RUNNING:
        lease = run.lease_expires_at
        return lease is not None and epoch(lease) <= now
    if run.status == StepRunStatus.WAITING:
        return due_at is not None and due_at <= cutoff
    return False
