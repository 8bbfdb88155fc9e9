"""Writes beside the store (audit log, checkpoints, buckets) while SQLite's write lock is
held for longer than one busy timeout, as a busy store's group commits do.

Found by ``bench/api.py``: with 50 concurrent ``POST /execute`` on ``wfe dev`` some
``execution.start`` audit entries were dropped ("database is locked" after the side
connection's 5 s wait). A side write now tries again until its deadline, and the audit
log writes the entries of a burst in one transaction.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import uuid
from pathlib import Path

import pytest

from shared.adapters._sqlite_side import SideConnection
from shared.adapters.sqlite_audit import SqliteAuditLog
from shared.models.audit import AuditEntry
from shared.ports.audit import AuditQuery

pytestmark = pytest.mark.timeout(120)

HOLD_SECONDS = 6.0
"""Longer than the side connection's 5 s busy timeout."""


def hold_write_lock(path: Path, seconds: float, taken: threading.Event) -> threading.Thread:
    """Another connection takes the write lock and keeps it ``seconds``."""

    def hold() -> None:
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            taken.set()
            threading.Event().wait(seconds)
            conn.execute("COMMIT")
        finally:
            conn.close()

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    return thread


def entry(n: int) -> AuditEntry:
    return AuditEntry(
        id=uuid.uuid4().hex, tenant="t1", subject="key:ops", action=f"execution.start.{n}"
    )


async def test_an_audit_entry_waits_out_a_lock_held_past_the_busy_timeout(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    log = SqliteAuditLog(path)
    taken = threading.Event()
    holder = hold_write_lock(path, HOLD_SECONDS, taken)
    assert await asyncio.to_thread(taken.wait, 5)
    try:
        await log.record(entry(0))
        page = await log.query(AuditQuery(tenant="t1"))
        assert [e.action for e in page.items] == ["execution.start.0"]
    finally:
        holder.join()
        await log.close()


async def test_a_burst_of_entries_during_a_long_lock_is_all_written(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    log = SqliteAuditLog(path)
    taken = threading.Event()
    holder = hold_write_lock(path, HOLD_SECONDS, taken)
    assert await asyncio.to_thread(taken.wait, 5)
    try:
        await asyncio.gather(*(log.record(entry(n)) for n in range(200)))
        page = await log.query(AuditQuery(tenant="t1", limit=500))
        assert sorted(e.action for e in page.items) == sorted(
            f"execution.start.{n}" for n in range(200)
        )
    finally:
        holder.join()
        await log.close()


async def test_a_side_write_gives_up_at_its_deadline(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    side = SideConnection(path, "CREATE TABLE IF NOT EXISTS t (x INTEGER)", write_deadline=0.0)
    taken = threading.Event()
    holder = hold_write_lock(path, HOLD_SECONDS, taken)
    assert await asyncio.to_thread(taken.wait, 5)
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            await side.run(lambda conn: conn.execute("INSERT INTO t VALUES (1)"), write=True)
    finally:
        holder.join()
        await side.close()
