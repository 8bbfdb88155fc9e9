"""``apply_writes``: the storage counter equals the bytes held, with the sizes of replaced
documents read in one query per table, and the writes run in their order."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from shared.adapters._sqlite_schema import DELETE_JOIN, Write, write_for
from shared.adapters._sqlite_tx import (
    apply_writes,
    connect,
    ensure_storage_schema,
    stored_bytes,
)
from shared.models import ExecutionEvent, JoinMark, StepRun, StepRunStatus, WorkflowExecution

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def conn() -> Iterator[sqlite3.Connection]:
    connection = connect(":memory:", "NORMAL")
    ensure_storage_schema(connection)
    yield connection
    connection.close()


def _held(conn: sqlite3.Connection, tenant: str) -> int:
    """The bytes of the tenant's documents, as the counter counts them."""
    row = conn.execute(
        "SELECT (SELECT IFNULL(SUM(length(CAST(doc AS BLOB))), 0) FROM executions"
        "         WHERE tenant = :t)"
        " + (SELECT IFNULL(SUM(length(CAST(r.doc AS BLOB))), 0) FROM step_runs r"
        "    JOIN executions e ON e.id = r.execution_id WHERE e.tenant = :t)"
        " + (SELECT IFNULL(SUM(length(CAST(v.doc AS BLOB))), 0) FROM events v"
        "    JOIN executions e ON e.id = v.execution_id WHERE e.tenant = :t)",
        {"t": tenant},
    ).fetchone()
    return int(row[0])


def _execution(execution_id: str, tenant: str) -> WorkflowExecution:
    return WorkflowExecution(
        id=execution_id, workflow_id="w", workflow_version=1, tenant=tenant, started_at=NOW
    )


def _run(execution_id: str, n: int, output: object = None) -> StepRun:
    return StepRun(
        id=f"{execution_id}-r{n}",
        execution_id=execution_id,
        step_id=f"s{n}",
        step_type="transform",
        output=output,
        created_at=NOW,
    )


def _event(execution_id: str, seq: int) -> ExecutionEvent:
    return ExecutionEvent(
        execution_id=execution_id, workflow_id="w", seq=seq, type="step.succeeded", at=NOW
    )


def _apply(
    conn: sqlite3.Connection, writes: list[Write], known: dict[str, int] | None = None
) -> None:
    conn.execute("BEGIN IMMEDIATE")
    apply_writes(conn, writes, {} if known is None else known, {})
    conn.execute("COMMIT")


def test_counter_equals_bytes_held_across_new_replaced_and_twice_written_documents(
    conn: sqlite3.Connection,
) -> None:
    writes = [write_for(_execution("e1", "t1"))]
    writes += [write_for(_event("e1", seq)) for seq in range(1, 40)]
    writes += [write_for(_run("e1", n)) for n in range(1200)]  # over two size queries
    writes.append(write_for(_run("e1", 7, output="x" * 500)))  # a second write of one
    _apply(conn, writes)
    assert stored_bytes(conn, "t1") == _held(conn, "t1")

    # Replace runs with bigger and smaller documents (sizes unknown: read), another
    # tenant's execution in the same transaction, and one size the transaction knew.
    known_run = _run("e1", 3)
    known = {f"r:{known_run.id}": len(write_for(known_run)[1][-1].encode())}
    writes = [write_for(_run("e1", n, output="y" * (n % 7) * 40)) for n in range(0, 900, 2)]
    writes += [write_for(_run("e1", 3, output={"k": "é" * 30}))]
    writes += [
        write_for(_execution("e2", "t2")),
        write_for(_run("e2", 1)),
        write_for(_event("e2", 1)),
    ]
    writes += [write_for(_run("e1", 7, output=None))]
    _apply(conn, writes, known)
    assert stored_bytes(conn, "t1") == _held(conn, "t1")
    assert stored_bytes(conn, "t2") == _held(conn, "t2") > 0


def test_writes_run_in_their_order(conn: sqlite3.Connection) -> None:
    mark = JoinMark(owner_run_id="o", index=0, status=StepRunStatus.SUCCEEDED)
    other = JoinMark(owner_run_id="o", index=1, status=StepRunStatus.SUCCEEDED)
    writes = [write_for(_execution("e1", "t1"))]
    writes += [write_for(_run("e1", n)) for n in (5, 1, 9, 2)]
    writes += [write_for(mark), (DELETE_JOIN, ("o", 0)), (DELETE_JOIN, ("o", 1))]
    writes += [write_for(other)]
    _apply(conn, writes)
    order = [row[0] for row in conn.execute("SELECT id FROM step_runs ORDER BY created_seq")]
    assert order == ["e1-r5", "e1-r1", "e1-r9", "e1-r2"]
    assert [row[0] for row in conn.execute("SELECT idx FROM joins")] == [1]


def test_a_refused_write_leaves_the_counter_as_it_was(conn: sqlite3.Connection) -> None:
    _apply(conn, [write_for(_execution("e1", "t1")), write_for(_event("e1", 1))])
    before = stored_bytes(conn, "t1")
    conn.execute("BEGIN IMMEDIATE")
    with pytest.raises(sqlite3.IntegrityError):  # event 1 exists: events are never replaced
        apply_writes(conn, [write_for(_run("e1", 1)), write_for(_event("e1", 1))], {}, {})
    conn.execute("ROLLBACK")
    assert stored_bytes(conn, "t1") == before == _held(conn, "t1")
