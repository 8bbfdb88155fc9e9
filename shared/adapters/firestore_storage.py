"""Tenant storage on Firestore (``maxStorageBytes``): sharded counter documents.

What is counted is what the SQLite store counts (``_sqlite_tx.apply_writes``): the
JSON of each execution and step run document a transaction writes, minus the size of
the document it replaces, and the JSON of each event. The old size comes from the
transaction's own reads: the engine reads an execution and the runs it changes before
it writes them (a run written without being read in the same transaction is counted
as new). The tenant of a run or an event is the tenant of its execution, read or
written in the same transaction (the engine's commits always load their execution); a
delta whose tenant is not known is dropped.

Where the bytes go: every engine transaction writes its execution's document, so a
transaction's change is added to that document's ``uncountedBytes`` field (no extra
write). It moves to the tenant's counter, in the same transaction, when the execution
ends (succeeded, failed, cancelled, timed out) or when it reaches ``FLUSH_BYTES``; a
change to an execution whose document the transaction does not write goes to the
counter at once. So a step costs no counter write, an execution about one, and the
counter lags a live execution's own growth by less than ``FLUSH_BYTES``.

The counter is one document per (tenant, shard); the shard is a hash of the execution
id over ``SHARDS``, so a busy tenant's flushes spread over several documents (no hot
document). A flush is an ``Increment`` merged into the engine's transaction: no read,
and it commits or rolls back with the documents. Reading a tenant's bytes sums its
shards (one equality query, no composite index).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from google.cloud.firestore import AsyncClient, AsyncDocumentReference, Increment

from shared.adapters._firestore_codec import Collections
from shared.adapters._firestore_queries import fetch, tenant_storage_shards
from shared.models import ExecutionStatus

__all__ = [
    "FLUSH_BYTES",
    "SHARDS",
    "UNCOUNTED",
    "StorageCount",
    "collection_of",
    "shard_of",
    "stored_bytes",
]

SHARDS = 8

UNCOUNTED = "uncountedBytes"
"""Field of an execution document: its bytes not yet in the tenant's counter."""

FLUSH_BYTES = 64 * 1024
"""A live execution's uncounted bytes go to the counter once they reach this."""


def collection_of(names: Collections) -> str:
    return f"{names.prefix}tenantStorage"


def _shard(execution_id: str) -> int:
    return hashlib.blake2b(execution_id.encode(), digest_size=2).digest()[0] % SHARDS


def _doc_id(tenant: str, shard: int) -> str:
    return hashlib.sha256(f"{tenant}\x1f{shard}".encode()).hexdigest()[:40]


def shard_of(tenant: str, execution_id: str) -> tuple[str, int]:
    """The counter document id and shard number an execution's bytes are counted on."""
    shard = _shard(execution_id)
    return _doc_id(tenant, shard), shard


def _size(row: dict[str, Any]) -> int:
    doc = row.get("doc")
    return len(doc.encode()) if isinstance(doc, str) else 0


class StorageCount:
    """One transaction's view: sizes of the documents it read, tenants of executions."""

    def __init__(self, client: AsyncClient, names: Collections) -> None:
        self._client = client
        self._names = names
        self._read: dict[str, int] = {}
        self._pending: dict[str, int] = {}
        self._tenants: dict[str, str] = {}

    def saw_execution(self, path: str, row: dict[str, Any]) -> None:
        self._saw(path, row)
        if isinstance(row.get("tenant"), str) and isinstance(row.get("id"), str):
            self._tenants[row["id"]] = row["tenant"]

    def saw_run(self, path: str, row: dict[str, Any]) -> None:
        self._read[path] = _size(row)

    def _saw(self, path: str, row: dict[str, Any]) -> None:
        self._read[path] = _size(row)
        pending = row.get(UNCOUNTED)
        self._pending[path] = int(pending) if isinstance(pending, int | float) else 0

    def writes(
        self, written: Sequence[tuple[AsyncDocumentReference, str, dict[str, Any]]]
    ) -> list[tuple[AsyncDocumentReference, dict[str, Any]]]:
        """(document, data) pairs to ``set(..., merge=True)`` for the transaction's
        ``written`` documents ((ref, kind, data) as buffered): the counter flushes, at
        most one per tenant and shard. The data of a written execution document gets
        its new ``uncountedBytes``."""
        by_execution: dict[str, int] = {}
        execution_docs: dict[str, tuple[str, dict[str, Any]]] = {}
        for ref, kind, data in written:
            if kind == "delete" or "doc" not in data or not self._counted(ref):
                continue
            if ref.parent.id == self._names.executions:
                execution_id = str(data["id"])
                self._tenants[execution_id] = str(data["tenant"])
                execution_docs[execution_id] = (ref.path, data)
            else:
                execution_id = str(data["executionId"])
            delta = _size(data) - self._read.get(ref.path, 0)
            by_execution[execution_id] = by_execution.get(execution_id, 0) + delta
        flushes: dict[tuple[str, int], int] = {}
        for execution_id in by_execution.keys() | execution_docs.keys():
            delta = by_execution.get(execution_id, 0)
            if execution_id in execution_docs:
                path, data = execution_docs[execution_id]
                delta += self._pending.get(path, 0)
                ended = ExecutionStatus(str(data["status"])).terminal
                if not ended and abs(delta) < FLUSH_BYTES:
                    data[UNCOUNTED] = delta  # kept on the document: no counter write
                    continue
                data[UNCOUNTED] = 0
            tenant = self._tenants.get(execution_id)
            if tenant is not None and delta:
                key = (tenant, _shard(execution_id))
                flushes[key] = flushes.get(key, 0) + delta
        collection = self._client.collection(collection_of(self._names))
        return [
            (
                collection.document(_doc_id(tenant, shard)),
                {"tenant": tenant, "shard": shard, "bytes": Increment(delta)},
            )
            for (tenant, shard), delta in flushes.items()
            if delta
        ]

    def _counted(self, ref: AsyncDocumentReference) -> bool:
        collection = ref.parent.id
        return collection in (self._names.executions, self._names.step_runs, self._names.events)


async def stored_bytes(client: AsyncClient, names: Collections, tenant: str) -> int:
    """The tenant's bytes: its shards summed (never below 0)."""
    rows = await fetch(tenant_storage_shards(client, collection_of(names), tenant))
    return max(0, sum(int(row.get("bytes") or 0) for row in rows))
