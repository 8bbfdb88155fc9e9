"""Retention of the audit log (``AuditLog.delete_before``, every adapter, Firestore on
the emulator) and of idle SQLite rate-limit buckets (``SqliteRateLimiter.purge_idle``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from google.cloud.firestore import AsyncClient

from shared.adapters.firestore_audit import FirestoreAuditLog
from shared.adapters.memory_limits import MemoryAuditLog
from shared.adapters.sqlite_audit import SqliteAuditLog
from shared.adapters.sqlite_limits import SqliteRateLimiter
from shared.models.audit import AuditEntry
from shared.ports import AuditLog, AuditQuery, RateLimit

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.fixture(params=["memory", "sqlite", pytest.param("firestore", marks=pytest.mark.emulator)])
async def audit(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AuditLog]:
    opened: AuditLog
    if request.param == "memory":
        opened = MemoryAuditLog()
    elif request.param == "sqlite":
        opened = SqliteAuditLog(tmp_path / "audit.db")
    else:
        project: str = request.getfixturevalue("firestore_project")
        opened = FirestoreAuditLog(lambda: AsyncClient(project=project))
    yield opened
    await opened.close()


def _entry(n: int, tenant: str) -> AuditEntry:
    values: dict[str, Any] = {
        "id": f"{tenant}-{n:03d}",
        "time": T0 + timedelta(days=n),
        "tenant": tenant,
        "subject": "alice",
        "action": "workflow.create",
        "target": "w",
    }
    return AuditEntry(**values)


async def _ids(audit: AuditLog, tenant: str) -> list[str]:
    page = await audit.query(AuditQuery(tenant=tenant, limit=500))
    return sorted(entry.id for entry in page.items)


async def test_entries_before_the_horizon_go_in_bounded_calls_of_every_tenant(
    audit: AuditLog,
) -> None:
    for n in range(10):
        await audit.record(_entry(n, "a"))
        await audit.record(_entry(n, "b"))
    horizon = T0 + timedelta(days=4)  # entries of days 0..3 are older

    assert await audit.delete_before(horizon, 5) == 5
    assert await audit.delete_before(horizon, 5) == 3
    assert await audit.delete_before(horizon, 5) == 0

    assert await _ids(audit, "a") == [f"a-{n:03d}" for n in range(4, 10)]
    assert await _ids(audit, "b") == [f"b-{n:03d}" for n in range(4, 10)]


async def test_idle_sqlite_buckets_are_purged_and_come_back_full(tmp_path: Path) -> None:
    now = [1_000_000.0]
    limiter = SqliteRateLimiter(tmp_path / "limits.db", clock=lambda: now[0])
    limit = RateLimit(rate=0.0001, burst=2)
    try:
        for _ in range(2):
            assert (await limiter.acquire("idle", limit)).allowed
        now[0] += 3600
        assert (await limiter.acquire("busy", limit)).allowed
        assert not (await limiter.acquire("idle", limit)).allowed  # refused: bucket kept
        cutoff = datetime.fromtimestamp(now[0] - 60, UTC)

        assert await limiter.purge_idle(cutoff) == 0  # "idle" was just refused: updated
        now[0] += 7200
        assert await limiter.purge_idle(datetime.fromtimestamp(now[0] - 60, UTC)) == 2
        assert (await limiter.acquire("idle", limit)).allowed  # a new, full bucket
    finally:
        await limiter.close()
