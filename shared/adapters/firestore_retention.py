"""Retention on Firestore: delete one finished execution in bounded transactions.

An execution's documents can outnumber what one commit should hold (a map over 10,000
items: as many step runs and join marks, more events), so it is deleted chunk by chunk,
each chunk one transaction of at most ``CHUNK`` deletes plus one counter write:

1. its events (``executions/{id}/events``), then its signals, then its step runs with
   their join marks (``stepRuns/{run}/joins``);
2. then the execution document itself, once nothing of it is left.

Every transaction first reads the execution document again. The first one goes on
only if the execution is the tenant's, terminal and finished before the horizon, and
marks the document (``DELETING``, a server timestamp, beside ``doc``) with its
deletes; every later one goes on only if the mark is there (and the execution still
the tenant's and terminal). A redrive, the one operation that makes a terminal
execution live again, is refused once the mark is there: ``FirestoreTx.put_execution``
raises ExecutionBeingDeleted (409 ``EXECUTION_BEING_DELETED``) in the transaction that
would revive it, so it commits nothing. One that committed before the first
transaction read the document wins instead: that transaction sees a live execution
and deletes nothing (and one that overlaps it conflicts with it, and one of the two
runs again and sees the other's write). So the execution either stays whole or goes
whole. A sweep that stopped after the mark (a crash, its time up between two
transactions) leaves it marked, still terminal: the next sweep lists it again and
finishes the deletion (the mark alone admits it, whatever the horizon is then).

Each chunk takes the bytes of the counted documents it deletes (step runs, events: the
length of their ``doc``) off the tenant's storage counter with an ``Increment`` on the
execution's shard, in the same transaction; the last one takes the execution
document's size minus its ``uncountedBytes`` (bytes that never reached the counter).
So the counter drops by exactly what it had counted for the execution. A second
deletion (a duplicate or concurrent sweep) finds nothing and releases nothing: each
chunk reads what it deletes inside its transaction.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from functools import partial
from typing import Any

from google.cloud.firestore import (
    SERVER_TIMESTAMP,
    AsyncClient,
    AsyncDocumentReference,
    AsyncQuery,
    AsyncTransaction,
    Increment,
)

from shared.adapters._firestore_codec import DELETING, Collections, is_storable
from shared.adapters._firestore_queries import (
    events_after,
    fetch_pages,
    joins_of,
    runs_of,
    signals_of,
    tenant_storage_all,
)
from shared.adapters.firestore_storage import UNCOUNTED, collection_of, shard_of
from shared.models import WorkflowExecution
from shared.ports.retention import PurgeCounts, is_expired

__all__ = ["CHUNK", "DELETING", "delete_execution", "stored_tenants"]

Transact = Callable[[Callable[[AsyncTransaction], Awaitable[Any]]], Awaitable[Any]]
"""The store's transaction runner (retries on contention)."""

CHUNK = 400
"""Most documents one deleting transaction removes (a commit holds 500 writes; one
more is the counter's)."""
RUNS_PER_CHUNK = 100
"""Step runs read per chunk (each with its join marks, within ``CHUNK``)."""
MAX_ROUNDS = 3
"""Times the children are swept again when the last transaction still finds some (a
straggling write between the chunks and the last transaction)."""

_Found = list[tuple[AsyncDocumentReference, dict[str, Any]]]


async def stored_tenants(client: AsyncClient, names: Collections) -> list[str]:
    """Tenants whose storage counter holds bytes (a terminal execution's bytes are on
    the counter: ``firestore_storage``)."""
    rows = await fetch_pages(tenant_storage_all(client, collection_of(names)), 1_000_000)
    held: dict[str, int] = {}
    for row in rows:
        tenant = row.get("tenant")
        if isinstance(tenant, str):
            held[tenant] = held.get(tenant, 0) + int(row.get("bytes") or 0)
    return sorted(tenant for tenant, count in held.items() if count)


async def delete_execution(
    client: AsyncClient,
    names: Collections,
    transact: Transact,
    tenant: str,
    execution_id: str,
    finished_before: datetime,
    *,
    chunk: int = CHUNK,
) -> PurgeCounts:
    """Delete the execution and its documents (module docstring); all zeros when it
    is not the tenant's, not finished before ``finished_before`` (and not marked by
    an earlier sweep), or already gone. ``chunk``: most deletes per transaction."""
    if not is_storable(execution_id):
        return PurgeCounts()
    deleter = _Deleter(client, names, tenant, execution_id, finished_before, chunk)
    total = PurgeCounts()
    for _ in range(MAX_ROUNDS):
        for kind in ("events", "signals", "runs"):
            while True:
                done: tuple[PurgeCounts, bool] | None = await transact(
                    partial(deleter.chunk, kind=kind)
                )
                if done is None:  # not expired, not marked (or gone): stop, keep the rest
                    return total
                total += done[0]
                if not done[1]:
                    break
        last: PurgeCounts | None = await transact(deleter.last)
        if last is not None:
            return total + last
    return total


