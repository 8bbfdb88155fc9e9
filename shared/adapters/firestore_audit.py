"""The audit log in Firestore: one document per entry in the ``audit`` collection.

Listings filter on ``tenant`` (and ``action``, ``subject`` or ``target``) and order by
``timeKey`` descending, then ``id`` (``_firestore_queries.audit_listing``): the
composite indexes are declared in ``infra/firestore/indexes.json``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from google.cloud.firestore import AsyncClient

from shared.adapters._firestore_queries import audit_before, audit_listing
from shared.adapters._firestore_tx import translated
from shared.adapters._store_common import check_limit, decode_cursor, encode_cursor, epoch
from shared.models.audit import AuditEntry
from shared.ports import Page
from shared.ports.audit import AuditQuery

__all__ = ["COLLECTION", "FirestoreAuditLog"]

COLLECTION = "audit"
BATCH = 400
"""Deletes per batch commit (a commit holds at most 500 writes)."""


class FirestoreAuditLog:
    """Audit entries as documents; their id is the entry's id (a retried write is one)."""

    def __init__(
        self, client_factory: Callable[[], AsyncClient], *, collection_prefix: str = ""
    ) -> None:
        self._client_factory = client_factory
        self._client: AsyncClient | None = None
        self._collection = f"{collection_prefix}{COLLECTION}"

    def _db(self) -> AsyncClient:
        if self._client is None:
            self._client = self._client_factory()
        return self._client

    async def record(self, entry: AuditEntry) -> None:
        document: dict[str, Any] = entry.model_dump(mode="json", by_alias=True)
        document["timeKey"] = epoch(entry.time)
        with translated():
            await self._db().collection(self._collection).document(entry.id).set(document)

    async def delete_before(self, before: datetime, limit: int) -> int:
        """Delete up to ``limit`` of the oldest entries recorded before ``before``, in
        batches of ``BATCH`` deletes."""
        client = self._db()
        query = audit_before(client, self._collection, epoch(before)).limit(check_limit(limit))
        deleted = 0
        with translated():
            refs = [snapshot.reference async for snapshot in query.stream()]
            for start in range(0, len(refs), BATCH):
                batch = client.batch()
                for ref in refs[start : start + BATCH]:
                    batch.delete(ref)
                await batch.commit()
                deleted += len(refs[start : start + BATCH])
        return deleted

    async def query(self, query: AuditQuery) -> Page[AuditEntry]:
        limit = check_limit(query.limit)
        found = audit_listing(self._db(), self._collection, query)
        if query.cursor:
            moment, ident = decode_cursor(query.cursor)
            found = found.start_after({"timeKey": moment, "id": ident})
        with translated():
            snapshots = [snapshot async for snapshot in found.limit(limit + 1).stream()]
        rows = [snapshot.to_dict() or {} for snapshot in snapshots]
        page = rows[:limit]
        items = [
            AuditEntry.model_validate({k: v for k, v in row.items() if k != "timeKey"})
            for row in page
        ]
        more = len(rows) > limit
        last = page[-1] if page else {}
        cursor = encode_cursor((float(last["timeKey"]), str(last["id"]))) if more else None
        return Page(items, cursor)

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client._firestore_api.transport.close()
