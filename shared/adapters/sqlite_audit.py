"""The audit log in the local store's SQLite file (table ``audit_log``)."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any

from shared.adapters._sqlite_side import SideConnection
from shared.adapters._store_common import check_limit, decode_cursor, encode_cursor, epoch
from shared.models.audit import AuditEntry
from shared.ports import Page
from shared.ports.audit import AuditQuery

__all__ = ["SqliteAuditLog"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_log (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    time REAL NOT NULL,
    subject TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_log_by_tenant_time ON audit_log (tenant, time DESC, id);
CREATE INDEX IF NOT EXISTS audit_log_by_time ON audit_log (time);
"""


_INSERT = (
    "INSERT OR IGNORE INTO audit_log (id, tenant, time, subject, action, target, doc)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)

_Row = tuple[str, str, float, str, str, str | None, str]


class SqliteAuditLog:
    """Audit entries as rows: the filtered columns copied out of the entry's JSON.

    Entries recorded while a write is under way go into the next one together: under a
    burst of requests the log takes SQLite's write lock once per batch, not once per
    entry, and each caller still returns only when its entry is committed.
    """

    def __init__(self, path: str | Path) -> None:
        self._side = SideConnection(path, _SCHEMA)
        self._pending: list[tuple[_Row, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def record(self, entry: AuditEntry) -> None:
        row: _Row = (
            entry.id,
            entry.tenant,
            epoch(entry.time),
            entry.subject,
            entry.action,
            entry.target,
            entry.model_dump_json(by_alias=True, exclude_none=True),
        )
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.add_done_callback(_retrieved)
        self._pending.append((row, done))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_pending())
        await asyncio.shield(done)

    async def _write_pending(self) -> None:
        """Write what is pending, batch after batch, until nothing is left."""
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                rows = [row for row, _ in batch]

                def body(conn: sqlite3.Connection, rows: list[_Row] = rows) -> None:
                    conn.executemany(_INSERT, rows)

                try:
                    await self._side.run(body, write=True)
                except Exception as exc:
                    for _, done in batch:
                        if not done.done():
                            done.set_exception(exc)
                else:
                    for _, done in batch:
                        if not done.done():
                            done.set_result(None)
        finally:
            self._writer = None

    async def delete_before(self, before: datetime, limit: int) -> int:
        """Delete up to ``limit`` of the oldest entries recorded before ``before`` (index
        ``audit_log_by_time``), in one write transaction."""
        moment = epoch(before)

        def body(conn: sqlite3.Connection) -> int:
            return conn.execute(
                "DELETE FROM audit_log WHERE rowid IN"
                " (SELECT rowid FROM audit_log WHERE time < ? ORDER BY time LIMIT ?)",
                (moment, check_limit(limit)),
            ).rowcount

        return await self._side.run(body, write=True)

    async def query(self, query: AuditQuery) -> Page[AuditEntry]:
        limit = check_limit(query.limit)
        where, params = ["tenant = ?"], [query.tenant]
        for column, value in (
            ("action", query.action),
            ("subject", query.subject),
            ("target", query.target),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        values: list[Any] = list(params)
        if query.since is not None:
            where.append("time >= ?")
            values.append(epoch(query.since))
        if query.until is not None:
            where.append("time < ?")
            values.append(epoch(query.until))
        if query.cursor:
            moment, ident = decode_cursor(query.cursor)
            where.append("(time < ? OR (time = ? AND id > ?))")
            values += [moment, moment, ident]
        sql = (
            f"SELECT time, id, doc FROM audit_log WHERE {' AND '.join(where)}"
            " ORDER BY time DESC, id ASC LIMIT ?"
        )
        values.append(limit + 1)

        def body(conn: sqlite3.Connection) -> list[Any]:
            return conn.execute(sql, values).fetchall()

        rows = await self._side.run(body, write=False)
        page = rows[:limit]
        items = [AuditEntry.model_validate_json(doc) for _, _, doc in page]
        more = len(rows) > limit
        return Page(items, encode_cursor((page[-1][0], page[-1][1])) if more else None)

    async def close(self) -> None:
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)
        await self._side.close()


def _retrieved(done: asyncio.Future[None]) -> None:
    """Mark a failure as seen even when its caller was cancelled meanwhile (no warning)."""
    if not done.cancelled():
        done.exception()
