"""A second connection to the store's SQLite file, for the tables that sit beside the
store's own (rate-limit buckets, the audit log).

The store may hold its write transaction open across awaits (group commit), and a
connection that waits for SQLite's lock busy-waits in the calling thread; so every call
here runs in a worker thread, never on the event loop, one at a time.

A busy store can keep SQLite's write lock taken for longer than one busy timeout (its
writer begins the next group as soon as one commits), so a write that finds the lock
taken is tried again, rolled back in between, until ``write_deadline`` seconds have
passed: an audit entry or a checkpoint is late under load, not lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

__all__ = ["SideConnection"]


class SideConnection:
    """One SQLite connection used from worker threads, serialised by an asyncio lock."""

    def __init__(self, path: str | Path, schema: str, *, write_deadline: float = 60.0) -> None:
        """Open ``path`` (WAL, busy timeout) and run ``schema`` (idempotent DDL)."""
        self._path = str(path)
        self._write_deadline = write_deadline
        self._conn = sqlite3.connect(
            self._path, isolation_level=None, check_same_thread=False, timeout=5.0
        )
        try:
            self._conn.execute("PRAGMA busy_timeout = 5000")
            if self._path != ":memory:":
                self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = NORMAL")
            self._conn.executescript(schema)
        except BaseException:
            self._conn.close()
            raise
        self._lock = asyncio.Lock()
        self._closed = False

    async def run(self, body: Callable[[sqlite3.Connection], T], *, write: bool) -> T:
        """Run ``body`` in a worker thread (in one IMMEDIATE transaction when ``write``).

        A cancelled caller still waits for the thread before it lets go of the lock: the
        thread goes on using the connection, and ``close()`` (a runtime stopping right
        after cancelling its tasks) would close it under the thread (a segfault).
        """
        async with self._lock:
            work = asyncio.ensure_future(asyncio.to_thread(self._run, body, write))
            try:
                return await asyncio.shield(work)
            except asyncio.CancelledError:
                while not work.done():
                    with contextlib.suppress(asyncio.CancelledError):
                        await asyncio.wait([work])
                raise

    def _run(self, body: Callable[[sqlite3.Connection], T], write: bool) -> T:
        if not write:
            return body(self._conn)
        give_up = time.monotonic() + self._write_deadline
        while True:
            try:
                return self._write(body)
            except sqlite3.OperationalError as exc:
                if not _lock_taken(exc) or time.monotonic() >= give_up:
                    raise

    def _write(self, body: Callable[[sqlite3.Connection], T]) -> T:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            result = body(self._conn)
            self._conn.execute("COMMIT")
        except BaseException:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise
        return result

    async def close(self) -> None:
        async with self._lock:
            if not self._closed:
                self._closed = True
                self._conn.close()


def _lock_taken(exc: sqlite3.OperationalError) -> bool:
    """SQLITE_BUSY or SQLITE_LOCKED after the busy timeout: worth another try."""
    code = exc.sqlite_errorcode & 0xFF
    return code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
