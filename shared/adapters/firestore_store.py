"""Firestore WorkflowStore and ExecutionStore for the cloud (async client).

Data model (every name behind ``collection_prefix``; ``infra/firestore/README.md``
has the full table and ``infra/firestore/indexes.json`` the indexes):

- ``workflows/{workflowId}``: the head (tenant, name, isActive, tags, deleted,
  latestVersion, createdAt, lastExecuted, doc) and ``versions/{version:08d}`` below
  it, immutable.
- ``executions/{executionId}`` (tenant, workflowId, status, startedAt, doc) and
  ``events/{seq:012d}`` below it: one document per event, created (never
  overwritten), with the server's ``committedAt`` for listeners.
- ``stepRuns/{runId}``: top level; run ids are hashes, so writes spread over the key
  space. ``executionId``, ``status``, ``dueAt``, ``leaseExpiresAt`` and ``createdKey``
  (wall-clock ns of the first write, kept by a ``Minimum`` transform) serve the
  queries; ``joins/{index:08d}`` below the fan-out run hold one mark per branch.
- ``signals/{signalId}`` (executionId, name, consumed, createdKey).

Each record is kept whole as the JSON string ``doc`` (exempt from indexing) and is
refused with DOCUMENT_TOO_LARGE when over 900 KiB. Listing times are epoch seconds so
page cursors are those of the SQLite store.

Transactions: ``run_transaction`` buffers ``put_*`` writes and applies them when
``fn`` returns, so reads after puts see committed state only, as in SQLite. On lock
contention the whole transaction, ``fn`` included, runs again (up to
``max_attempts``) and then fails with Conflict (retryable): ``fn`` may be called more
than once and must not have side effects outside ``tx``.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

from google.cloud.firestore import AsyncClient, AsyncTransaction, Client

from shared.adapters._firestore_codec import Collections, check_id, is_storable
from shared.adapters._firestore_queries import (
    Row,
    count,
    events_after,
    executions_listing,
    expired_leases,
    fetch,
    fetch_pages,
    keyset_page,
    overdue_timers,
    queued_ahead,
    queued_all,
    queued_below,
    queued_on,
    runs_of,
    slots_with_prefix,
)
from shared.adapters._firestore_tx import FirestoreTx, transact, translated
from shared.adapters._firestore_watch import Watches
from shared.adapters._firestore_workflows import FirestoreWorkflows
from shared.adapters._store_common import EventListener, Listeners, check_limit, epoch
from shared.adapters.clock import SystemClock
from shared.adapters.firestore_retention import delete_execution, stored_tenants
from shared.adapters.firestore_rollups import RollupWrites, read_rows
from shared.adapters.firestore_storage import stored_bytes
from shared.errors import InputInvalid
from shared.models import ConcurrencySlot, ExecutionEvent, StepRun, WorkflowExecution
from shared.ports import Clock, ExecutionQuery, ExecutionTx, Page
from shared.ports.analytics import RollupDelta, RollupQuery, RollupRow
from shared.ports.retention import PurgeCounts
from shared.ports.stores import QUEUE_COUNT_MOST, QueueSummary

__all__ = ["FirestoreStore"]

T = TypeVar("T")

MAX_EXPIRED_LEASES = 5000
"""Most expired leases ``due_runs`` reads to order them by due time (there are few:
the runs of crashed workers, re-enqueued by the sweeper soon after)."""
PRIORITY_LEVELS = 10
"""Priority levels of a key's queue ``queue_summary`` visits to find the oldest."""


