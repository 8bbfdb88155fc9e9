"""A side connection (audit log, rate-limit buckets) is never closed under its thread.

A runtime stopping cancels its tasks (the retention loop writing an audit entry) and
then closes the connections at once: the cancelled call used to let go of the lock while
its worker thread was still inside SQLite, and ``close()`` closed the connection under
it (``wfe dev`` stopped with a segmentation fault in the test suite).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

from shared.adapters._sqlite_side import SideConnection


async def test_a_cancelled_call_holds_the_connection_until_its_thread_is_done(
    tmp_path: Path,
) -> None:
    side = SideConnection(tmp_path / "side.db", "CREATE TABLE IF NOT EXISTS t (x INTEGER);")
    inside, finished = threading.Event(), threading.Event()

    def slow_write(conn: sqlite3.Connection) -> None:
        inside.set()
        time.sleep(0.3)
        conn.execute("INSERT INTO t VALUES (1)")
        finished.set()

    call = asyncio.create_task(side.run(slow_write, write=True))
    while not inside.is_set():
        await asyncio.sleep(0.01)
    call.cancel()
    await asyncio.sleep(0)
    await side.close()  # waits for the thread: the write went through on an open connection
    assert finished.is_set()
    assert call.cancelled() or call.done()
    check = sqlite3.connect(tmp_path / "side.db")
    assert check.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 1
    check.close()
