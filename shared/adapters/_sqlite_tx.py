"""The SQLite connection setup, its transaction object and the execution row readers."""

from __future__ import annotations

import sqlite3
from typing import Any

from shared.adapters._sqlite_schema import (
    _INSERT_EVENT,
    _UPSERT_EXECUTION,
    _UPSERT_RUN,
    DELETE_JOIN,
    DELETE_QUEUED,
    Write,
    ensure_schema,
    queue_write,
    slot_write,
    write_for,
)
from shared.errors import Conflict
from shared.models import (
    ConcurrencySlot,
    ExecutionEvent,
    ExecutionStatus,
    JoinMark,
    Signal,
    StepRun,
    StepRunStatus,
    WorkflowExecution,
)
from shared.ports.analytics import RollupDelta

__all__ = [
    "SqliteTx",
    "apply_writes",
    "begin",
    "connect",
    "ensure_storage_schema",
    "get_execution_row",
    "get_run_row",
    "list_run_rows",
    "rollback",
    "stored_bytes",
]

_STORAGE_SCHEMA = """
CREATE TABLE IF NOT EXISTS tenant_storage (
    tenant TEXT PRIMARY KEY,
    bytes INTEGER NOT NULL
)
"""
_ADD_STORAGE = (
    "INSERT INTO tenant_storage (tenant, bytes) VALUES (?, ?)"
    " ON CONFLICT (tenant) DO UPDATE SET bytes = bytes + excluded.bytes"
)
_DOC_BYTES = {
    _UPSERT_EXECUTION: "SELECT length(CAST(doc AS BLOB)) FROM executions WHERE id = ?",
    _UPSERT_RUN: "SELECT length(CAST(doc AS BLOB)) FROM step_runs WHERE id = ?",
}
"""Statements whose document replaces an older one: its size is read before the write."""


def ensure_storage_schema(conn: sqlite3.Connection) -> None:
    """Create the per-tenant storage counter (``maxStorageBytes``) if missing."""
    conn.execute(_STORAGE_SCHEMA)


def stored_bytes(conn: sqlite3.Connection, tenant: str) -> int:
    """The bytes the tenant's executions hold (the counter ``apply_writes`` keeps)."""
    row = conn.execute("SELECT bytes FROM tenant_storage WHERE tenant = ?", (tenant,)).fetchone()
    return max(0, int(row[0])) if row else 0


def apply_writes(
    conn: sqlite3.Connection,
    writes: list[Write],
    known: dict[str, int] | None = None,
    tenants: dict[str, str] | None = None,
) -> None:
    """Run a transaction's buffered writes, and count what they store per tenant.

    The counter (table ``tenant_storage``) changes in the same SQLite transaction as the
    documents: an execution or step run document adds its size minus the size of the
    one it replaces, an event its size (events are never changed). Joins, signals and
    slots are not counted (small and bounded per step). ``known`` holds the sizes of
    the documents the transaction read (``SqliteTx``: no second read of them) and
    ``tenants`` the tenant of each execution it read; what is missing is read here, in
    one query per table (a chain's new runs: one read, not one per run).
    """
    sizes = {} if known is None else known
    owners = {} if tenants is None else tenants
    _read_sizes(conn, writes, sizes)
    by_execution: dict[str, int] = {}
    for sql, params in writes:
        if sql in _DOC_BYTES:
            key = _size_key(sql, str(params[0]))
            new = len(str(params[-1]).encode())
            old = sizes[key]
            sizes[key] = new  # a second write of the same document replaces this one
            execution_id = str(params[0] if sql == _UPSERT_EXECUTION else params[1])
            if sql == _UPSERT_EXECUTION:
                owners[execution_id] = str(params[1])
            by_execution[execution_id] = by_execution.get(execution_id, 0) + new - old
        elif sql == _INSERT_EVENT:
            execution_id = str(params[0])
            by_execution[execution_id] = by_execution.get(execution_id, 0) + len(
                str(params[-1]).encode()
            )
    _execute_in_order(conn, writes)
    per_tenant: dict[str, int] = {}
    for execution_id, delta in by_execution.items():
        tenant = owners.get(execution_id)
        if tenant is None:
            row = conn.execute(
                "SELECT tenant FROM executions WHERE id = ?", (execution_id,)
            ).fetchone()
            tenant = str(row[0]) if row else ""
        per_tenant[tenant] = per_tenant.get(tenant, 0) + delta
    for tenant, delta in per_tenant.items():
        if delta:
            conn.execute(_ADD_STORAGE, (tenant, delta))