class FirestoreStore(FirestoreWorkflows, Listeners):
    """WorkflowStore and ExecutionStore on one Firestore (native mode) database."""

    reruns_transactions = True
    """``run_transaction`` calls its body again on contention (see ``ports``)."""

    def __init__(
        self,
        client_factory: Callable[[], AsyncClient] | None = None,
        *,
        project: str | None = None,
        database: str | None = None,
        collection_prefix: str = "",
        clock: Clock | None = None,
        watch_client_factory: Callable[[], Client] | None = None,
        max_attempts: int = 6,
        retry_base_delay: float = 0.05,
        watch_margin: float = 2.0,
    ) -> None:
        """Prepare the store; no client is created and nothing connects until first use.

        Args:
            client_factory: builds the AsyncClient; by default one for ``project`` and
                ``database`` (FIRESTORE_EMULATOR_HOST is honoured by the SDK).
            collection_prefix: put in front of every collection name.
            clock: time source for bookkeeping fields (deletion time).
            watch_client_factory: builds the sync client ``watch_events`` needs; by
                default one like the async client.
            max_attempts: transactions tried in all on lock contention.
            retry_base_delay: first pause between attempts (doubles, jittered).
            watch_margin: seconds before ``watch_events`` was called whose events it
                still delivers (covers clock skew with the server).
        """
        super().__init__()
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if "/" in collection_prefix:
            raise ValueError("collection_prefix cannot contain '/'")
        self._client_factory = client_factory or (
            lambda: AsyncClient(project=project, database=database)
        )
        self._async_client: AsyncClient | None = None
        self._names = Collections(collection_prefix)
        self._clock = clock or SystemClock()
        self._attempts = max_attempts
        self._base_delay = retry_base_delay
        self._watches = Watches(watch_client_factory or self._sync_twin, self._names, watch_margin)

    async def close(self) -> None:
        """Stop the watches and close the clients' channels."""
        self._watches.close()
        client, self._async_client = self._async_client, None
        if client is not None:
            # The SDK has no public close(); the transport owns the gRPC channel.
            await client._firestore_api.transport.close()

    def _client(self) -> AsyncClient:
        if self._async_client is None:
            self._async_client = self._client_factory()
        return self._async_client

    def _sync_twin(self) -> Client:
        """A sync client for the same project, database and credentials."""
        source = self._client()
        return Client(
            project=source.project, database=source._database, credentials=source._credentials
        )

    async def _transact(self, body: Callable[[AsyncTransaction], Awaitable[T]]) -> T:
        return await transact(
            self._client(), body, attempts=self._attempts, base_delay=self._base_delay
        )

    # -- executions ----------------------------------------------------------------

    async def run_transaction(self, fn: Callable[[ExecutionTx], Awaitable[T]]) -> T:
        """Run ``fn`` in one Firestore transaction and commit its buffered writes.

        ``fn`` is called again, in a new transaction, when the commit (or a read) meets
        lock contention; after ``max_attempts`` calls Conflict is raised. An event seq
        that exists already, or twice in ``fn``, raises Conflict without a retry.
        Listeners hear the events of the attempt that committed.
        """
        client = self._client()
        committed: list[ExecutionEvent] = []

        async def body(transaction: AsyncTransaction) -> T:
            tx = FirestoreTx(client, self._names, transaction)
            result = await fn(tx)
            tx.apply()
            committed[:] = tx.events
            return result

        result = await self._transact(body)
        self.notify(committed)
        return result

    async def read_rollups(self, query: RollupQuery) -> list[RollupRow]:
        return await read_rows(self._client(), self._names, query)

    async def add_rollups(self, deltas: list[RollupDelta]) -> None:
        client = self._client()
        for start in range(0, len(deltas), 200):  # a batch takes at most 500 writes
            writes = RollupWrites(client, self._names)
            for delta in deltas[start : start + 200]:
                writes.add(delta)
            batch = client.batch()
            for ref, data in writes.writes():
                batch.set(ref, data, merge=True)
            await batch.commit()

    async def get_execution(self, execution_id: str) -> WorkflowExecution | None:
        row = await self._get(self._names.executions, execution_id)
        return None if row is None else WorkflowExecution.model_validate_json(row["doc"])

    async def list_executions(self, query: ExecutionQuery) -> Page[WorkflowExecution]:
        listing = executions_listing(self._client(), self._names, query)
        with translated():
            rows, cursor = await keyset_page(listing, "startedAt", query.cursor, query.limit)
        return Page([WorkflowExecution.model_validate_json(row["doc"]) for row in rows], cursor)

    async def get_run(self, run_id: str) -> StepRun | None:
        row = await self._get(self._names.step_runs, run_id)
        return None if row is None else StepRun.model_validate_json(row["doc"])

    async def list_runs(self, execution_id: str) -> list[StepRun]:
        if not is_storable(execution_id):
            return []
        with translated():
            rows = await fetch(runs_of(self._client(), self._names, execution_id, None))
        return [StepRun.model_validate_json(row["doc"]) for row in rows]

    async def list_events(
        self, execution_id: str, after_seq: int = 0, limit: int = 1000
    ) -> list[ExecutionEvent]:
        check_limit(limit)
        if not is_storable(execution_id):
            return []
        query = events_after(self._client(), self._names, execution_id, after_seq, limit)
        with translated():
            rows = await fetch(query)
        return [ExecutionEvent.model_validate_json(row["doc"]) for row in rows]

    async def due_runs(self, now: datetime, grace_seconds: float, limit: int) -> list[StepRun]:
        """Two queries: timers (scheduled or waiting) overdue by more than the grace,
        earliest ``limit`` of them, and every expired lease (up to
        MAX_EXPIRED_LEASES); merged by due time, then creation."""
        check_limit(limit)
        client = self._client()
        with translated():
            timers = await fetch(
                overdue_timers(client, self._names, epoch(now) - grace_seconds).limit(limit)
            )
            leases = await fetch_pages(
                expired_leases(client, self._names, epoch(now)), MAX_EXPIRED_LEASES
            )

        def order(row: Row) -> tuple[float, int]:
            due = row.get("dueAt")
            return (-math.inf if due is None else due, row["createdKey"])

        rows = sorted([*timers, *leases], key=order)[:limit]
        return [StepRun.model_validate_json(row["doc"]) for row in rows]

    async def list_queued(self, tenant: str | None, limit: int) -> list[WorkflowExecution]:
        query = queued_all(self._client(), self._names, tenant).limit(check_limit(limit))
        with translated():
            rows = await fetch(query)
        return [WorkflowExecution.model_validate_json(row["doc"]) for row in rows]

    async def list_slots(self, tenant: str, slot_key_prefix: str) -> list[ConcurrencySlot]:
        query = slots_with_prefix(self._client(), self._names, tenant, slot_key_prefix)
        with translated():
            rows = await fetch_pages(query, 100_000)
        slots = [ConcurrencySlot.model_validate_json(row["doc"]) for row in rows]
        return sorted(slots, key=lambda slot: (slot.slot_key, slot.index))

    async def queue_position(
        self,
        tenant: str,
        wait_key: str,
        priority: int,
        queued_at: datetime,
        most: int = QUEUE_COUNT_MOST,
    ) -> int:
        """One COUNT aggregation over the queue's index, limited to ``most`` entries:
        it costs one read per 1000 entries counted, so at most ``most / 1000 + 1``."""
        if most <= 0:
            return 1
        query = queued_ahead(
            self._client(), self._names, tenant, wait_key, priority, epoch(queued_at)
        )
        with translated():
            return await count(query.limit(most)) + 1

    async def queue_summary(
        self, tenant: str, wait_key: str, most: int = QUEUE_COUNT_MOST
    ) -> QueueSummary:
        """A bounded COUNT, and the oldest execution found from the head of each priority
        level (one read per level, at most ``PRIORITY_LEVELS``: beyond them the oldest
        is the oldest of the first levels)."""
        client = self._client()
        with translated():
            queued = await count(
                queued_on(client, self._names, tenant, wait_key).limit(max(most, 1))
            )
            oldest: float | None = None
            head = queued_on(client, self._names, tenant, wait_key)
            for _ in range(PRIORITY_LEVELS if queued else 0):
                rows = await fetch(head.limit(1))
                if not rows:
                    break
                at = rows[0].get("queuedAt")
                oldest = at if oldest is None or (at is not None and at < oldest) else oldest
                level = rows[0].get("queuePriority")
                if not isinstance(level, int):
                    break
                head = queued_below(client, self._names, tenant, wait_key, level)
        return QueueSummary(
            min(queued, most), None if oldest is None else datetime.fromtimestamp(oldest, UTC)
        )

    # -- retention (firestore_retention) --------------------------------------------

    async def stored_bytes(self, tenant: str) -> int:
        """Bytes the tenant's executions hold: its storage counter's shards summed."""
        with translated():
            return await stored_bytes(self._client(), self._names, tenant)

    async def stored_tenants(self) -> list[str]:
        """Tenants whose storage counter holds bytes."""
        with translated():
            return await stored_tenants(self._client(), self._names)

    async def delete_execution(
        self, tenant: str, execution_id: str, finished_before: datetime
    ) -> PurgeCounts:
        """Delete a finished execution in bounded transactions (``firestore_retention``)."""
        with translated():
            return await delete_execution(
                self._client(), self._names, self._transact, tenant, execution_id, finished_before
            )

    async def _get(self, collection: str, ident: str) -> Row | None:
        """The fields of document ``ident`` of a top-level collection, if it exists."""
        if not is_storable(ident):
            return None
        with translated():
            snapshot = await self._client().collection(collection).document(ident).get()
        return snapshot.to_dict() if snapshot.exists else None

    # -- listeners -------------------------------------------------------------------

    def watch_events(
        self,
        execution_id: str | None,
        workflow_id: str | None,
        callback: EventListener,
        *,
        since: datetime | None = None,
    ) -> Callable[[], None]:
        """Call ``callback`` with the events other processes (and this one) commit.

        Watches one execution (its ``events`` subcollection) or every execution of one
        workflow (a collection-group query on ``workflowId``): give exactly one id.
        Delivers events committed from ``since`` on (default: ``watch_margin`` seconds
        before the call), in batches sorted by execution and seq; a batch may repeat
        events a caller already read with ``list_events``: dedupe on (execution, seq).
        The SDK calls back on a background thread; the batch is handed to the event
        loop running here with ``loop.call_soon_threadsafe``. Returns the unsubscribe
        function; ``close()`` ends every watch.
        """
        if execution_id is not None:
            check_id("execution", execution_id)
        if workflow_id is not None and not workflow_id:
            raise InputInvalid("workflow id is empty")
        return self._watches.watch(execution_id, workflow_id, callback, since)
