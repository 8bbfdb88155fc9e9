"""LangGraph checkpoints in the local store's SQLite file (tables ``lg_checkpoints`` and
``lg_checkpoint_writes``).

The tables sit beside the store's own, on a side connection (as the audit log and the
rate-limit buckets do), with idempotent DDL instead of a step of the store's versioned
schema: the checkpoints are a cache of a step's progress that the engine never reads in
its own transactions, so they need not share them, and the store's migrations stay
untouched.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from shared.adapters._sqlite_side import SideConnection
from shared.ports.checkpoints import (
    CheckpointListing,
    CheckpointRecord,
    CheckpointWrite,
    execution_of,
)

__all__ = ["SqliteCheckpointStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS lg_checkpoints (
    thread_id TEXT NOT NULL,
    checkpoint_ns TEXT NOT NULL,
    checkpoint_id TEXT NOT NULL,
    execution_id TEXT NOT NULL,
    parent_checkpoint_id TEXT,
    checkpoint_type TEXT NOT NULL,
    checkpoint BLOB NOT NULL,
    metadata_type TEXT NOT NULL,
    metadata BLOB NOT NULL,
    PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id)
);
CREATE INDEX IF NOT EXISTS lg_checkpoints_by_execution ON lg_checkpoints (execution_id);
CREATE INDEX IF NOT EXISTS lg_checkpoints_by_id ON lg_checkpoints (checkpoint_id);
CREATE TABLE IF NOT EXISTS lg_checkpoint_writes (
    thread_id TEXT NOT NULL,
    checkpoint_ns TEXT NOT NULL,
    checkpoint_id TEXT NOT NULL,
    task_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    execution_id TEXT NOT NULL,
    task_path TEXT NOT NULL,
    channel TEXT NOT NULL,
    value_type TEXT NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id, task_id, idx)
);
CREATE INDEX IF NOT EXISTS lg_checkpoint_writes_by_execution
    ON lg_checkpoint_writes (execution_id);
"""

_COLUMNS = (
    "thread_id, checkpoint_ns, checkpoint_id, execution_id, parent_checkpoint_id,"
    " checkpoint_type, checkpoint, metadata_type, metadata"
)

_WRITE_COLUMNS = (
    "thread_id, checkpoint_ns, checkpoint_id, task_id, idx, execution_id, task_path,"
    " channel, value_type, value"
)


def _record(row: tuple[Any, ...]) -> CheckpointRecord:
    return CheckpointRecord(
        thread_id=row[0],
        checkpoint_ns=row[1],
        checkpoint_id=row[2],
        execution_id=row[3],
        parent_checkpoint_id=row[4],
        checkpoint_type=row[5],
        checkpoint=bytes(row[6]),
        metadata_type=row[7],
        metadata=bytes(row[8]),
    )


