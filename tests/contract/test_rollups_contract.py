"""Analytics rollups behave the same on every store: added in the transaction that
records what they count (and only if it commits), bucketed by hour and day, merged
across shards and deltas, scoped to a tenant and optionally a workflow."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from shared.errors import Conflict
from shared.models import ExecutionEvent
from shared.ports import ExecutionTx, Store
from shared.ports.analytics import RollupDelta, RollupQuery

T0 = datetime(2026, 11, 30, 10, 15, tzinfo=UTC)
DAY = datetime(2026, 11, 30, tzinfo=UTC)


def delta(execution_id: str, **counters: float) -> RollupDelta:
    return RollupDelta("t1", "wf", execution_id, T0, dict(counters))


def query(grain: str = "hour", **kw: object) -> RollupQuery:
    args: dict[str, object] = {
        "tenant": "t1",
        "grain": grain,
        "start": DAY,
        "end": DAY + timedelta(days=1),
    }
    args.update(kw)
    return RollupQuery(**args)  # type: ignore[arg-type]


async def test_a_committed_delta_lands_in_its_hour_and_day_rows(store: Store) -> None:
    async def body(tx: ExecutionTx) -> None:
        tx.add_rollup(delta("e1", started=1, **{"step|a|h|3": 2, "llm|cost": 0.25}))
        tx.add_rollup(delta("e2", started=1, **{"step|a|h|3": 1}))

    await store.run_transaction(body)
    hours = await store.read_rollups(query("hour"))
    assert [(r.workflow_id, r.bucket) for r in hours] == [("wf", T0.replace(minute=0))]
    assert hours[0].counters == {"started": 2, "step|a|h|3": 3, "llm|cost": 0.25}
    days = await store.read_rollups(query("day"))
    assert [(r.bucket, r.counters["started"]) for r in days] == [(DAY, 2)]


async def test_deltas_of_many_executions_merge_across_shards(store: Store) -> None:
    for index in range(12):

        async def body(tx: ExecutionTx, index: int = index) -> None:
            tx.add_rollup(delta(f"exec-{index}", started=1, **{"dur|sum": 10.5}))

        await store.run_transaction(body)
    await store.add_rollups([delta(f"bulk-{i}", started=1) for i in range(5)])
    (row,) = await store.read_rollups(query("day"))
    assert row.counters == {"started": 17, "dur|sum": 126.0}


async def test_a_failed_commit_adds_nothing(store: Store) -> None:
    event = ExecutionEvent(execution_id="e1", workflow_id="wf", seq=1, type="x", at=T0)

    async def first(tx: ExecutionTx) -> None:
        tx.add_event(event)

    await store.run_transaction(first)

    async def duplicate(tx: ExecutionTx) -> None:
        tx.add_rollup(delta("e1", started=1))
        tx.add_event(event)  # the same seq again: the commit is refused

    with pytest.raises(Conflict):
        await store.run_transaction(duplicate)

    async def raises(tx: ExecutionTx) -> None:
        tx.add_rollup(delta("e2", started=1))
        raise RuntimeError("body failed")

    with pytest.raises(RuntimeError):
        await store.run_transaction(raises)
    assert await store.read_rollups(query("day")) == []


async def test_reads_keep_to_the_tenant_the_workflow_and_the_window(store: Store) -> None:
    later = T0 + timedelta(days=2)
    await store.add_rollups(
        [
            delta("a", started=1),
            RollupDelta("t1", "other", "b", T0, {"started": 2}),
            RollupDelta("t2", "wf", "c", T0, {"started": 4}),
            RollupDelta("t1", "wf", "d", later, {"started": 8}),
        ]
    )
    rows = await store.read_rollups(query("day"))
    assert sorted((r.workflow_id, r.counters["started"]) for r in rows) == [("other", 2), ("wf", 1)]
    assert {r.tenant for r in rows} == {"t1"}
    only = await store.read_rollups(query("day", workflow_id="wf"))
    assert [r.counters["started"] for r in only] == [1]
    wide = await store.read_rollups(query("day", end=DAY + timedelta(days=3)))
    assert sum(r.counters["started"] for r in wide) == 11
    other = await store.read_rollups(query("day", tenant="t2"))
    assert [(r.tenant, r.counters["started"]) for r in other] == [("t2", 4)]


async def test_concurrent_commits_add_only_their_own_deltas(store: Store) -> None:
    """Transactions arriving together (one group commit on SQLite, whose deltas are
    summed before they are added): each committed one counts once, a failed one not."""

    async def body(tx: ExecutionTx, index: int) -> None:
        tx.add_rollup(delta(f"e{index}", started=1, **{f"step|s{index % 3}|n": 1}))
        if index % 4 == 3:
            raise RuntimeError("body failed")

    results = await asyncio.gather(
        *(store.run_transaction(lambda tx, i=i: body(tx, i)) for i in range(12)),
        return_exceptions=True,
    )
    failed = [i for i, result in enumerate(results) if isinstance(result, RuntimeError)]
    assert failed == [3, 7, 11]
    hours = await store.read_rollups(query("hour"))
    assert len(hours) == 1
    assert hours[0].counters == {"started": 9, "step|s0|n": 3, "step|s1|n": 3, "step|s2|n": 3}
    (day,) = await store.read_rollups(query("day"))
    assert day.counters == hours[0].counters
