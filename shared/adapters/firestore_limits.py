"""Rate-limit buckets in Firestore, shared by every instance, sharded for write rate.

Firestore sustains about one write per second on one document. A bucket under
``RateLimit(rate, burst)`` is therefore kept as ``n`` shard documents, each a token
bucket of its own under ``RateLimit(rate / n, burst / n)``, with

    n = min(max_shards, floor(burst), ceil(rate / writes_per_doc))

so that, when the bucket is used at its full rate, each shard document takes about
``writes_per_doc`` writes per second. A request picks a shard at random and takes a
token from it in a transaction (read, refill, write); when that shard is empty it
tries one other random shard before it is refused (a refusal writes nothing). The
shards never hold more than ``burst`` tokens together nor refill faster than ``rate``,
so all instances together never let more than ``burst + rate * t`` requests through
in ``t`` seconds; the price of sharding is that a request can be refused while another
shard still holds a token (fewer than the limit, never more). The retry-after of a
refusal is the sooner of the two shards'. A shard whose transaction keeps failing on
contention is counted as empty for that request (a refusal, never an error).

Documents: ``rate_limits/{sha256(key)[:40]}-{shard}`` with ``tokens``, ``updated`` (the
instance's epoch seconds: instances' clocks must agree to within a fraction of the
refill interval, as Cloud Run's do) and ``expireAt`` (the TTL policy declared in
``infra/firestore/indexes.json`` deletes idle buckets).
"""

from __future__ import annotations

import hashlib
import math
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from google.cloud.firestore import AsyncClient, AsyncDocumentReference, AsyncTransaction

from shared.adapters._firestore_tx import Contention, transact
from shared.ports.limits import Decision, RateLimit, take

__all__ = ["FirestoreRateLimiter", "shard_count"]

COLLECTION = "rate_limits"


def shard_count(limit: RateLimit, max_shards: int, writes_per_doc: float = 1.0) -> int:
    """How many shard documents a bucket under ``limit`` is kept in (see the module)."""
    wanted = math.ceil(limit.rate / writes_per_doc)
    return max(1, min(max_shards, int(limit.burst), wanted))


class FirestoreRateLimiter:
    """Sharded token buckets in the ``rate_limits`` collection."""

    def __init__(
        self,
        client_factory: Callable[[], AsyncClient],
        *,
        max_shards: int = 16,
        writes_per_doc: float = 1.0,
        collection_prefix: str = "",
        clock: Callable[[], float] = time.time,
        attempts: int = 6,
    ) -> None:
        """Prepare the limiter; the client is built on first use.

        Args:
            max_shards: most shard documents per bucket.
            writes_per_doc: sustained writes per second a shard document should see.
            clock: epoch seconds (wall time, shared with the other instances).
            attempts: transactions tried on contention before the error surfaces.
        """
        if max_shards < 1:
            raise ValueError("max_shards must be at least 1")
        self._client_factory = client_factory
        self._client: AsyncClient | None = None
        self._max_shards = max_shards
        self._writes_per_doc = writes_per_doc
        self._collection = f"{collection_prefix}{COLLECTION}"
        self._clock = clock
        self._attempts = attempts

    def _db(self) -> AsyncClient:
        if self._client is None:
            self._client = self._client_factory()
        return self._client

    def _shard(self, key: str, index: int) -> AsyncDocumentReference:
        digest = hashlib.sha256(key.encode()).hexdigest()[:40]
        return self._db().collection(self._collection).document(f"{digest}-{index}")

    async def acquire(self, key: str, limit: RateLimit, cost: float = 1.0) -> Decision:
        shards = shard_count(limit, self._max_shards, self._writes_per_doc)
        share = limit.split(shards)
        picks = random.sample(range(shards), min(2, shards))
        refusals: list[Decision] = []
        for index in picks:
            decision = await self._take(self._shard(key, index), share, cost)
            if decision.allowed:
                return decision
            refusals.append(decision)
        return min(refusals, key=lambda refused: refused.retry_after)

    async def _take(self, ref: AsyncDocumentReference, limit: RateLimit, cost: float) -> Decision:
        async def body(transaction: AsyncTransaction) -> Decision:
            snapshot = await ref.get(transaction=transaction)
            now = self._clock()
            data = snapshot.to_dict() if snapshot.exists else None
            tokens = None if data is None else float(data["tokens"])
            elapsed = 0.0 if data is None else now - float(data["updated"])
            left, decision = take(limit, tokens, elapsed, cost)
            if decision.allowed:
                idle = (limit.burst / limit.rate) + 3600.0  # full again, plus an hour
                expire = datetime.fromtimestamp(now, UTC) + timedelta(seconds=idle)
                transaction.set(ref, {"tokens": left, "updated": now, "expireAt": expire})
            return decision

        try:
            return await transact(self._db(), body, attempts=self._attempts, base_delay=0.02)
        except Contention:
            # A shard too contended to update in ``attempts`` tries is treated as empty:
            # refusing errs on the side of the limit (the caller retries after a second).
            return Decision(False, 1.0)

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client._firestore_api.transport.close()
