"""Analytics rollup rows in SQLite: the table, the in-transaction upserts, the reads.

A row per (tenant, grain, bucket, workflow id) holds its counters as one JSON object;
adding a delta is one upsert per grain whose conflict clause adds the counters in
SQL, so the engine's commit buffers two statements and reads nothing.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from typing import Any

from shared.adapters._sqlite_schema import Write
from shared.ports.analytics import GRAINS, Grain, RollupDelta, RollupQuery, RollupRow, bucket_start

__all__ = ["ensure_rollup_schema", "rollup_writes", "select_rollups"]

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

_UPSERT = """
INSERT INTO rollups (tenant, grain, bucket, workflow_id, doc) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (tenant, grain, bucket, workflow_id) DO UPDATE SET doc = (
    SELECT json_group_object(key, total) FROM (
        SELECT key, SUM(value) AS total FROM (
            SELECT key, value FROM json_each(rollups.doc)
            UNION ALL SELECT key, value FROM json_each(excluded.doc)
        ) GROUP BY key
    )
)
"""


def ensure_rollup_schema(conn: sqlite3.Connection) -> None:
    """Create the rollups table if missing (a table added after schema version 1)."""
    for statement in _SCHEMA.split(";"):
        if statement.strip():
            conn.execute(statement)


def rollup_writes(delta: RollupDelta) -> list[Write]:
    """The upserts adding ``delta`` to its hour and day rows."""
    doc = json.dumps(delta.counters, separators=(",", ":"))
    return [
        (
            _UPSERT,
            (
                delta.tenant,
                grain,
                bucket_start(delta.at, grain).timestamp(),
                delta.workflow_id,
                doc,
            ),
        )
        for grain in GRAINS
    ]


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
