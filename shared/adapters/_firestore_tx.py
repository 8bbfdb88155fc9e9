"""Firestore transactions: the ExecutionTx, the retry loop and SDK error translation."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from google.api_core import exceptions as gexc
from google.cloud.firestore import AsyncClient, AsyncDocumentReference, AsyncTransaction
from google.cloud.firestore_v1 import async_transactional

from shared.adapters._firestore_codec import (
    DELETING,
    Collections,
    check_id,
    encode_event,
    encode_execution,
    encode_join,
    encode_run,
    encode_signal,
    encode_slot,
    event_doc_id,
    is_storable,
    join_doc_id,
    next_created_key,
)
from shared.adapters._firestore_queries import (
    child,
    fetch,
    joins_of,
    pending_signal,
    queued_on,
    runs_of,
)
from shared.adapters.firestore_rollups import RollupWrites
from shared.adapters.firestore_storage import StorageCount
from shared.errors import Conflict, ExecutionBeingDeleted, TransientError, WorkflowError
from shared.models import (
    ConcurrencySlot,
    ExecutionEvent,
    JoinMark,
    Signal,
    StepRun,
    StepRunStatus,
    WorkflowExecution,
)
from shared.ports.analytics import RollupDelta

__all__ = ["Contention", "FirestoreTx", "transact", "translate", "translated"]

T = TypeVar("T")


MAX_RETRY_PAUSE = 2.0
"""Longest pause, in seconds, before a transaction that met contention runs again."""


class Contention(Conflict):
    """Lock contention between transactions: another attempt may well succeed."""


_TRANSIENT = (
    gexc.ServiceUnavailable,
    gexc.DeadlineExceeded,
    gexc.InternalServerError,
    gexc.TooManyRequests,
    gexc.Unknown,
)


def _sdk_errors(exc: BaseException) -> list[gexc.GoogleAPICallError]:
    """The SDK errors behind ``exc``: itself, the abort inside the ValueError the SDK
    raises when a transaction runs out of attempts, and the error a failed rollback
    hides (its context)."""
    found: list[gexc.GoogleAPICallError] = []
    current: BaseException | None = exc
    while current is not None and len(found) < 5:
        if isinstance(current, gexc.GoogleAPICallError):
            found.append(current)
            current = current.__cause__ or current.__context__
        elif isinstance(current, ValueError) and isinstance(
            current.__cause__, gexc.GoogleAPICallError
        ):
            current = current.__cause__
        else:
            break
    return found


def translate(exc: BaseException) -> WorkflowError | None:
    """Our error for an SDK error, or None when ``exc`` is not one of the SDK's."""
    errors = _sdk_errors(exc)
    for cause in errors:
        if isinstance(cause, gexc.AlreadyExists):
            return Conflict(f"write refused, the document exists: {cause.message}")
    for cause in errors:
        if isinstance(cause, gexc.Aborted | gexc.Conflict):
            return Contention(f"transaction contention: {cause.message}")
    for cause in errors:
        if isinstance(cause, _TRANSIENT):
            return TransientError(f"Firestore unavailable: {cause.message}")
    if errors:
        # FailedPrecondition is most often a query whose composite index is missing.
        return WorkflowError(f"Firestore refused the request: {errors[0].message}")
    return None


@contextmanager
def translated() -> Iterator[None]:
    """Raise SDK errors met inside the block as our errors."""
    try:
        yield
    except Exception as exc:
        error = translate(exc)
        if error is None:
            raise
        raise error from exc


async def transact(
    client: AsyncClient,
    body: Callable[[AsyncTransaction], Awaitable[T]],
    *,
    attempts: int,
    base_delay: float,
) -> T:
    """Run ``body`` in a Firestore transaction, retrying it on lock contention.

    Each attempt is a fresh transaction (``max_attempts=1``) after a pause drawn at
    random from zero to the larger of the exponential delay (``base_delay`` doubling,
    capped at MAX_RETRY_PAUSE) and the time the failed attempt took, capped alike. The
    SDK's own in-place retries restart every contender at once. Production Firestore
    aborts a younger contender at once (a short attempt, a short pause); the emulator
    lets transactions that read a document and then both write it wait for each other
    until a lock timeout of about 2 s, which aborts nearly all of them together: pauses
    of a few tens of milliseconds then start them together again, into the next lock
    timeout (a livelock that ran out of 50 attempts). Spreading the retries over about
    as long as the attempt lasted lets them through one after another. After
    ``attempts`` the contention surfaces as Conflict (retryable).
    """
    loop = asyncio.get_running_loop()
    for attempt in range(1, attempts + 1):
        transaction = client.transaction(max_attempts=1)
        began = loop.time()
        try:
            return await async_transactional(body)(transaction)
        except Exception as exc:
            error = translate(exc)
            if error is None:
                raise
            if not isinstance(error, Contention) or attempt == attempts:
                raise error from exc
        took = loop.time() - began
        delay = max(base_delay * 2 ** (attempt - 1), took)
        await asyncio.sleep(random.uniform(0, min(delay, MAX_RETRY_PAUSE)))
    raise AssertionError("unreachable")  # pragma: no cover