_SIZES_OF = {
    _UPSERT_EXECUTION: "SELECT id, length(CAST(doc AS BLOB)) FROM executions WHERE id IN ",
    _UPSERT_RUN: "SELECT id, length(CAST(doc AS BLOB)) FROM step_runs WHERE id IN ",
}
_SIZES_CHUNK = 500
"""Ids per size query (SQLite allows 32,766 parameters; smaller queries plan as fast)."""


def _read_sizes(conn: sqlite3.Connection, writes: list[Write], sizes: dict[str, int]) -> None:
    """Put in ``sizes`` the stored size (0: none) of every document ``writes`` replaces
    that it does not hold yet. Read before any of the writes runs: only the writes of a
    document itself change it, and after its first write ``sizes`` holds its new size."""
    missing: dict[str, list[str]] = {}
    for sql, params in writes:
        if sql in _DOC_BYTES:
            ident = str(params[0])
            key = _size_key(sql, ident)
            if key not in sizes:
                sizes[key] = 0  # unless stored: read below
                missing.setdefault(sql, []).append(ident)
    for sql, idents in missing.items():
        for start in range(0, len(idents), _SIZES_CHUNK):
            chunk = idents[start : start + _SIZES_CHUNK]
            query = _SIZES_OF[sql] + f"({', '.join('?' * len(chunk))})"
            for ident, size in conn.execute(query, chunk):
                sizes[_size_key(sql, str(ident))] = int(size or 0)


def _execute_in_order(conn: sqlite3.Connection, writes: list[Write]) -> None:
    """Run ``writes`` in their order, a stretch of one statement in one ``executemany``
    (the step runs a commit finalizes, the events of a chain)."""
    index = 0
    while index < len(writes):
        sql = writes[index][0]
        end = index + 1
        while end < len(writes) and writes[end][0] == sql:
            end += 1
        if end - index == 1:
            conn.execute(sql, writes[index][1])
        else:
            conn.executemany(sql, [params for _, params in writes[index:end]])
        index = end


def _size_key(sql: str, ident: str) -> str:
    return ("e:" if sql == _UPSERT_EXECUTION else "r:") + ident


