"""Rate limits and the audit log in process memory: the memory store's companions and
the fakes of the tests (one process; nothing survives it)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime

from shared.adapters._store_common import epoch, paginate
from shared.models.audit import AuditEntry
from shared.ports import Page
from shared.ports.audit import AuditQuery
from shared.ports.limits import Decision, RateLimit, take

__all__ = ["MemoryAuditLog", "MemoryRateLimiter", "matches"]


class MemoryRateLimiter:
    """Token buckets in a dict (one process: no sharing between instances)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        """key -> (tokens, when they were counted)."""
        self._lock = asyncio.Lock()

    async def acquire(self, key: str, limit: RateLimit, cost: float = 1.0) -> Decision:
        async with self._lock:
            now = self._clock()
            tokens, updated = self._buckets.get(key, (limit.burst, now))
            left, decision = take(limit, tokens, now - updated, cost)
            self._buckets[key] = (left, now)
            return decision

    async def close(self) -> None:
        self._buckets.clear()


def matches(entry: AuditEntry, query: AuditQuery) -> bool:
    """Whether ``entry`` passes every filter of ``query``."""
    return (
        entry.tenant == query.tenant
        and (query.action is None or entry.action == query.action)
        and (query.subject is None or entry.subject == query.subject)
        and (query.target is None or entry.target == query.target)
        and (query.since is None or epoch(entry.time) >= epoch(query.since))
        and (query.until is None or epoch(entry.time) < epoch(query.until))
    )


class MemoryAuditLog:
    """Audit entries in a list (the memory store's audit log)."""

    def __init__(self) -> None:
        self._entries: dict[str, AuditEntry] = {}

    async def record(self, entry: AuditEntry) -> None:
        self._entries.setdefault(entry.id, entry.model_copy(deep=True))

    async def delete_before(self, before: datetime, limit: int) -> int:
        old = sorted(
            (entry for entry in self._entries.values() if epoch(entry.time) < epoch(before)),
            key=lambda entry: epoch(entry.time),
        )[:limit]
        for entry in old:
            del self._entries[entry.id]
        return len(old)

    async def query(self, query: AuditQuery) -> Page[AuditEntry]:
        rows = [
            ((epoch(entry.time), entry.id), entry.model_copy(deep=True))
            for entry in self._entries.values()
            if matches(entry, query)
        ]
        return paginate(rows, query.cursor, query.limit)

    async def close(self) -> None:
        return None
