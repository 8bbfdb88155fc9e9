"""What only the SQLite store promises: several connections on one file, durability."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import pytest
from _builders import T0, at, definition, dumped, event, execution, ids, join, put, run, signal

from shared.adapters._sqlite_schema import _MIGRATIONS, SCHEMA_VERSION
from shared.adapters.sqlite_store import _DUE_RUNS, SqliteStore
from shared.models import ExecutionStatus, QueueState, StepRunStatus
from shared.ports import ExecutionTx, WorkflowQuery
from shared.ports.analytics import RollupDelta, RollupQuery

RUN_IDS = [f"r{i}" for i in range(10)]


async def _claim(store: SqliteStore, run_id: str, owner: str) -> bool:
    """Claim ``run_id`` for ``owner`` if it is still scheduled."""

    async def body(tx: ExecutionTx) -> bool:
        current = await tx.get_run(run_id)
        time.sleep(0.002)  # hold the write lock so the other connection has to wait
        if current is None or current.status != StepRunStatus.SCHEDULED:
            return False
        current.status = StepRunStatus.RUNNING
        current.lease_owner = owner
        current.lease_expires_at = T0 + timedelta(minutes=5)
        tx.put_run(current)
        return True

    return await store.run_transaction(body)


def test_two_connections_on_one_file_claim_each_run_once(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"

    async def seed() -> None:
        store = SqliteStore(path)
        await put(store, *(run(run_id) for run_id in RUN_IDS))
        await store.close()

    asyncio.run(seed())
    barrier = threading.Barrier(2)
    won: dict[str, list[str]] = {}
    errors: list[BaseException] = []

    async def claim_all(owner: str) -> list[str]:
        store = SqliteStore(path)
        try:
            barrier.wait(timeout=10)
            return [run_id for run_id in RUN_IDS if await _claim(store, run_id, owner)]
        finally:
            await store.close()

    def worker(owner: str) -> None:
        try:
            won[owner] = asyncio.run(claim_all(owner))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(owner,)) for owner in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert sorted(won["a"] + won["b"]) == sorted(RUN_IDS)
    assert not set(won["a"]) & set(won["b"])

    async def owners() -> dict[str, str | None]:
        store = SqliteStore(path)
        try:
            runs = await store.list_runs("ex-1")
            return {r.id: r.lease_owner for r in runs}
        finally:
            await store.close()

    expected = {run_id: owner for owner, run_ids in won.items() for run_id in run_ids}
    assert asyncio.run(owners()) == expected


async def test_state_survives_close_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "durable.db"
    first = SqliteStore(path, synchronous="FULL")
    await first.create_workflow(definition("wf-1", tags=["x"]), "t1")
    await first.save_version(definition("wf-1", version=2, tags=["x"]), 1, "t1")
    await first.touch_executed("wf-1", at(77))
    await first.create_workflow(definition("wf-gone", created=5), "t1")
    await first.delete_workflow("wf-gone", "t1")
    ex = execution("ex-1")
    await put(first, ex, run("r2"), run("r1"), join("r1", 0, "out"), signal("s1"))
    await put(first, event("ex-1", 1), event("ex-1", 2))
    await first.close()

    second = SqliteStore(path)
    try:
        head = await second.get_workflow("wf-1", "t1")
        assert head is not None and (head.version, head.last_executed) == (2, at(77))
        assert [v.version for v in await second.list_versions("wf-1", "t1")] == [1, 2]
        assert await second.get_workflow("wf-gone", "t1") is None
        assert (await second.get_version("wf-gone", 1, "t1")) is not None
        listed = await second.list_workflows(WorkflowQuery(tenant="t1", tags=("x",)))
        assert ids(listed.items) == ["wf-1"]

        assert dumped(await second.get_execution("ex-1")) == dumped(ex)
        assert [e.seq for e in await second.list_events("ex-1")] == [1, 2]
        await put(second, run("r0"))
        assert ids(await second.list_runs("ex-1")) == ["r2", "r1", "r0"]

        async def parked(tx: ExecutionTx) -> tuple[object, object]:
            marks = await tx.list_joins("r1")
            found = await tx.find_signal("ex-1", "approval")
            return [m.output for m in marks], found.id if found else None

        assert await second.run_transaction(parked) == (["out"], "s1")
    finally:
        await second.close()


async def test_file_is_in_wal_mode_with_a_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "pragmas.db"
    store = SqliteStore(path)
    await store.close()

    raw = sqlite3.connect(path)
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3
        tables = {row[0] for row in raw.execute("SELECT name FROM sqlite_master")}
        expected = {"workflows", "workflow_versions", "executions", "step_runs", "joins"}
        assert expected | {"signals", "events", "flow_slots", "flow_queue"} <= tables
    finally:
        raw.close()


async def test_a_version_2_file_gets_the_partial_sweep_indexes(tmp_path: Path) -> None:
    """Schema 3: the recovery sweep's indexes hold only open runs; ``due_runs`` reads
    them (its statuses are literals: a bound parameter cannot use a partial index)."""
    path = tmp_path / "v2.db"
    raw = sqlite3.connect(path, isolation_level=None)
    for version in (1, 2):
        for statement in _MIGRATIONS[version].split(";"):
            if statement.strip():
                raw.execute(statement)
    raw.execute("PRAGMA user_version = 2")
    raw.close()

    store = SqliteStore(path)
    try:
        due_at = 1000 - 60
        await put(
            store,
            run("open", status=StepRunStatus.SCHEDULED, due=due_at),
            run("leased", status=StepRunStatus.RUNNING, due=due_at + 1, lease=999, owner="w"),
            run("done", status=StepRunStatus.SUCCEEDED, due=0),
        )
        assert ids(await store.due_runs(at(1000), grace_seconds=0, limit=10)) == [
            "open",
            "leased",
        ]
    finally:
        await store.close()
    raw = sqlite3.connect(path)
    try:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == 3
        indexes = {
            name: sql
            for name, sql in raw.execute(
                "SELECT name, sql FROM sqlite_master"
                " WHERE type = 'index' AND tbl_name = 'step_runs'"
            )
        }
        assert "step_runs_due" not in indexes and "step_runs_lease" not in indexes
        assert "WHERE status = 'running'" in indexes["step_runs_leased"]
        plan = " ".join(
            str(row[-1]) for row in raw.execute("EXPLAIN QUERY PLAN " + _DUE_RUNS, (1, 2, 3))
        )
        assert "INDEX step_runs_open" in plan and "INDEX step_runs_leased" in plan, plan
        (indexed,) = raw.execute(
            "SELECT count(*) FROM step_runs INDEXED BY step_runs_leased WHERE status = 'running'"
        ).fetchone()
        assert indexed == 1  # the finished and the scheduled runs are not in it
    finally:
        raw.close()


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    raw = sqlite3.connect(path)
    raw.execute("PRAGMA user_version = 99")
    raw.close()

    with pytest.raises(RuntimeError, match="newer"):
        SqliteStore(path)


def test_unknown_synchronous_mode_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="synchronous"):
        SqliteStore(tmp_path / "x.db", synchronous="NORMAL; DROP TABLE workflows")


async def test_in_memory_database_works() -> None:
    store = SqliteStore(":memory:")
    try:
        await store.create_workflow(definition("wf-1"), "default")
        await put(store, execution("ex-1"), event("ex-1", 1))
        assert ids((await store.list_workflows(WorkflowQuery())).items) == ["wf-1"]
        assert [e.seq for e in await store.list_events("ex-1")] == [1]
    finally:
        await store.close()


async def test_another_connection_sees_commits_while_the_store_is_open(tmp_path: Path) -> None:
    path = tmp_path / "cli.db"
    server = SqliteStore(path)
    cli = SqliteStore(path)
    try:
        await put(server, execution("ex-1"))
        got = await cli.get_execution("ex-1")
        assert got is not None and got.id == "ex-1"
    finally:
        await cli.close()
        await server.close()


async def test_the_queue_row_follows_the_status_without_needless_deletes(tmp_path: Path) -> None:
    # flow_queue holds a row exactly while an execution is queued. A put of an execution
    # read in the transaction as not queued (every step's commit) writes no DELETE; one
    # read as queued, or written blind, still does.
    store = SqliteStore(tmp_path / "queue.db")
    statements: list[str] = []
    store._conn.set_trace_callback(statements.append)
    queued = execution("ex-q", status=ExecutionStatus.QUEUED)
    queued.queue = QueueState(wait_key="slot-a", key="a")

    def rows() -> list[str]:
        return [r for (r,) in store._conn.execute("SELECT execution_id FROM flow_queue")]

    async def set_status(status: ExecutionStatus, *, read: bool) -> None:
        async def body(tx: ExecutionTx) -> None:
            current = await tx.get_execution("ex-q") if read else None
            changed = (current or queued).model_copy(deep=True)
            changed.status = status
            tx.put_execution(changed)

        statements.clear()
        await store.run_transaction(body)

    def deletes() -> int:
        return sum("DELETE FROM flow_queue" in s for s in statements)

    try:
        await put(store, queued)
        assert rows() == ["ex-q"]
        await set_status(ExecutionStatus.RUNNING, read=True)  # read as queued: deleted
        assert rows() == [] and deletes() == 1
        await set_status(ExecutionStatus.SUCCEEDED, read=True)  # read as running
        assert rows() == [] and deletes() == 0
        await set_status(ExecutionStatus.QUEUED, read=False)
        assert rows() == ["ex-q"]
        await set_status(ExecutionStatus.RUNNING, read=False)  # written blind: deleted
        assert rows() == [] and deletes() == 1

        async def new_one(tx: ExecutionTx) -> None:
            assert await tx.get_execution("ex-2") is None
            tx.put_execution(execution("ex-2"))

        statements.clear()
        await store.run_transaction(new_one)  # read as absent: no row to delete
        assert deletes() == 0
    finally:
        await store.close()


def _rollup_delta(workflow_id: str, **counters: float) -> RollupDelta:
    return RollupDelta("t1", workflow_id, "ex", T0, dict(counters))


async def _hour_row(store: SqliteStore, workflow_id: str) -> dict[str, float]:
    rows = await store.read_rollups(
        RollupQuery("t1", "hour", T0 - timedelta(hours=2), T0 + timedelta(hours=2), workflow_id)
    )
    assert len(rows) == 1
    return dict(rows[0].counters)


async def test_rollup_rows_kept_by_the_writer_follow_other_connections(tmp_path: Path) -> None:
    """The writer adds a group's sums to the rows it wrote before without reading them
    again; a row another connection changed meanwhile is read anew."""
    path = tmp_path / "rollups.db"
    store = SqliteStore(path)
    try:
        await store.add_rollups([_rollup_delta("wf", started=1)])
        await store.add_rollups([_rollup_delta("wf", started=1)])
        assert store._rollup_rows.hits == 2  # hour and day rows, not read again
        assert (await _hour_row(store, "wf"))["started"] == 2
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("UPDATE rollups SET doc = '{\"started\":100}'")
        other.close()
        await store.add_rollups([_rollup_delta("wf", started=1)])
        assert (await _hour_row(store, "wf"))["started"] == 101
    finally:
        await store.close()


class _Unencodable:
    """Adds up (a counter's sum) but JSON refuses it: the row's write fails."""

    def __radd__(self, other: object) -> _Unencodable:
        return self


async def test_a_rolled_back_group_leaves_no_kept_rollup_row(tmp_path: Path) -> None:
    """A flush that fails after writing one row rolls it back: the row kept in memory
    is the one on disk, not the one the failed transaction wrote."""
    store = SqliteStore(tmp_path / "rollups.db")
    try:
        await store.add_rollups([_rollup_delta("wf-a", started=1)])
        broken = _rollup_delta("wf-b", started=1)
        broken.counters["bad"] = _Unencodable()  # type: ignore[assignment]
        with pytest.raises(TypeError):
            await store.add_rollups([_rollup_delta("wf-a", started=5), broken])
        await store.add_rollups([_rollup_delta("wf-a", started=1)])
        assert (await _hour_row(store, "wf-a"))["started"] == 2
    finally:
        await store.close()


async def test_a_group_whose_rollups_fail_leaves_no_kept_rollup_row(tmp_path: Path) -> None:
    """The same in a group commit: its flush fails after one row, the group fails and
    the next group adds to the row on disk."""
    store = SqliteStore(tmp_path / "rollups.db")

    def adding(*deltas: RollupDelta) -> Callable[[ExecutionTx], Awaitable[None]]:
        async def body(tx: ExecutionTx) -> None:
            for item in deltas:
                tx.add_rollup(item)

        return body

    try:
        await store.run_transaction(adding(_rollup_delta("wf-a", started=1)))
        broken = _rollup_delta("wf-b", started=1)
        broken.counters["bad"] = _Unencodable()  # type: ignore[assignment]
        with pytest.raises(Exception, match="not JSON serializable"):
            await store.run_transaction(adding(_rollup_delta("wf-a", started=5), broken))
        await store.run_transaction(adding(_rollup_delta("wf-a", started=1)))
        assert (await _hour_row(store, "wf-a"))["started"] == 2
    finally:
        await store.close()
