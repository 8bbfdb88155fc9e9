"""Analytics rollup rows in SQLite: the table, the in-transaction upserts, the reads.

A row per (tenant, grain, bucket, workflow id) holds its counters as one JSON object.
The deltas of a group commit are summed in Python first (``RollupSums``: a thousand
executions of one workflow ending in one group are one row per grain), then each row
is read once, added to and written back, in the group's SQLite transaction, just before
its COMMIT. (Adding them in SQL, with a ``json_each`` merge in the upsert's conflict
clause, cost 650 µs per delta and grain on a 100-step workflow's row: a quarter of
its steps' time.) The store's writer keeps the rows it wrote, parsed (``RollupRows``),
so a busy workflow's row is not read and parsed again by every group: a tenth of a
linear step's time was that JSON.
"""

from __future__ import annotations

import json
import sqlite3
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any

from shared.ports.analytics import GRAINS, Grain, RollupDelta, RollupQuery, RollupRow, bucket_start

__all__ = ["RollupRows", "RollupSums", "ensure_rollup_schema", "select_rollups"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rollups (
    tenant TEXT NOT NULL,
    grain TEXT NOT NULL,
    bucket REAL NOT NULL,
    workflow_id TEXT NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (tenant, grain, bucket, workflow_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS rollups_by_workflow ON rollups (tenant, workflow_id, grain, bucket)
"""

_READ = "SELECT doc FROM rollups WHERE tenant = ? AND grain = ? AND bucket = ? AND workflow_id = ?"
_WRITE = """
INSERT INTO rollups (tenant, grain, bucket, workflow_id, doc) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (tenant, grain, bucket, workflow_id) DO UPDATE SET doc = excluded.doc
"""

RowKey = tuple[str, str, float, str]
"""(tenant, grain, bucket start as epoch seconds, workflow id): a row's primary key."""


def ensure_rollup_schema(conn: sqlite3.Connection) -> None:
    """Create the rollups table if missing (a table added after schema version 1)."""
    for statement in _SCHEMA.split(";"):
        if statement.strip():
            conn.execute(statement)


class RollupRows:
    """The rows one connection wrote, parsed (LRU of ``size``), for its next groups.

    Valid while no other connection committed (``PRAGMA data_version`` unchanged,
    checked by each flush inside its transaction, where no other can commit). A flush
    stages what it writes; ``committed`` keeps it once the COMMIT succeeded, ``discard``
    drops it after a rollback, so a row kept is always the row on disk.
    """

    def __init__(self, size: int = 512) -> None:
        if size < 1:
            raise ValueError("size must be at least 1")
        self._size = size
        self._rows: OrderedDict[RowKey, dict[str, float]] = OrderedDict()
        self._staged: dict[RowKey, dict[str, float]] = {}
        self._version: int | None = None
        self.hits = 0
        """Rows a flush added to without reading them."""

    def check(self, conn: sqlite3.Connection) -> None:
        """Forget every row if another connection committed since the last check."""
        version = int(conn.execute("PRAGMA data_version").fetchone()[0])
        if version != self._version:
            self._rows.clear()
            self._version = version

    def get(self, key: RowKey) -> dict[str, float] | None:
        found = self._staged.get(key)
        if found is None:
            found = self._rows.get(key)
            if found is not None:
                self.hits += 1
        return found

    def stage(self, key: RowKey, counters: dict[str, float]) -> None:
        self._staged[key] = counters

    def committed(self) -> None:
        """The staged rows are on disk: keep them (the least recently written go first)."""
        for key, counters in self._staged.items():
            self._rows[key] = counters
            self._rows.move_to_end(key)
        self._staged.clear()
        while len(self._rows) > self._size:
            self._rows.popitem(last=False)

    def discard(self) -> None:
        """The transaction was rolled back: forget what it staged."""
        self._staged.clear()


class RollupSums:
    """Deltas summed per row, to be added to the table in one read and one write per
    row (``flush``)."""

    def __init__(self) -> None:
        self._rows: dict[RowKey, dict[str, float]] = {}

    def __bool__(self) -> bool:
        return bool(self._rows)

    def add(self, delta: RollupDelta) -> None:
        """Add ``delta`` to its hour and day rows."""
        for grain in GRAINS:
            key = (
                delta.tenant,
                grain,
                bucket_start(delta.at, grain).timestamp(),
                delta.workflow_id,
            )
            counters = self._rows.setdefault(key, {})
            for name, value in delta.counters.items():
                counters[name] = counters.get(name, 0) + value

    def flush(self, conn: sqlite3.Connection, known: RollupRows | None = None) -> None:
        """Add the sums to their rows (in the caller's transaction) and start over.

        ``known``: the rows this connection wrote, read instead of the table (and given
        what is written here: the caller tells it ``committed`` or ``discard``)."""
        if known is not None and self._rows:
            known.check(conn)
        for key, counters in self._rows.items():
            stored = known.get(key) if known is not None else None
            if stored is None:
                row = conn.execute(_READ, key).fetchone()
                stored = json.loads(row[0]) if row is not None else None
            if stored is not None:
                merged = dict(stored)  # a kept row changes only once this commits
                for name, value in counters.items():
                    merged[name] = merged.get(name, 0) + value
                counters = merged
            conn.execute(_WRITE, (*key, json.dumps(counters, separators=(",", ":"))))
            if known is not None:
                known.stage(key, counters)
        self._rows.clear()


def select_rollups(query: RollupQuery) -> tuple[str, list[Any]]:
    """The SELECT (and its parameters) of the rows matching ``query``."""
    sql = (
        "SELECT workflow_id, bucket, doc FROM rollups"
        " WHERE tenant = ? AND grain = ? AND bucket >= ? AND bucket < ?"
    )
    params: list[Any] = [query.tenant, query.grain, query.start.timestamp(), query.end.timestamp()]
    if query.workflow_id is not None:
        sql += " AND workflow_id = ?"
        params.append(query.workflow_id)
    return sql + " ORDER BY bucket, workflow_id", params


def rows_of(query: RollupQuery, rows: list[Any]) -> list[RollupRow]:
    """RollupRows from the SELECT's result."""
    grain: Grain = query.grain
    return [
        RollupRow(
            query.tenant,
            workflow_id,
            grain,
            datetime.fromtimestamp(bucket, UTC),
            json.loads(doc),
        )
        for workflow_id, bucket, doc in rows
    ]
