"""Retention on the SQLite store: delete one finished execution and all of its rows.

One execution per write transaction (the store's writer lock held, as a group commit
would hold it): its step runs, their join marks, its signals, its events, its queue
row and itself, and its bytes taken off ``tenant_storage`` in the same transaction. The
bytes are measured as ``apply_writes`` counted them (the UTF-8 length of each stored
document), so the counter drops by exactly what it had added for the execution.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime

from shared.models import WorkflowExecution
from shared.ports.retention import PurgeCounts, is_expired

__all__ = ["delete_execution_rows", "stored_tenant_rows"]

_SIZE = "SELECT COUNT(*), COALESCE(SUM(length(CAST(doc AS BLOB))), 0) FROM {table} WHERE {where}"


def stored_tenant_rows(conn: sqlite3.Connection) -> list[str]:
    """Tenants with executions (index ``executions_by_tenant``) or counted bytes."""
    rows = conn.execute(
        "SELECT DISTINCT tenant FROM executions"
        " UNION SELECT tenant FROM tenant_storage WHERE bytes != 0"
    ).fetchall()
    return sorted(str(tenant) for (tenant,) in rows)


def delete_execution_rows(
    conn: sqlite3.Connection, tenant: str, execution_id: str, finished_before: datetime
) -> PurgeCounts:
    """Delete the execution and its rows inside the caller's write transaction, if it is
    the tenant's, terminal and finished before ``finished_before``; else nothing."""
    row = conn.execute("SELECT doc FROM executions WHERE id = ?", (execution_id,)).fetchone()
    if row is None:
        return PurgeCounts()
    execution = WorkflowExecution.model_validate_json(row[0])
    if not is_expired(execution, tenant, finished_before):
        return PurgeCounts()
    released = len(str(row[0]).encode())
    runs, run_bytes = conn.execute(
        _SIZE.format(table="step_runs", where="execution_id = ?"), (execution_id,)
    ).fetchone()
    events, event_bytes = conn.execute(
        _SIZE.format(table="events", where="execution_id = ?"), (execution_id,)
    ).fetchone()
    released += int(run_bytes) + int(event_bytes)
    joins = conn.execute(
        "DELETE FROM joins WHERE owner_run_id IN (SELECT id FROM step_runs WHERE execution_id = ?)",
        (execution_id,),
    ).rowcount
    signals = conn.execute("DELETE FROM signals WHERE execution_id = ?", (execution_id,)).rowcount
    conn.execute("DELETE FROM step_runs WHERE execution_id = ?", (execution_id,))
    conn.execute("DELETE FROM events WHERE execution_id = ?", (execution_id,))
    conn.execute("DELETE FROM flow_queue WHERE execution_id = ?", (execution_id,))
    conn.execute("DELETE FROM executions WHERE id = ?", (execution_id,))
    conn.execute("UPDATE tenant_storage SET bytes = bytes - ? WHERE tenant = ?", (released, tenant))
    return PurgeCounts(
        executions=1,
        runs=int(runs),
        events=int(events),
        signals=max(0, signals),
        joins=max(0, joins),
        bytes_released=released,
    )