async def _found(query: AsyncQuery, tx: AsyncTransaction) -> _Found:
    """The documents ``query`` returns in ``tx``, with their fields."""
    return [(snap.reference, snap.to_dict() or {}) async for snap in query.stream(transaction=tx)]


class _Deleter:
    """The transactions' bodies for one execution."""

    def __init__(
        self,
        client: AsyncClient,
        names: Collections,
        tenant: str,
        execution_id: str,
        finished_before: datetime,
        chunk: int = CHUNK,
    ) -> None:
        self._client = client
        self._chunk = max(1, min(chunk, CHUNK))
        self._names = names
        self._tenant = tenant
        self._execution_id = execution_id
        self._finished_before = finished_before
        self._execution = client.collection(names.executions).document(execution_id)
        shard_id, self._shard_number = shard_of(tenant, execution_id)
        self._shard = client.collection(collection_of(names)).document(shard_id)

    async def _deletable(self, tx: AsyncTransaction) -> dict[str, Any] | None:
        """The execution document, read in ``tx``, if retention may delete it: the
        tenant's and terminal, and marked (``DELETING``) or finished before the horizon."""
        snapshot = await self._execution.get(transaction=tx)
        row = snapshot.to_dict() if snapshot.exists else None
        if row is None or not isinstance(row.get("doc"), str):
            return None
        execution = WorkflowExecution.model_validate_json(row["doc"])
        if row.get(DELETING) is not None:
            going = execution.tenant == self._tenant and execution.status.terminal
            return row if going else None
        return row if is_expired(execution, self._tenant, self._finished_before) else None

    async def chunk(self, tx: AsyncTransaction, kind: str) -> tuple[PurgeCounts, bool] | None:
        """Delete up to ``chunk`` documents of ``kind`` (marking the execution first, in
        the same transaction, if it is not yet): the counts, and whether more may be
        left; None when the execution may not be deleted (then nothing is)."""
        row = await self._deletable(tx)
        if row is None:
            return None
        size = self._chunk
        if kind == "events":
            found = await _found(
                events_after(self._client, self._names, self._execution_id, 0, size), tx
            )
            counts = PurgeCounts(events=len(found), bytes_released=_bytes(found))
            refs, more = [ref for ref, _ in found], len(found) == size
        elif kind == "signals":
            query = signals_of(self._client, self._names, self._execution_id).limit(size)
            found = await _found(query, tx)
            counts = PurgeCounts(signals=len(found))
            refs, more = [ref for ref, _ in found], len(found) == size
        else:
            counts, refs, more = await self._runs(tx)
        if row.get(DELETING) is None:  # the first transaction (writes follow every read)
            tx.update(self._execution, {DELETING: SERVER_TIMESTAMP})
        self._write(tx, refs, counts.bytes_released)
        return counts, more

    async def _runs(
        self, tx: AsyncTransaction
    ) -> tuple[PurgeCounts, list[AsyncDocumentReference], bool]:
        """Step runs with their join marks, within ``chunk`` deletes (a run whose marks
        do not all fit keeps itself and the rest of its marks for the next chunk)."""
        query = runs_of(self._client, self._names, self._execution_id, None)
        runs = await _found(query.limit(min(RUNS_PER_CHUNK, self._chunk)), tx)
        refs: list[AsyncDocumentReference] = []
        deleted: _Found = []
        budget, joins = self._chunk, 0
        for ref, row in runs:
            marks = await _found(joins_of(self._client, self._names, ref.id).limit(budget), tx)
            refs += [mark for mark, _ in marks]
            joins += len(marks)
            budget -= len(marks)
            if budget < 1:
                break
            refs.append(ref)
            deleted.append((ref, row))
            budget -= 1
        counts = PurgeCounts(runs=len(deleted), joins=joins, bytes_released=_bytes(deleted))
        return counts, refs, bool(runs)

    async def last(self, tx: AsyncTransaction) -> PurgeCounts | None:
        """Delete the execution document once nothing of it is left; None when
        something is (another round); zeros when the execution may not be deleted."""
        row = await self._deletable(tx)
        if row is None:
            return PurgeCounts()
        for query in (
            events_after(self._client, self._names, self._execution_id, 0, 1),
            signals_of(self._client, self._names, self._execution_id).limit(1),
            runs_of(self._client, self._names, self._execution_id, None).limit(1),
        ):
            if await _found(query, tx):
                return None
        uncounted = row.get(UNCOUNTED)
        pending = int(uncounted) if isinstance(uncounted, int | float) else 0
        released = _bytes([(self._execution, row)]) - pending
        self._write(tx, [self._execution], released)
        return PurgeCounts(executions=1, bytes_released=released)

    def _write(
        self, tx: AsyncTransaction, refs: list[AsyncDocumentReference], released: int
    ) -> None:
        for ref in refs:
            tx.delete(ref)
        if released:
            data = {"tenant": self._tenant, "shard": self._shard_number}
            tx.set(self._shard, {**data, "bytes": Increment(-released)}, merge=True)


def _bytes(found: _Found) -> int:
    """The counted size of documents: the length of their ``doc`` (firestore_storage)."""
    return sum(len(row["doc"].encode()) for _, row in found if isinstance(row.get("doc"), str))
