"""SQLite schema of the embedded store, its migrations and the row writers."""

from __future__ import annotations

import sqlite3

from shared.adapters._store_common import epoch, epoch_or_none
from shared.models import (
    ConcurrencySlot,
    ExecutionEvent,
    ExecutionStatus,
    JoinMark,
    Signal,
    StepRun,
    WorkflowExecution,
)

__all__ = [
    "DELETE_JOIN",
    "DELETE_QUEUED",
    "SCHEMA_VERSION",
    "Write",
    "ensure_schema",
    "queue_write",
    "slot_write",
    "write_for",
]

SCHEMA_VERSION = 3

Write = tuple[str, tuple[object, ...]]
"""One buffered statement and its parameters."""

_SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS workflows (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    is_active INTEGER NOT NULL,
    tags TEXT NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0,
    deleted_at REAL,
    latest_version INTEGER NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    last_executed REAL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS workflows_listing
    ON workflows (tenant, deleted, created_at DESC, id);
CREATE TABLE IF NOT EXISTS workflow_versions (
    workflow_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (workflow_id, version)
);
CREATE TABLE IF NOT EXISTS executions (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    workflow_id TEXT NOT NULL,
    status TEXT NOT NULL,
    started_at REAL NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS executions_by_tenant
    ON executions (tenant, started_at DESC, id);
CREATE INDEX IF NOT EXISTS executions_by_workflow
    ON executions (tenant, workflow_id, started_at DESC, id);
CREATE INDEX IF NOT EXISTS executions_by_status
    ON executions (tenant, status, started_at DESC, id);
CREATE TABLE IF NOT EXISTS step_runs (
    id TEXT PRIMARY KEY,
    execution_id TEXT NOT NULL,
    status TEXT NOT NULL,
    due_at REAL,
    lease_expires_at REAL,
    created_seq INTEGER NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS step_runs_due ON step_runs (status, due_at);
CREATE INDEX IF NOT EXISTS step_runs_lease ON step_runs (status, lease_expires_at);
CREATE INDEX IF NOT EXISTS step_runs_by_execution ON step_runs (execution_id, created_seq);
CREATE INDEX IF NOT EXISTS step_runs_seq ON step_runs (created_seq);
CREATE TABLE IF NOT EXISTS joins (
    owner_run_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (owner_run_id, idx)
);
CREATE TABLE IF NOT EXISTS signals (
    id TEXT PRIMARY KEY,
    execution_id TEXT NOT NULL,
    name TEXT NOT NULL,
    consumed INTEGER NOT NULL,
    created_seq INTEGER NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS signals_pending
    ON signals (execution_id, name, consumed, created_seq);
CREATE INDEX IF NOT EXISTS signals_seq ON signals (created_seq);
CREATE TABLE IF NOT EXISTS events (
    execution_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    workflow_id TEXT NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (execution_id, seq)
);
CREATE INDEX IF NOT EXISTS events_by_workflow ON events (workflow_id);
"""

_SCHEMA_V2 = """
CREATE TABLE IF NOT EXISTS flow_slots (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    slot_key TEXT NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS flow_slots_by_key ON flow_slots (tenant, slot_key);
CREATE TABLE IF NOT EXISTS flow_queue (
    execution_id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    wait_key TEXT NOT NULL,
    priority INTEGER NOT NULL,
    queued_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS flow_queue_order
    ON flow_queue (tenant, wait_key, priority DESC, queued_at, execution_id);
CREATE INDEX IF NOT EXISTS flow_queue_age ON flow_queue (queued_at)
"""
"""Flow control: concurrency slot documents and the queue of queued executions (an
execution is in ``flow_queue`` exactly while its status is ``queued``)."""

_SCHEMA_V3 = """
DROP INDEX IF EXISTS step_runs_due;
DROP INDEX IF EXISTS step_runs_lease;
CREATE INDEX IF NOT EXISTS step_runs_open
    ON step_runs (due_at, created_seq) WHERE status IN ('scheduled', 'waiting');
CREATE INDEX IF NOT EXISTS step_runs_leased
    ON step_runs (lease_expires_at) WHERE status = 'running'
"""
"""The recovery sweep's indexes hold only the runs it looks for (partial indexes): a
finished run, most rows, is in neither, so recording one maintains two b-trees less
(``due_runs`` names the statuses as literals, which a partial index needs)."""

_MIGRATIONS = {1: _SCHEMA_V1, 2: _SCHEMA_V2, 3: _SCHEMA_V3}
"""Script that brings the schema from version ``n - 1`` to ``n``."""


def ensure_schema(conn: sqlite3.Connection) -> None:
    """Create or upgrade the schema to SCHEMA_VERSION, in one write transaction."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        current = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if current > SCHEMA_VERSION:
            raise RuntimeError(
                f"database schema {current} is newer than this code ({SCHEMA_VERSION})"
            )
        for version in range(current + 1, SCHEMA_VERSION + 1):
            for statement in _MIGRATIONS[version].split(";"):
                if statement.strip():
                    conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


_UPSERT_EXECUTION = """
INSERT INTO executions (id, tenant, workflow_id, status, started_at, doc)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET tenant = excluded.tenant, workflow_id = excluded.workflow_id,
    status = excluded.status, started_at = excluded.started_at, doc = excluded.doc
"""

_UPSERT_RUN = """
INSERT INTO step_runs (id, execution_id, status, due_at, lease_expires_at, created_seq, doc)
VALUES (?, ?, ?, ?, ?, (SELECT IFNULL(MAX(created_seq), 0) + 1 FROM step_runs), ?)
ON CONFLICT (id) DO UPDATE SET execution_id = excluded.execution_id,
    status = excluded.status, due_at = excluded.due_at,
    lease_expires_at = excluded.lease_expires_at, doc = excluded.doc
"""

_UPSERT_JOIN = """
INSERT INTO joins (owner_run_id, idx, doc) VALUES (?, ?, ?)
ON CONFLICT (owner_run_id, idx) DO UPDATE SET doc = excluded.doc
"""

_UPSERT_SIGNAL = """
INSERT INTO signals (id, execution_id, name, consumed, created_seq, doc)
VALUES (?, ?, ?, ?, (SELECT IFNULL(MAX(created_seq), 0) + 1 FROM signals), ?)
ON CONFLICT (id) DO UPDATE SET execution_id = excluded.execution_id,
    name = excluded.name, consumed = excluded.consumed, doc = excluded.doc
"""

_INSERT_EVENT = "INSERT INTO events (execution_id, seq, workflow_id, doc) VALUES (?, ?, ?, ?)"

DELETE_JOIN = "DELETE FROM joins WHERE owner_run_id = ? AND idx = ?"

_UPSERT_SLOT = """
INSERT INTO flow_slots (id, tenant, slot_key, doc) VALUES (?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET doc = excluded.doc
"""

_UPSERT_QUEUED = """
INSERT INTO flow_queue (execution_id, tenant, wait_key, priority, queued_at)
VALUES (?, ?, ?, ?, ?)
ON CONFLICT (execution_id) DO UPDATE SET tenant = excluded.tenant,
    wait_key = excluded.wait_key, priority = excluded.priority, queued_at = excluded.queued_at
"""

DELETE_QUEUED = "DELETE FROM flow_queue WHERE execution_id = ?"


def slot_write(slot: ConcurrencySlot) -> Write:
    """The statement that stores a concurrency slot document."""
    return _UPSERT_SLOT, (slot.id, slot.tenant, slot.slot_key, slot.model_dump_json(by_alias=True))


def queue_write(execution: WorkflowExecution) -> Write:
    """Keep ``flow_queue`` in step with the execution: a row exactly while it is queued."""
    state = execution.queue
    if execution.status != ExecutionStatus.QUEUED or state is None or state.wait_key is None:
        return DELETE_QUEUED, (execution.id,)
    queued_at = state.queued_at or execution.started_at
    return _UPSERT_QUEUED, (
        execution.id,
        execution.tenant,
        state.wait_key,
        state.priority,
        epoch(queued_at),
    )


def write_for(record: WorkflowExecution | StepRun | JoinMark | Signal | ExecutionEvent) -> Write:
    """The statement that stores ``record``, its indexed columns taken from the document."""
    doc = record.model_dump_json(by_alias=True)
    if isinstance(record, WorkflowExecution):
        return _UPSERT_EXECUTION, (
            record.id,
            record.tenant,
            record.workflow_id,
            str(record.status),
            epoch(record.started_at),
            doc,
        )
    if isinstance(record, StepRun):
        return _UPSERT_RUN, (
            record.id,
            record.execution_id,
            str(record.status),
            epoch_or_none(record.due_at),
            epoch_or_none(record.lease_expires_at),
            doc,
        )
    if isinstance(record, JoinMark):
        return _UPSERT_JOIN, (record.owner_run_id, record.index, doc)
    if isinstance(record, Signal):
        consumed = int(record.consumed_by is not None)
        return _UPSERT_SIGNAL, (record.id, record.execution_id, record.name, consumed, doc)
    return _INSERT_EVENT, (record.execution_id, record.seq, record.workflow_id, doc)