class SqliteCheckpointStore:
    """Checkpoint records and writes as rows keyed as LangGraph keys them."""

    def __init__(self, path: str | Path) -> None:
        self._side = SideConnection(path, _SCHEMA)

    async def put_checkpoint(self, record: CheckpointRecord) -> None:
        execution_of(record.thread_id)
        row = (
            record.thread_id,
            record.checkpoint_ns,
            record.checkpoint_id,
            record.execution_id,
            record.parent_checkpoint_id,
            record.checkpoint_type,
            record.checkpoint,
            record.metadata_type,
            record.metadata,
        )

        def body(conn: sqlite3.Connection) -> None:
            conn.execute(
                f"INSERT OR REPLACE INTO lg_checkpoints ({_COLUMNS})"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                row,
            )

        await self._side.run(body, write=True)

    async def get_checkpoint(
        self, thread_id: str, checkpoint_ns: str, checkpoint_id: str | None
    ) -> CheckpointRecord | None:
        if checkpoint_id is not None:
            sql = (
                f"SELECT {_COLUMNS} FROM lg_checkpoints"
                " WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id = ?"
            )
            params: tuple[str, ...] = (thread_id, checkpoint_ns, checkpoint_id)
        else:
            sql = (
                f"SELECT {_COLUMNS} FROM lg_checkpoints WHERE thread_id = ? AND checkpoint_ns = ?"
                " ORDER BY checkpoint_id DESC LIMIT 1"
            )
            params = (thread_id, checkpoint_ns)

        def body(conn: sqlite3.Connection) -> tuple[Any, ...] | None:
            row: tuple[Any, ...] | None = conn.execute(sql, params).fetchone()
            return row

        row = await self._side.run(body, write=False)
        return _record(row) if row is not None else None

    async def list_checkpoints(self, listing: CheckpointListing) -> list[CheckpointRecord]:
        where: list[str] = []
        params: list[Any] = []
        for clause, value in (
            ("thread_id = ?", listing.thread_id),
            ("checkpoint_ns = ?", listing.checkpoint_ns),
            ("checkpoint_id = ?", listing.checkpoint_id),
            ("checkpoint_id < ?", listing.before),
        ):
            if value is not None:
                where.append(clause)
                params.append(value)
        sql = f"SELECT {_COLUMNS} FROM lg_checkpoints"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY checkpoint_id DESC, thread_id DESC, checkpoint_ns DESC"
        if listing.limit is not None:
            sql += " LIMIT ?"
            params.append(max(listing.limit, 0))

        def body(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
            return conn.execute(sql, params).fetchall()

        return [_record(row) for row in await self._side.run(body, write=False)]

    async def put_writes(self, writes: list[CheckpointWrite]) -> None:
        rows = [
            (
                w.thread_id,
                w.checkpoint_ns,
                w.checkpoint_id,
                w.task_id,
                w.idx,
                execution_of(w.thread_id),
                w.task_path,
                w.channel,
                w.value_type,
                w.value,
            )
            for w in writes
        ]

        def body(conn: sqlite3.Connection) -> None:
            for row in rows:
                verb = "INSERT OR IGNORE" if int(row[4]) >= 0 else "INSERT OR REPLACE"
                conn.execute(
                    f"{verb} INTO lg_checkpoint_writes ({_WRITE_COLUMNS})"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    row,
                )

        await self._side.run(body, write=True)

    async def get_writes(
        self, thread_id: str, checkpoint_ns: str, checkpoint_id: str
    ) -> list[CheckpointWrite]:
        def body(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
            return conn.execute(
                "SELECT task_id, idx, channel, value_type, value, task_path"
                " FROM lg_checkpoint_writes"
                " WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id = ?"
                " ORDER BY task_path, task_id, idx",
                (thread_id, checkpoint_ns, checkpoint_id),
            ).fetchall()

        return [
            CheckpointWrite(
                thread_id=thread_id,
                checkpoint_ns=checkpoint_ns,
                checkpoint_id=checkpoint_id,
                task_id=task_id,
                idx=idx,
                channel=channel,
                value_type=value_type,
                value=bytes(value),
                task_path=task_path,
            )
            for task_id, idx, channel, value_type, value, task_path in await self._side.run(
                body, write=False
            )
        ]

    async def delete_thread(self, thread_id: str) -> None:
        def body(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM lg_checkpoints WHERE thread_id = ?", (thread_id,))
            conn.execute("DELETE FROM lg_checkpoint_writes WHERE thread_id = ?", (thread_id,))

        await self._side.run(body, write=True)

    async def delete_for_execution(self, execution_id: str) -> int:
        def body(conn: sqlite3.Connection) -> int:
            deleted = conn.execute(
                "DELETE FROM lg_checkpoints WHERE execution_id = ?", (execution_id,)
            ).rowcount
            conn.execute("DELETE FROM lg_checkpoint_writes WHERE execution_id = ?", (execution_id,))
            return int(deleted)

        return await self._side.run(body, write=True)

    async def close(self) -> None:
        await self._side.close()
