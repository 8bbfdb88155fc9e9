"""Analytics rollup rows in Firestore: sharded counter documents.

One document per (tenant, workflow, grain, bucket, shard); the shard is a hash of the
execution id over ``SHARDS``, so the executions of one busy workflow spread their
writes over a few documents (no hot document). A delta is two writes (hour and day
row) of ``Increment`` transforms on the ``c`` map, merged into the document: no read,
and they commit with the rest of the engine's transaction. ``c`` is exempt from
indexing (``infra/firestore/indexes.json``): its keys are step ids and error codes.
A read queries the rows of the window (an index on tenant, grain[, workflowId],
bucket) and merges the shards.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from google.cloud.firestore import AsyncClient, AsyncDocumentReference, Increment

from shared.adapters._firestore_codec import Collections
from shared.adapters._firestore_queries import fetch, rollups_in
from shared.ports.analytics import (
    GRAINS,
    Grain,
    RollupDelta,
    RollupQuery,
    RollupRow,
    bucket_start,
    merge_counters,
)

__all__ = ["SHARDS", "RollupWrites", "collection_of", "read_rows"]

SHARDS = 4


def collection_of(names: Collections) -> str:
    return f"{names.prefix}rollups"


def _shard(execution_id: str) -> int:
    return hashlib.blake2b(execution_id.encode(), digest_size=2).digest()[0] % SHARDS


def _doc_id(tenant: str, workflow_id: str, grain: str, bucket: float, shard: int) -> str:
    key = "\x1f".join((tenant, workflow_id, grain, repr(bucket), str(shard)))
    return hashlib.sha256(key.encode()).hexdigest()[:40]


class RollupWrites:
    """A transaction's rollup deltas, summed per document until the commit."""

    def __init__(self, client: AsyncClient, names: Collections) -> None:
        self._client = client
        self._collection = collection_of(names)
        self._docs: dict[str, tuple[AsyncDocumentReference, dict[str, Any], dict[str, float]]] = {}

    def add(self, delta: RollupDelta) -> None:
        shard = _shard(delta.execution_id)
        for grain in GRAINS:
            bucket = bucket_start(delta.at, grain).timestamp()
            doc_id = _doc_id(delta.tenant, delta.workflow_id, grain, bucket, shard)
            if doc_id not in self._docs:
                ref = self._client.collection(self._collection).document(doc_id)
                fields = {
                    "tenant": delta.tenant,
                    "workflowId": delta.workflow_id,
                    "grain": grain,
                    "bucket": bucket,
                    "shard": shard,
                }
                self._docs[doc_id] = (ref, fields, {})
            merge_counters(self._docs[doc_id][2], delta.counters)

    def writes(self) -> list[tuple[AsyncDocumentReference, dict[str, Any]]]:
        """(document, data) pairs to ``set(..., merge=True)``: one per document touched."""
        return [
            (ref, {**fields, "c": {k: Increment(v) for k, v in counters.items() if v}})
            for ref, fields, counters in self._docs.values()
        ]


async def read_rows(client: AsyncClient, names: Collections, query: RollupQuery) -> list[RollupRow]:
    """The rows of ``query``, shards merged, oldest first."""
    merged: dict[tuple[float, str], dict[str, float]] = {}
    for row in await fetch(rollups_in(client, collection_of(names), query)):
        key = (float(row["bucket"]), str(row["workflowId"]))
        merge_counters(merged.setdefault(key, {}), dict(row.get("c") or {}))
    grain: Grain = query.grain
    return [
        RollupRow(query.tenant, workflow_id, grain, datetime.fromtimestamp(bucket, UTC), counters)
        for (bucket, workflow_id), counters in sorted(merged.items())
    ]
