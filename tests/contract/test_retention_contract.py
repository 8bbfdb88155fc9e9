"""Retention contract (``RetentionStore``), on every store (the Firestore emulator too):
``delete_execution`` removes a finished execution with its step runs, join marks,
signals and events, and nothing of another execution; running, recent and other
tenants' executions are left alone; the tenant's storage counter drops by exactly the
bytes the execution held, and equals the bytes still held afterwards; a second or a
concurrent deletion deletes nothing more; a large execution goes in bounded chunks."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from _builders import Record, Store, at, event, execution, join, put, run, signal

from shared.models import ExecutionEvent, ExecutionStatus, JoinMark, StepRun, StepRunStatus
from shared.ports import ExecutionTx
from shared.ports.retention import PurgeCounts

pytestmark = pytest.mark.timeout(240)

HORIZON = at(10_000)
"""Executions finished before this are expired in these tests."""


async def build(
    store: Store,
    execution_id: str,
    *,
    tenant: str = "t1",
    finish: float | None = 100,
    runs: int = 2,
    events: int = 3,
    joins: int = 2,
) -> None:
    """An execution with ``runs`` step runs (the first a fan-out with ``joins`` marks),
    a signal and ``events`` events; finished (succeeded) at ``finish`` seconds after T0,
    or left running when ``finish`` is None. Written as the engine writes: a finishing
    transaction reads the documents it rewrites."""
    started = execution(execution_id, tenant=tenant)
    started.variables = {"blob": "x" * 300, "id": execution_id}
    made = [run(f"{execution_id}-r{i}", execution_id=execution_id) for i in range(runs)]
    marks = [join(made[0].id, i, {"i": i}) for i in range(joins)] if made else []
    rest = [*made, *marks, *[event(execution_id, seq) for seq in range(1, events + 1)]]
    await put(store, started, signal(f"{execution_id}-s", execution_id=execution_id))
    for begin in range(0, len(rest), 200):  # a Firestore commit holds 500 writes
        await put_more(store, execution_id, rest[begin : begin + 200])
    if finish is None:
        return

    async def body(tx: ExecutionTx) -> None:
        current = await tx.get_execution(execution_id)
        assert current is not None
        current.status = ExecutionStatus.SUCCEEDED
        current.completed_at = at(finish)
        current.updated_at = at(finish)
        current.result = {"done": True}
        if made:
            last = await tx.get_run(made[0].id)
            assert last is not None
            last.status = StepRunStatus.SUCCEEDED
            last.output = {"n": 42}
            tx.put_run(last)
        tx.put_execution(current)
        tx.add_event(event(execution_id, events + 1, kind="execution.succeeded"))

    await store.run_transaction(body)


async def put_more(store: Store, execution_id: str, records: list[Record]) -> None:
    """Write ``records`` in one transaction that reads their execution first (as the
    engine's do: Firestore counts their bytes for the execution's tenant)."""

    async def body(tx: ExecutionTx) -> None:
        assert await tx.get_execution(execution_id) is not None
        for record in records:
            if isinstance(record, StepRun):
                tx.put_run(record)
            elif isinstance(record, JoinMark):
                tx.put_join(record)
            elif isinstance(record, ExecutionEvent):
                tx.add_event(record)

    await store.run_transaction(body)


async def held(store: Store, *execution_ids: str) -> int:
    """The bytes these executions hold, measured from what the store returns."""
    total = 0
    for execution_id in execution_ids:
        found = await store.get_execution(execution_id)
        if found is None:
            continue
        total += len(found.model_dump_json(by_alias=True).encode())
        for step in await store.list_runs(execution_id):
            total += len(step.model_dump_json(by_alias=True).encode())
        for item in await store.list_events(execution_id, limit=10_000):
            total += len(item.model_dump_json(by_alias=True).encode())
    return total


async def assert_gone(store: Store, execution_id: str, runs: list[str]) -> None:
    assert await store.get_execution(execution_id) is None
    assert await store.list_runs(execution_id) == []
    assert await store.list_events(execution_id) == []
    for run_id in runs:
        assert await store.get_run(run_id) is None

        async def joins_of(tx: ExecutionTx, run_id: str = run_id) -> int:
            return len(await tx.list_joins(run_id))

        assert await store.run_transaction(joins_of) == 0

    async def signal_left(tx: ExecutionTx) -> object:
        return await tx.find_signal(execution_id, "approval")

    assert await store.run_transaction(signal_left) is None


async def test_deletes_everything_of_the_execution_and_nothing_else(store: Store) -> None:
    await build(store, "old-1")
    await build(store, "old-2", finish=20_000)  # finished after the horizon: kept
    await build(store, "other", tenant="t2")
    before = await store.stored_bytes("t1")
    assert before == await held(store, "old-1", "old-2") > 0
    size = await held(store, "old-1")
    kept_events = await store.list_events("old-2")
    kept_runs = await store.list_runs("old-2")

    counts = await store.delete_execution("t1", "old-1", HORIZON)

    assert counts == PurgeCounts(
        executions=1, runs=2, events=4, signals=1, joins=2, bytes_released=size
    )
    await assert_gone(store, "old-1", ["old-1-r0", "old-1-r1"])
    assert await store.stored_bytes("t1") == before - size == await held(store, "old-2")
    assert await store.list_events("old-2") == kept_events
    assert await store.list_runs("old-2") == kept_runs
    assert await store.get_execution("other") is not None
    assert await store.stored_bytes("t2") == await held(store, "other")
    assert {"t1", "t2"} <= set(await store.stored_tenants())


async def test_running_recent_and_other_tenants_executions_are_not_deleted(store: Store) -> None:
    await build(store, "live", finish=None)
    await build(store, "recent", finish=20_000)
    await build(store, "theirs", tenant="t2")
    live_runs = await store.list_runs("live")

    assert await store.delete_execution("t1", "live", HORIZON) == PurgeCounts()
    assert await store.delete_execution("t1", "recent", HORIZON) == PurgeCounts()
    assert await store.delete_execution("t1", "theirs", HORIZON) == PurgeCounts()
    assert await store.delete_execution("t1", "missing", HORIZON) == PurgeCounts()

    assert await store.list_runs("live") == live_runs
    assert len(await store.list_events("live")) == 3
    assert await store.get_execution("recent") is not None
    assert await store.get_execution("theirs") is not None
    assert await store.stored_bytes("t2") == await held(store, "theirs")
    # the horizon moves past it: now it goes
    later = HORIZON + timedelta(seconds=20_000)
    assert (await store.delete_execution("t1", "recent", later)).executions == 1


async def test_a_second_and_a_concurrent_deletion_delete_nothing_more(store: Store) -> None:
    await build(store, "dup")
    await build(store, "keep")
    size = await held(store, "dup")
    before = await store.stored_bytes("t1")

    results = await asyncio.gather(
        store.delete_execution("t1", "dup", HORIZON),
        store.delete_execution("t1", "dup", HORIZON),
    )
    again = await store.delete_execution("t1", "dup", HORIZON)

    total = results[0] + results[1] + again
    assert total.executions == 1
    assert total.bytes_released == size
    assert again == PurgeCounts()
    assert await store.stored_bytes("t1") == before - size == await held(store, "keep")


async def test_a_start_during_a_deletion_is_unaffected(store: Store) -> None:
    await build(store, "gone")

    async def start() -> None:
        await build(store, "fresh", finish=None)

    await asyncio.gather(store.delete_execution("t1", "gone", HORIZON), start())

    assert await store.get_execution("gone") is None
    fresh = await store.get_execution("fresh")
    assert fresh is not None and fresh.status == ExecutionStatus.RUNNING
    assert len(await store.list_runs("fresh")) == 2
    assert len(await store.list_events("fresh")) == 3


async def test_a_large_execution_goes_in_bounded_chunks(store: Store) -> None:
    """More events, runs and join marks than one Firestore chunk (400) holds."""
    await build(store, "big", runs=130, events=450, joins=420)
    size = await held(store, "big")
    before = await store.stored_bytes("t1")
    assert before == size

    counts = await store.delete_execution("t1", "big", HORIZON)

    assert (counts.executions, counts.runs, counts.events, counts.joins) == (1, 130, 451, 420)
    assert counts.bytes_released == size
    assert await store.stored_bytes("t1") == 0
    await assert_gone(store, "big", ["big-r0", "big-r129"])
