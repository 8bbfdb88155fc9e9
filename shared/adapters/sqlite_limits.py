"""Rate-limit buckets in the local store's SQLite file (table ``rate_buckets``).

Every process that opens the same file shares the buckets: a bucket's refill and take
happen in one IMMEDIATE transaction, so two processes never both spend the last token.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from shared.adapters._sqlite_side import SideConnection
from shared.ports.limits import Decision, RateLimit, take

__all__ = ["SqliteRateLimiter"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rate_buckets (
    key TEXT PRIMARY KEY,
    tokens REAL NOT NULL,
    updated REAL NOT NULL
);
"""


class SqliteRateLimiter:
    """Token buckets in SQLite, keyed by the limited key."""

    def __init__(self, path: str | Path, *, clock: Callable[[], float] = time.time) -> None:
        """Open ``path`` (the store's file, or ``:memory:``); ``clock`` gives epoch seconds
        (wall time: the buckets are shared with other processes)."""
        self._side = SideConnection(path, _SCHEMA)
        self._clock = clock

    async def acquire(self, key: str, limit: RateLimit, cost: float = 1.0) -> Decision:
        def body(conn: sqlite3.Connection) -> Decision:
            now = self._clock()
            row = conn.execute(
                "SELECT tokens, updated FROM rate_buckets WHERE key = ?", (key,)
            ).fetchone()
            tokens, elapsed = (None, 0.0) if row is None else (row[0], now - row[1])
            left, decision = take(limit, tokens, elapsed, cost)
            conn.execute(
                "INSERT INTO rate_buckets (key, tokens, updated) VALUES (?, ?, ?)"
                " ON CONFLICT(key) DO UPDATE SET tokens = excluded.tokens,"
                " updated = excluded.updated",
                (key, left, now),
            )
            return decision

        return await self._side.run(body, write=True)

    async def purge_idle(self, idle_before: datetime) -> int:
        """Delete buckets last used before ``idle_before`` (``IdleBuckets``): idle that
        long, a bucket is full again, as a new one is. Returns how many."""
        moment = idle_before.timestamp()

        def body(conn: sqlite3.Connection) -> int:
            return conn.execute("DELETE FROM rate_buckets WHERE updated < ?", (moment,)).rowcount

        return await self._side.run(body, write=True)

    async def close(self) -> None:
        await self._side.close()