class SqliteTx:
    """An ExecutionTx inside ``BEGIN IMMEDIATE``: reads now, writes buffered until the end."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self.writes: list[Write] = []
        self.events: list[ExecutionEvent] = []
        self.sizes: dict[str, int] = {}
        """Bytes of the execution ("e:<id>") and run ("r:<id>") documents read: the
        storage counter's old sizes (``apply_writes``), without reading them again."""
        self.tenants: dict[str, str] = {}
        """Tenant of each execution read."""
        self.queue_rows: dict[str, bool] = {}
        """Whether an execution read or written here may have a ``flow_queue`` row (only
        a queued one has): a put of one that has none and is not queued writes no DELETE."""
        self.rollups: list[RollupDelta] = []
        """Analytics deltas: the store adds them up per row for the whole group commit
        (``sqlite_rollups.RollupSums``)."""

    async def get_execution(self, execution_id: str) -> WorkflowExecution | None:
        row = self._conn.execute(
            "SELECT doc FROM executions WHERE id = ?", (execution_id,)
        ).fetchone()
        if row is None:
            self.queue_rows.setdefault(execution_id, False)
            return None
        self.sizes["e:" + execution_id] = len(row[0].encode())
        execution = WorkflowExecution.model_validate_json(row[0])
        self.tenants[execution.id] = execution.tenant
        self.queue_rows.setdefault(execution.id, execution.status == ExecutionStatus.QUEUED)
        return execution

    async def get_run(self, run_id: str) -> StepRun | None:
        row = self._conn.execute("SELECT doc FROM step_runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            return None
        self.sizes["r:" + run_id] = len(row[0].encode())
        return StepRun.model_validate_json(row[0])

    async def list_runs(
        self, execution_id: str, statuses: frozenset[StepRunStatus] | None = None
    ) -> list[StepRun]:
        runs = []
        for doc in run_docs(self._conn, execution_id, statuses):
            run = StepRun.model_validate_json(doc)
            self.sizes["r:" + run.id] = len(doc.encode())
            runs.append(run)
        return runs

    async def list_joins(self, owner_run_id: str) -> list[JoinMark]:
        rows = self._conn.execute(
            "SELECT doc FROM joins WHERE owner_run_id = ? ORDER BY idx", (owner_run_id,)
        )
        return [JoinMark.model_validate_json(doc) for (doc,) in rows]

    async def find_signal(self, execution_id: str, name: str) -> Signal | None:
        row = self._conn.execute(
            "SELECT doc FROM signals WHERE execution_id = ? AND name = ? AND consumed = 0"
            " ORDER BY created_seq LIMIT 1",
            (execution_id, name),
        ).fetchone()
        return None if row is None else Signal.model_validate_json(row[0])

    def put_execution(self, execution: WorkflowExecution) -> None:
        self.writes.append(write_for(execution))
        write = queue_write(execution)
        queued = write[0] != DELETE_QUEUED
        if queued or self.queue_rows.get(execution.id, True):
            self.writes.append(write)
        self.queue_rows[execution.id] = queued

    def put_run(self, run: StepRun) -> None:
        self.writes.append(write_for(run))

    def put_join(self, mark: JoinMark) -> None:
        self.writes.append(write_for(mark))

    def delete_join(self, owner_run_id: str, index: int) -> None:
        self.writes.append((DELETE_JOIN, (owner_run_id, index)))

    def put_signal(self, signal: Signal) -> None:
        self.writes.append(write_for(signal))

    def add_event(self, event: ExecutionEvent) -> None:
        self.writes.append(write_for(event))
        self.events.append(event)  # events are never changed after they are added

    def add_rollup(self, delta: RollupDelta) -> None:
        self.rollups.append(delta)  # summed over the group, added before its COMMIT

    async def get_slots(self, slot_ids: list[str]) -> dict[str, ConcurrencySlot]:
        found: dict[str, ConcurrencySlot] = {}
        for start in range(0, len(slot_ids), 500):
            chunk = slot_ids[start : start + 500]
            rows = self._conn.execute(
                f"SELECT doc FROM flow_slots WHERE id IN ({', '.join('?' * len(chunk))})",
                chunk,
            )
            for (doc,) in rows:
                slot = ConcurrencySlot.model_validate_json(doc)
                found[slot.id] = slot
        return found

    def put_slot(self, slot: ConcurrencySlot) -> None:
        self.writes.append(slot_write(slot))

    async def queued_executions(
        self, tenant: str, wait_key: str, limit: int
    ) -> list[WorkflowExecution]:
        rows = self._conn.execute(
            "SELECT e.doc FROM flow_queue q JOIN executions e ON e.id = q.execution_id"
            " WHERE q.tenant = ? AND q.wait_key = ?"
            " ORDER BY q.priority DESC, q.queued_at, q.execution_id LIMIT ?",
            (tenant, wait_key, limit),
        )
        return [WorkflowExecution.model_validate_json(doc) for (doc,) in rows]


def connect(path: str, synchronous: str) -> sqlite3.Connection:
    """Open ``path`` in autocommit mode with WAL, the busy timeout and the schema."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=5.0)
    try:
        conn.execute("PRAGMA busy_timeout = 5000")
        if path != ":memory:":
            conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        ensure_schema(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def begin(conn: sqlite3.Connection) -> None:
    """Start a write transaction; Conflict when the database stays locked too long."""
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        raise Conflict(f"database busy: {exc}") from exc


def rollback(conn: sqlite3.Connection) -> None:
    """Roll back the open transaction, if SQLite has not already done so."""
    if conn.in_transaction:
        conn.execute("ROLLBACK")


def get_execution_row(conn: sqlite3.Connection, execution_id: str) -> WorkflowExecution | None:
    """The committed execution ``execution_id``, if any."""
    row = conn.execute("SELECT doc FROM executions WHERE id = ?", (execution_id,)).fetchone()
    return None if row is None else WorkflowExecution.model_validate_json(row[0])


def get_run_row(conn: sqlite3.Connection, run_id: str) -> StepRun | None:
    """The committed step run ``run_id``, if any."""
    row = conn.execute("SELECT doc FROM step_runs WHERE id = ?", (run_id,)).fetchone()
    return None if row is None else StepRun.model_validate_json(row[0])


def run_docs(
    conn: sqlite3.Connection, execution_id: str, statuses: frozenset[StepRunStatus] | None
) -> list[str]:
    """The documents of an execution's step runs (optionally with one of ``statuses``),
    oldest first."""
    sql = "SELECT doc FROM step_runs WHERE execution_id = ?"
    params: list[Any] = [execution_id]
    if statuses is not None:
        sql += f" AND status IN ({', '.join('?' * len(statuses))})"
        params += [str(status) for status in sorted(statuses)]
    return [doc for (doc,) in conn.execute(sql + " ORDER BY created_seq", params)]


def list_run_rows(
    conn: sqlite3.Connection, execution_id: str, statuses: frozenset[StepRunStatus] | None
) -> list[StepRun]:
    """Step runs of an execution (optionally with one of ``statuses``), oldest first."""
    return [StepRun.model_validate_json(doc) for doc in run_docs(conn, execution_id, statuses)]