@dataclass
class _Write:
    """One buffered write; the last one per document wins."""

    kind: Literal["set", "merge", "create", "delete"]
    ref: AsyncDocumentReference
    data: dict[str, Any] = field(default_factory=dict)
    created_key: int | None = None


class FirestoreTx:
    """An ExecutionTx in one Firestore transaction: reads go through it, writes are
    buffered and applied (``apply``) once the body returns."""

    def __init__(
        self, client: AsyncClient, names: Collections, transaction: AsyncTransaction
    ) -> None:
        self._client = client
        self._names = names
        self._transaction = transaction
        self._writes: dict[str, _Write] = {}
        self._duplicate_event: tuple[str, int] | None = None
        self._rollups = RollupWrites(client, names)
        self._storage = StorageCount(client, names)
        self._deleting: dict[str, Any] = {}
        """Retention marks (``DELETING``) of the executions read, by execution id."""
        self.events: list[ExecutionEvent] = []

    # -- reads -------------------------------------------------------------------

    async def _get(self, collection: str, ident: str) -> dict[str, Any] | None:
        if not is_storable(ident):
            return None
        ref = self._client.collection(collection).document(ident)
        snapshot = await ref.get(transaction=self._transaction)
        return snapshot.to_dict() if snapshot.exists else None

    async def get_execution(self, execution_id: str) -> WorkflowExecution | None:
        row = await self._get(self._names.executions, execution_id)
        if row is None:
            return None
        self._storage.saw_execution(self._path(self._names.executions, execution_id), row)
        if row.get(DELETING) is not None:
            self._deleting[execution_id] = row[DELETING]
        return WorkflowExecution.model_validate_json(row["doc"])

    async def get_run(self, run_id: str) -> StepRun | None:
        row = await self._get(self._names.step_runs, run_id)
        if row is None:
            return None
        self._storage.saw_run(self._path(self._names.step_runs, run_id), row)
        return StepRun.model_validate_json(row["doc"])

    def _path(self, collection: str, ident: str) -> str:
        return str(self._client.collection(collection).document(ident).path)

    async def list_runs(
        self, execution_id: str, statuses: frozenset[StepRunStatus] | None = None
    ) -> list[StepRun]:
        if (statuses is not None and not statuses) or not is_storable(execution_id):
            return []
        query = runs_of(self._client, self._names, execution_id, statuses)
        rows = await fetch(query, self._transaction)
        for row in rows:
            self._storage.saw_run(self._path(self._names.step_runs, str(row["id"])), row)
        return [StepRun.model_validate_json(row["doc"]) for row in rows]

    async def list_joins(self, owner_run_id: str) -> list[JoinMark]:
        if not is_storable(owner_run_id):
            return []
        rows = await fetch(joins_of(self._client, self._names, owner_run_id), self._transaction)
        return [JoinMark.model_validate_json(row["doc"]) for row in rows]

    async def find_signal(self, execution_id: str, name: str) -> Signal | None:
        if not is_storable(execution_id):
            return None
        query = pending_signal(self._client, self._names, execution_id, name)
        rows = await fetch(query, self._transaction)
        return Signal.model_validate_json(rows[0]["doc"]) if rows else None

    async def get_slots(self, slot_ids: list[str]) -> dict[str, ConcurrencySlot]:
        refs = [
            self._client.collection(self._names.flow_slots).document(ident)
            for ident in slot_ids
            if is_storable(ident)
        ]
        found: dict[str, ConcurrencySlot] = {}
        if not refs:
            return found
        async for snapshot in self._client.get_all(refs, transaction=self._transaction):
            if snapshot.exists:
                row = snapshot.to_dict() or {}
                slot = ConcurrencySlot.model_validate_json(row["doc"])
                found[slot.id] = slot
        return found

    async def queued_executions(
        self, tenant: str, wait_key: str, limit: int
    ) -> list[WorkflowExecution]:
        query = queued_on(self._client, self._names, tenant, wait_key).limit(limit)
        rows = await fetch(query, self._transaction)
        for row in rows:
            self._storage.saw_execution(self._path(self._names.executions, str(row["id"])), row)
        return [WorkflowExecution.model_validate_json(row["doc"]) for row in rows]

    # -- buffered writes ---------------------------------------------------------

    def put_slot(self, slot: ConcurrencySlot) -> None:
        data = encode_slot(slot)
        ref = self._client.collection(self._names.flow_slots).document(slot.id)
        self._buffer(_Write("set", ref, data))

    def _buffer(self, write: _Write) -> None:
        self._writes[write.ref.path] = write

    def _created_key(self, ref: AsyncDocumentReference) -> int:
        """The creation key of the first write to ``ref`` in this transaction."""
        earlier = self._writes.get(ref.path)
        if earlier is not None and earlier.created_key is not None:
            return earlier.created_key
        return next_created_key()

    def put_execution(self, execution: WorkflowExecution) -> None:
        """Buffer the execution's document. One the retention sweep has marked as going
        (read in this transaction) stays terminal and keeps its mark: a write that would
        make it live again (a redrive) raises ExecutionBeingDeleted, so the transaction
        that would revive it commits nothing."""
        data = encode_execution(execution)  # checks the id before it becomes a path
        mark = self._deleting.get(execution.id)
        if mark is not None:
            if not execution.status.terminal:
                raise ExecutionBeingDeleted(
                    f"execution {execution.id} is being deleted by the retention sweep"
                )
            data[DELETING] = mark
        ref = self._client.collection(self._names.executions).document(execution.id)
        self._buffer(_Write("set", ref, data))

    def put_run(self, run: StepRun) -> None:
        check_id("step run", run.id)
        ref = self._client.collection(self._names.step_runs).document(run.id)
        key = self._created_key(ref)
        self._buffer(_Write("merge", ref, encode_run(run, key), key))

    def put_join(self, mark: JoinMark) -> None:
        data = encode_join(mark)
        self._buffer(_Write("set", self._join_ref(mark.owner_run_id, mark.index), data))

    def delete_join(self, owner_run_id: str, index: int) -> None:
        if not is_storable(owner_run_id):
            return  # no such document can exist
        self._buffer(_Write("delete", self._join_ref(owner_run_id, index)))

    def put_signal(self, signal: Signal) -> None:
        check_id("signal", signal.id)
        ref = self._client.collection(self._names.signals).document(signal.id)
        key = self._created_key(ref)
        self._buffer(_Write("merge", ref, encode_signal(signal, key), key))

    def add_event(self, event: ExecutionEvent) -> None:
        data = encode_event(event)
        execution = self._client.collection(self._names.executions).document(event.execution_id)
        ref = child(execution, self._names.events).document(event_doc_id(event.seq))
        if ref.path in self._writes:
            self._duplicate_event = (event.execution_id, event.seq)
        self._buffer(_Write("create", ref, data))
        self.events.append(event.model_copy(deep=True))

    def add_rollup(self, delta: RollupDelta) -> None:
        self._rollups.add(delta)  # Increment writes, no read (firestore_rollups)

    def _join_ref(self, owner_run_id: str, index: int) -> AsyncDocumentReference:
        owner = self._client.collection(self._names.step_runs).document(owner_run_id)
        return child(owner, self._names.joins).document(join_doc_id(index))

    def apply(self) -> None:
        """Hand the buffered writes to the transaction; they commit when the body returns.

        Events are created (the commit fails if one exists); step runs and signals are
        merged so their creation key survives updates.
        """
        if self._duplicate_event is not None:
            execution_id, seq = self._duplicate_event
            raise Conflict(f"event {seq} of execution {execution_id!r} added twice")
        # first: the storage count may add uncountedBytes to an execution's data
        written = [(w.ref, w.kind, w.data) for w in self._writes.values()]
        counted = self._storage.writes(written)
        for write in self._writes.values():
            if write.kind == "create":
                self._transaction.create(write.ref, write.data)
            elif write.kind == "delete":
                self._transaction.delete(write.ref)
            else:
                self._transaction.set(write.ref, write.data, merge=write.kind == "merge")
        for ref, data in self._rollups.writes() + counted:
            self._transaction.set(ref, data, merge=True)
