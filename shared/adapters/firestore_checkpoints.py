"""LangGraph checkpoints in Firestore: collection ``checkpoints``, writes in each
checkpoint's subcollection ``writes``.

Document ids, and their field ``orderKey``, are
``{sha256(thread_id, checkpoint_ns)}-{hex(checkpoint_id)}``: the hash groups a thread's
namespace under one prefix, and hex keeps the byte order of checkpoint ids, so "the
newest of a namespace" and ``before`` are ranges over ``orderKey`` alone that its
automatic single-field index serves (no composite index; Firestore refuses descending
scans of ``__name__``). Thread-wide and
execution-wide reads are single-field equalities on ``threadId`` / ``executionId``.
The payload fields are exempt from indexing (``infra/firestore/indexes.json``).

A write document is ``{task_id hex}-{idx}``; regular writes (idx >= 0) are created only
if absent, special ones replaced, in one transaction.

Limits: a Firestore document holds at most 1 MiB, so a checkpoint whose serialised state
is larger is refused by the server (as a WorkflowError). Listing every thread
(``thread_id`` None) reads the whole collection.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from google.cloud.firestore import (
    AsyncClient,
    AsyncDocumentReference,
    AsyncTransaction,
)

from shared.adapters._firestore_queries import (
    checkpoints_between,
    checkpoints_of_execution,
    checkpoints_of_thread,
    child,
)
from shared.adapters._firestore_tx import transact, translated
from shared.adapters.memory_checkpoints import listing_matches
from shared.ports.checkpoints import (
    CheckpointListing,
    CheckpointRecord,
    CheckpointWrite,
    execution_of,
)

__all__ = ["COLLECTION", "WRITES", "FirestoreCheckpointStore"]

COLLECTION = "checkpoints"
WRITES = "writes"
_BATCH = 400


def _prefix(thread_id: str, checkpoint_ns: str) -> str:
    key = f"{thread_id}\x00{checkpoint_ns}".encode()
    return hashlib.sha256(key).hexdigest()


def _doc_id(thread_id: str, checkpoint_ns: str, checkpoint_id: str) -> str:
    return f"{_prefix(thread_id, checkpoint_ns)}-{checkpoint_id.encode().hex()}"


def _record(row: dict[str, Any]) -> CheckpointRecord:
    return CheckpointRecord(
        thread_id=row["threadId"],
        checkpoint_ns=row["checkpointNs"],
        checkpoint_id=row["checkpointId"],
        execution_id=row["executionId"],
        parent_checkpoint_id=row.get("parentCheckpointId"),
        checkpoint_type=row["checkpointType"],
        checkpoint=bytes(row["checkpoint"]),
        metadata_type=row["metadataType"],
        metadata=bytes(row["metadata"]),
    )


def _ordered(records: list[CheckpointRecord]) -> list[CheckpointRecord]:
    return sorted(
        records, key=lambda r: (r.checkpoint_id, r.thread_id, r.checkpoint_ns), reverse=True
    )


class FirestoreCheckpointStore:
    """Checkpoint documents and their pending-write subcollections."""

    def __init__(
        self,
        client_factory: Callable[[], AsyncClient],
        *,
        collection_prefix: str = "",
        attempts: int = 8,
        base_delay: float = 0.05,
    ) -> None:
        self._client_factory = client_factory
        self._client: AsyncClient | None = None
        self._collection = f"{collection_prefix}{COLLECTION}"
        self._attempts = attempts
        self._base_delay = base_delay

    def _db(self) -> AsyncClient:
        if self._client is None:
            self._client = self._client_factory()
        return self._client

    def _ref(
        self, thread_id: str, checkpoint_ns: str, checkpoint_id: str
    ) -> AsyncDocumentReference:
        doc_id = _doc_id(thread_id, checkpoint_ns, checkpoint_id)
        return self._db().collection(self._collection).document(doc_id)

    async def put_checkpoint(self, record: CheckpointRecord) -> None:
        execution_of(record.thread_id)
        document = {
            "orderKey": _doc_id(record.thread_id, record.checkpoint_ns, record.checkpoint_id),
            "threadId": record.thread_id,
            "checkpointNs": record.checkpoint_ns,
            "checkpointId": record.checkpoint_id,
            "executionId": record.execution_id,
            "parentCheckpointId": record.parent_checkpoint_id,
            "checkpointType": record.checkpoint_type,
            "checkpoint": record.checkpoint,
            "metadataType": record.metadata_type,
            "metadata": record.metadata,
        }
        ref = self._ref(record.thread_id, record.checkpoint_ns, record.checkpoint_id)
        with translated():
            await ref.set(document)

    async def get_checkpoint(
        self, thread_id: str, checkpoint_ns: str, checkpoint_id: str | None
    ) -> CheckpointRecord | None:
        if checkpoint_id is not None:
            with translated():
                snapshot = await self._ref(thread_id, checkpoint_ns, checkpoint_id).get()
            return _record(snapshot.to_dict() or {}) if snapshot.exists else None
        found = await self._namespace(thread_id, checkpoint_ns, None, 1)
        return found[0] if found else None

    async def _namespace(
        self, thread_id: str, checkpoint_ns: str, before: str | None, limit: int | None
    ) -> list[CheckpointRecord]:
        prefix = _prefix(thread_id, checkpoint_ns)
        below = _doc_id(thread_id, checkpoint_ns, before) if before is not None else f"{prefix}."
        query = checkpoints_between(self._db(), self._collection, f"{prefix}-", below, limit)
        with translated():
            return [_record(s.to_dict() or {}) async for s in query.stream()]

    async def list_checkpoints(self, listing: CheckpointListing) -> list[CheckpointRecord]:
        limit = None if listing.limit is None else max(listing.limit, 0)
        if limit == 0:
            return []
        if listing.thread_id is not None and listing.checkpoint_ns is not None:
            if listing.checkpoint_id is not None:
                one = await self.get_checkpoint(
                    listing.thread_id, listing.checkpoint_ns, listing.checkpoint_id
                )
                found = [one] if one is not None and listing_matches(one, listing) else []
                return found[:limit]
            return await self._namespace(
                listing.thread_id, listing.checkpoint_ns, listing.before, limit
            )
        if listing.thread_id is not None:
            query: Any = checkpoints_of_thread(self._db(), self._collection, listing.thread_id)
        else:
            query = self._db().collection(self._collection)
        with translated():
            records = [_record(s.to_dict() or {}) async for s in query.stream()]
        matching = _ordered([r for r in records if listing_matches(r, listing)])
        return matching if limit is None else matching[:limit]

    async def put_writes(self, writes: list[CheckpointWrite]) -> None:
        if not writes:
            return
        for write in writes:
            execution_of(write.thread_id)
        refs = [
            child(self._ref(w.thread_id, w.checkpoint_ns, w.checkpoint_id), WRITES).document(
                f"{w.task_id.encode().hex()}-{w.idx}"
            )
            for w in writes
        ]

        async def body(transaction: AsyncTransaction) -> None:
            kept = set()
            for ref, write in zip(refs, writes, strict=True):
                if write.idx >= 0:
                    snapshot = await ref.get(transaction=transaction)
                    if snapshot.exists:
                        kept.add(ref.path)
            for ref, write in zip(refs, writes, strict=True):
                if ref.path in kept:
                    continue
                transaction.set(
                    ref,
                    {
                        "taskId": write.task_id,
                        "idx": write.idx,
                        "channel": write.channel,
                        "valueType": write.value_type,
                        "value": write.value,
                        "taskPath": write.task_path,
                        "threadId": write.thread_id,
                        "executionId": execution_of(write.thread_id),
                    },
                )

        await transact(self._db(), body, attempts=self._attempts, base_delay=self._base_delay)

    async def get_writes(
        self, thread_id: str, checkpoint_ns: str, checkpoint_id: str
    ) -> list[CheckpointWrite]:
        writes = child(self._ref(thread_id, checkpoint_ns, checkpoint_id), WRITES)
        with translated():
            rows = [s.to_dict() or {} async for s in writes.stream()]
        found = [
            CheckpointWrite(
                thread_id=thread_id,
                checkpoint_ns=checkpoint_ns,
                checkpoint_id=checkpoint_id,
                task_id=row["taskId"],
                idx=int(row["idx"]),
                channel=row["channel"],
                value_type=row["valueType"],
                value=bytes(row["value"]),
                task_path=row.get("taskPath", ""),
            )
            for row in rows
        ]
        return sorted(found, key=lambda w: (w.task_path, w.task_id, w.idx))

    async def delete_thread(self, thread_id: str) -> None:
        await self._delete(checkpoints_of_thread(self._db(), self._collection, thread_id))

    async def delete_for_execution(self, execution_id: str) -> int:
        query = checkpoints_of_execution(self._db(), self._collection, execution_id)
        return await self._delete(query)

    async def _delete(self, query: Any) -> int:
        """Delete the checkpoints ``query`` finds and their writes, in batches. A write
        stored for a checkpoint that was never put has no parent document to be found
        by: the saver puts a checkpoint before its writes, so there is none."""
        db = self._db()
        with translated():
            # the keys only: the payloads are not downloaded to be deleted
            snapshots = [s async for s in query.select(["threadId"]).stream()]
            doomed: list[AsyncDocumentReference] = []
            for snapshot in snapshots:
                async for write in child(snapshot.reference, WRITES).stream():
                    doomed.append(write.reference)
                doomed.append(snapshot.reference)
            for start in range(0, len(doomed), _BATCH):
                batch = db.batch()
                for ref in doomed[start : start + _BATCH]:
                    batch.delete(ref)
                await batch.commit()
        return len(snapshots)

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client._firestore_api.transport.close()
