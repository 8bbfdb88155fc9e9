"""Contract of WorkflowStore and ExecutionStore: every adapter passes the same suite."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from _builders import (
    T0,
    Store,
    at,
    definition,
    dumped,
    event,
    execution,
    ids,
    join,
    put,
    run,
    signal,
)

from shared.errors import Conflict, InputInvalid, NotFound
from shared.models import (
    ExecutionEvent,
    ExecutionStatus,
    StepRunStatus,
    WorkflowDefinition,
    WorkflowExecution,
)
from shared.ports import (
    ExecutionQuery,
    ExecutionStore,
    ExecutionTx,
    WorkflowHead,
    WorkflowQuery,
    WorkflowStore,
)

# -- workflows -------------------------------------------------------------------------


def test_adapters_satisfy_the_ports(store: Store) -> None:
    """Mostly a mypy check: every adapter is both a WorkflowStore and an ExecutionStore."""
    workflows: WorkflowStore = store
    executions: ExecutionStore = store
    assert [workflows, executions] == [store, store]


async def test_create_then_get_returns_the_same_definition(store: Store) -> None:
    wf = definition("wf-1", tags=["a", "b"])
    await store.create_workflow(wf, "t1")

    assert dumped(await store.get_workflow("wf-1", "t1")) == dumped(wf)
    assert dumped(await store.get_version("wf-1", 1, "t1")) == dumped(wf)
    assert await store.get_workflow("missing", "t1") is None


async def test_returned_definitions_do_not_alias_the_store(store: Store) -> None:
    wf = definition("wf-1")
    await store.create_workflow(wf, "t1")
    wf.name = "changed by caller"
    got = await store.get_workflow("wf-1", "t1")
    assert got is not None
    got.tags.append("mutated")

    again = await store.get_workflow("wf-1", "t1")
    assert again is not None
    assert (again.name, again.tags) == ("wf", [])


async def test_create_twice_conflicts_even_after_delete(store: Store) -> None:
    await store.create_workflow(definition("wf-1"), "t1")
    with pytest.raises(Conflict):
        await store.create_workflow(definition("wf-1", name="other"), "t1")
    assert await store.delete_workflow("wf-1", "t1") is True
    with pytest.raises(Conflict):
        await store.create_workflow(definition("wf-1"), "t1")


async def test_save_version_moves_the_head_and_keeps_old_versions(store: Store) -> None:
    await store.create_workflow(definition("wf-1"), "t1")
    v2 = definition("wf-1", version=2, name="second")
    await store.save_version(v2, 1, "t1")

    head = await store.get_workflow("wf-1", "t1")
    assert dumped(head) == dumped(v2)
    v1 = await store.get_version("wf-1", 1, "t1")
    assert v1 is not None and (v1.version, v1.name) == (1, "wf")
    assert await store.get_version("wf-1", 3, "t1") is None
    assert [v.version for v in await store.list_versions("wf-1", "t1")] == [1, 2]
    assert [v.name for v in await store.list_versions("wf-1", "t1")] == ["wf", "second"]


async def test_the_head_says_its_version_and_active_flag_without_the_definition(
    store: Store,
) -> None:
    assert await store.get_head("wf-1", "t1") is None
    await store.create_workflow(definition("wf-1"), "t1")
    assert await store.get_head("wf-1", "t1") == WorkflowHead(1, True)
    await store.save_version(definition("wf-1", version=2, is_active=False), 1, "t1")
    assert await store.get_head("wf-1", "t1") == WorkflowHead(2, False)
    assert await store.get_head("wf-1", "t2") is None  # another tenant's
    assert await store.delete_workflow("wf-1", "t1") is True
    assert await store.get_head("wf-1", "t1") is None
    assert await store.get_head("no/such id", "t1") is None


async def test_save_version_with_a_stale_expected_version_conflicts(store: Store) -> None:
    await store.create_workflow(definition("wf-1"), "t1")
    await store.save_version(definition("wf-1", version=2), 1, "t1")
    with pytest.raises(Conflict):
        await store.save_version(definition("wf-1", version=2, name="late"), 1, "t1")

    head = await store.get_workflow("wf-1", "t1")
    assert head is not None
    assert (head.version, head.name) == (2, "wf")
    assert len(await store.list_versions("wf-1", "t1")) == 2


async def test_save_version_needs_the_next_version_number(store: Store) -> None:
    await store.create_workflow(definition("wf-1"), "t1")
    with pytest.raises(InputInvalid):
        await store.save_version(definition("wf-1", version=3), 1, "t1")
    assert [v.version for v in await store.list_versions("wf-1", "t1")] == [1]


async def test_save_version_of_missing_deleted_or_foreign_workflow_is_not_found(
    store: Store,
) -> None:
    with pytest.raises(NotFound):
        await store.save_version(definition("nope", version=2), 1, "t1")
    await store.create_workflow(definition("wf-1"), "t1")
    with pytest.raises(NotFound):
        await store.save_version(definition("wf-1", version=2), 1, "t2")
    await store.delete_workflow("wf-1", "t1")
    with pytest.raises(NotFound):
        await store.save_version(definition("wf-1", version=2), 1, "t1")


async def test_delete_hides_the_head_but_keeps_versions(store: Store) -> None:
    await store.create_workflow(definition("wf-1"), "t1")
    await store.save_version(definition("wf-1", version=2), 1, "t1")

    assert await store.delete_workflow("wf-1", "t2") is False
    assert await store.delete_workflow("wf-1", "t1") is True
    assert await store.delete_workflow("wf-1", "t1") is False
    assert await store.delete_workflow("missing", "t1") is False

    assert await store.get_workflow("wf-1", "t1") is None
    assert (await store.list_workflows(WorkflowQuery(tenant="t1"))).items == []
    v1 = await store.get_version("wf-1", 1, "t1")
    assert v1 is not None and v1.version == 1
    assert [v.version for v in await store.list_versions("wf-1", "t1")] == [1, 2]


async def test_tenants_do_not_see_each_other(store: Store) -> None:
    await store.create_workflow(definition("wf-1"), "t1")
    await store.create_workflow(definition("wf-2"), "t2")

    assert await store.get_workflow("wf-1", "t2") is None
    assert await store.get_version("wf-1", 1, "t2") is None
    assert await store.list_versions("wf-1", "t2") == []
    assert ids((await store.list_workflows(WorkflowQuery(tenant="t1"))).items) == ["wf-1"]
    assert ids((await store.list_workflows(WorkflowQuery(tenant="t2"))).items) == ["wf-2"]
    assert (await store.list_workflows(WorkflowQuery())).items == []


async def test_touch_executed_updates_the_head_only(store: Store) -> None:
    await store.create_workflow(definition("wf-1"), "t1")
    await store.touch_executed("wf-1", at(500))
    await store.touch_executed("missing", at(500))

    head = await store.get_workflow("wf-1", "t1")
    assert head is not None and head.last_executed == at(500)
    assert head.version == 1
    versions = await store.list_versions("wf-1", "t1")
    assert [(v.version, v.last_executed) for v in versions] == [(1, None)]

    await store.save_version(definition("wf-1", version=2), 1, "t1")
    head = await store.get_workflow("wf-1", "t1")
    assert head is not None and (head.version, head.last_executed) == (2, at(500))


async def test_list_workflows_newest_first_with_id_tiebreak_and_pages(store: Store) -> None:
    for workflow_id, created in [("c", 10), ("a", 30), ("e", 20), ("b", 30), ("d", 0)]:
        await store.create_workflow(definition(workflow_id, created=created), "t1")

    seen: list[str] = []
    pages = 0
    cursor: str | None = None
    while True:
        page = await store.list_workflows(WorkflowQuery(tenant="t1", limit=2, cursor=cursor))
        pages += 1
        seen += ids(page.items)
        assert len(page.items) == (2 if pages < 3 else 1)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert (pages, seen) == (3, ["a", "b", "e", "c", "d"])

    exact = await store.list_workflows(WorkflowQuery(tenant="t1", limit=5))
    assert (ids(exact.items), exact.next_cursor) == (["a", "b", "e", "c", "d"], None)


async def test_list_workflows_filters_active_and_all_tags(store: Store) -> None:
    await store.create_workflow(definition("w1", tags=["x", "y"], created=1), "t1")
    await store.create_workflow(definition("w2", tags=["x"], created=2), "t1")
    await store.create_workflow(definition("w3", tags=["y", "x", "z"], created=3), "t1")
    await store.create_workflow(definition("w4", tags=["x", "y"], is_active=False, created=4), "t1")

    async def listed(**kwargs: object) -> list[str]:
        page = await store.list_workflows(WorkflowQuery(tenant="t1", **kwargs))  # type: ignore[arg-type]
        return ids(page.items)

    assert await listed() == ["w4", "w3", "w2", "w1"]
    assert await listed(active_only=True) == ["w3", "w2", "w1"]
    assert await listed(tags=("x",)) == ["w4", "w3", "w2", "w1"]
    assert await listed(tags=("x", "y")) == ["w4", "w3", "w1"]
    assert await listed(tags=("y", "x", "y")) == ["w4", "w3", "w1"]
    assert await listed(tags=("x", "y"), active_only=True) == ["w3", "w1"]
    assert await listed(tags=("z", "nope")) == []
    assert await listed(tags=("x", "y"), limit=1, active_only=True) == ["w3"]


async def test_list_workflows_filters_by_name(store: Store) -> None:
    await store.create_workflow(definition("n1", name="orders", tags=["x"], created=1), "t1")
    await store.create_workflow(definition("n2", name="billing", tags=["x"], created=2), "t1")
    await store.create_workflow(definition("n3", name="orders", created=3), "t2")

    async def named(name: str, **kwargs: object) -> list[str]:
        query = WorkflowQuery(tenant="t1", name=name, **kwargs)  # type: ignore[arg-type]
        return ids((await store.list_workflows(query)).items)

    assert await named("orders") == ["n1"]  # not t2's workflow of that name
    assert await named("billing", limit=1) == ["n2"]
    assert await named("orders", tags=("x",)) == ["n1"]
    assert await named("Orders") == []
    await store.delete_workflow("n1", "t1")
    assert await named("orders") == []


async def test_a_bad_cursor_or_limit_is_invalid_input(store: Store) -> None:
    with pytest.raises(InputInvalid):
        await store.list_workflows(WorkflowQuery(cursor="not a cursor"))
    with pytest.raises(InputInvalid):
        await store.list_executions(ExecutionQuery(cursor="bm9wZQ=="))
    with pytest.raises(InputInvalid):
        await store.list_executions(ExecutionQuery(limit=0))


# -- executions --------------------------------------------------------------------------


async def test_put_then_get_execution(store: Store) -> None:
    ex = execution("ex-1")
    await put(store, ex)
    assert dumped(await store.get_execution("ex-1")) == dumped(ex)
    assert await store.get_execution("missing") is None

    ex.status = ExecutionStatus.SUCCEEDED
    assert (await store.get_execution("ex-1")).status == ExecutionStatus.RUNNING  # type: ignore[union-attr]
    await put(store, ex)
    assert dumped(await store.get_execution("ex-1")) == dumped(ex)


async def test_list_executions_filters_and_pages_newest_first(store: Store) -> None:
    succeeded = ExecutionStatus.SUCCEEDED
    await put(
        store,
        execution("e1", workflow_id="wf-1", started=10),
        execution("e2", workflow_id="wf-2", started=20, status=succeeded),
        execution("e3", workflow_id="wf-1", started=30, status=succeeded),
        execution("e4", workflow_id="wf-1", started=30),
        execution("e5", workflow_id="wf-1", started=40, tenant="t2"),
    )

    async def listed(**kwargs: object) -> list[str]:
        page = await store.list_executions(ExecutionQuery(**kwargs))  # type: ignore[arg-type]
        return ids(page.items)

    assert await listed() == ["e3", "e4", "e2", "e1"]
    assert await listed(tenant="t2") == ["e5"]
    assert await listed(workflow_id="wf-1") == ["e3", "e4", "e1"]
    assert await listed(status=succeeded) == ["e3", "e2"]
    assert await listed(workflow_id="wf-1", status=ExecutionStatus.RUNNING) == ["e4", "e1"]

    first = await store.list_executions(ExecutionQuery(limit=3))
    assert ids(first.items) == ["e3", "e4", "e2"]
    assert first.next_cursor is not None
    second = await store.list_executions(ExecutionQuery(limit=3, cursor=first.next_cursor))
    assert (ids(second.items), second.next_cursor) == (["e1"], None)


async def test_list_executions_by_when_they_started(store: Store) -> None:
    """``started_from`` is inclusive, ``started_before`` exclusive, with the other filters
    and paging (the console's time range)."""
    await put(
        store,
        *(execution(f"e{i}", started=10 * i) for i in range(1, 7)),
        execution("other", workflow_id="wf-2", started=30),
        execution("elsewhere", started=30, tenant="t2"),
    )

    async def listed(**kwargs: object) -> list[str]:
        page = await store.list_executions(ExecutionQuery(**kwargs))  # type: ignore[arg-type]
        return ids(page.items)

    assert await listed(started_from=at(30)) == ["e6", "e5", "e4", "e3", "other"]
    assert await listed(started_before=at(30)) == ["e2", "e1"]
    window = {"started_from": at(20), "started_before": at(50)}
    assert await listed(**window, workflow_id="wf-1") == ["e4", "e3", "e2"]
    assert await listed(**window, tenant="t2") == ["elsewhere"]
    first = await store.list_executions(ExecutionQuery(limit=2, workflow_id="wf-1", **window))
    assert ids(first.items) == ["e4", "e3"]
    rest = ExecutionQuery(limit=2, workflow_id="wf-1", cursor=first.next_cursor, **window)
    second = await store.list_executions(rest)
    assert (ids(second.items), second.next_cursor) == (["e2"], None)


async def test_runs_are_listed_oldest_first_by_creation(store: Store) -> None:
    await put(store, run("r3"), run("q1", execution_id="ex-2"))
    await put(store, run("r1"), run("r2", status=StepRunStatus.RUNNING))
    await put(store, run("r3", status=StepRunStatus.SUCCEEDED))

    assert ids(await store.list_runs("ex-1")) == ["r3", "r1", "r2"]
    assert ids(await store.list_runs("ex-2")) == ["q1"]
    assert await store.list_runs("ex-3") == []
    got = await store.get_run("r3")
    assert got is not None and got.status == StepRunStatus.SUCCEEDED
    assert await store.get_run("missing") is None

    async def body(tx: ExecutionTx) -> tuple[list[str], list[str], list[str]]:
        every = ids(await tx.list_runs("ex-1"))
        live = ids(
            await tx.list_runs("ex-1", frozenset({StepRunStatus.SCHEDULED, StepRunStatus.RUNNING}))
        )
        none = ids(await tx.list_runs("ex-1", frozenset()))
        return every, live, none

    assert await store.run_transaction(body) == (["r3", "r1", "r2"], ["r1", "r2"], [])


async def test_joins_are_put_listed_by_index_and_deleted(store: Store) -> None:
    await put(store, join("own", 2, "c"), join("own", 0, "a"), join("other", 0), join("own", 1))
    await put(store, join("own", 1, "b"))

    async def marks(tx: ExecutionTx) -> list[tuple[int, object]]:
        return [(mark.index, mark.output) for mark in await tx.list_joins("own")]

    assert await store.run_transaction(marks) == [(0, "a"), (1, "b"), (2, "c")]

    async def drop(tx: ExecutionTx) -> None:
        tx.delete_join("own", 1)
        tx.delete_join("own", 9)

    await store.run_transaction(drop)
    assert await store.run_transaction(marks) == [(0, "a"), (2, "c")]


async def test_find_signal_returns_the_oldest_unconsumed_of_that_name(store: Store) -> None:
    await put(
        store,
        signal("s-c", consumed_by="run-0", created=1),
        signal("s-b", name="other", created=2),
        signal("s-z", execution_id="ex-2", created=3),
        signal("s-y", created=4),
        signal("s-a", created=5),
    )

    async def find(tx: ExecutionTx) -> str | None:
        found = await tx.find_signal("ex-1", "approval")
        return None if found is None else found.id

    assert await store.run_transaction(find) == "s-y"

    async def consume(tx: ExecutionTx) -> str | None:
        found = await tx.find_signal("ex-1", "approval")
        if found is None:
            return None
        found.consumed_by = "run-1"
        tx.put_signal(found)
        return f"{found.id}:{found.payload['from']}"

    assert await store.run_transaction(consume) == "s-y:s-y"
    assert await store.run_transaction(find) == "s-a"
    assert await store.run_transaction(consume) == "s-a:s-a"
    assert await store.run_transaction(consume) is None
    assert await store.run_transaction(find) is None


async def test_list_events_after_seq_with_limit(store: Store) -> None:
    await put(store, event("ex-1", 1), event("ex-1", 2), event("ex-2", 1))
    await put(store, event("ex-1", 4), event("ex-1", 3))

    def seqs(events: list[ExecutionEvent]) -> list[int]:
        return [e.seq for e in events]

    assert seqs(await store.list_events("ex-1")) == [1, 2, 3, 4]
    assert seqs(await store.list_events("ex-1", after_seq=2)) == [3, 4]
    assert seqs(await store.list_events("ex-1", after_seq=1, limit=2)) == [2, 3]
    assert seqs(await store.list_events("ex-1", after_seq=4)) == []
    assert seqs(await store.list_events("ex-2")) == [1]
    got = (await store.list_events("ex-1", after_seq=2, limit=1))[0]
    assert dumped(got) == dumped(event("ex-1", 3))


async def test_due_runs_selects_what_the_queue_should_have_delivered(store: Store) -> None:
    now = at(1000)
    scheduled, running, waiting = (
        StepRunStatus.SCHEDULED,
        StepRunStatus.RUNNING,
        StepRunStatus.WAITING,
    )
    await put(
        store,
        run("sched-due", status=scheduled, due=1000 - 60),
        run("sched-in-grace", status=scheduled, due=1000 - 10),
        run("sched-future", status=scheduled, due=1000 + 60),
        run("lease-expired", status=running, due=1000 - 120, lease=1000 - 1, owner="w"),
        run("lease-exactly-now", status=running, due=1000 - 5, lease=1000, owner="w"),
        run("lease-live", status=running, due=1000 - 200, lease=1000 + 60, owner="w"),
        run("running-no-lease", status=running, due=1000 - 300),
        run("wait-past", status=waiting, due=1000 - 90),
        run("wait-in-grace", status=waiting, due=1000 - 29),
        run("wait-future", status=waiting, due=1000 + 3600),
        run("done", status=StepRunStatus.SUCCEEDED, due=0),
        run("failed", status=StepRunStatus.FAILED, due=0),
        run("cancelled", status=StepRunStatus.CANCELLED, due=0),
        run("skipped", status=StepRunStatus.SKIPPED, due=0),
    )

    due = await store.due_runs(now, grace_seconds=30, limit=10)
    assert ids(due) == ["lease-expired", "wait-past", "sched-due", "lease-exactly-now"]
    assert ids(await store.due_runs(now, grace_seconds=30, limit=2)) == [
        "lease-expired",
        "wait-past",
    ]
    assert ids(await store.due_runs(now, grace_seconds=0, limit=10)) == [
        "lease-expired",
        "wait-past",
        "sched-due",
        "wait-in-grace",
        "sched-in-grace",
        "lease-exactly-now",
    ]
    assert await store.due_runs(now - timedelta(hours=1), grace_seconds=0, limit=10) == []


# -- transactions ------------------------------------------------------------------------


async def test_reads_in_a_transaction_do_not_see_its_own_writes(store: Store) -> None:
    await put(store, execution("ex-1"))

    async def body(tx: ExecutionTx) -> tuple[object, ...]:
        changed = execution("ex-1", status=ExecutionStatus.SUCCEEDED)
        tx.put_execution(changed)
        tx.put_execution(execution("ex-new"))
        tx.put_run(run("r1"))
        tx.put_join(join("r1", 0))
        tx.put_signal(signal("s1"))
        tx.add_event(event("ex-1", 1))
        current = await tx.get_execution("ex-1")
        return (
            current.status if current else None,
            await tx.get_execution("ex-new"),
            await tx.get_run("r1"),
            await tx.list_runs("ex-1"),
            await tx.list_joins("r1"),
            await tx.find_signal("ex-1", "approval"),
        )

    seen = await store.run_transaction(body)
    assert seen == (ExecutionStatus.RUNNING, None, None, [], [], None)

    after = await store.get_execution("ex-1")
    assert after is not None and after.status == ExecutionStatus.SUCCEEDED
    assert await store.get_execution("ex-new") is not None
    assert ids(await store.list_runs("ex-1")) == ["r1"]
    assert [e.seq for e in await store.list_events("ex-1")] == [1]


async def test_writes_apply_in_order(store: Store) -> None:
    async def body(tx: ExecutionTx) -> None:
        tx.put_run(run("r1", status=StepRunStatus.RUNNING))
        tx.put_run(run("r1", status=StepRunStatus.SUCCEEDED))
        tx.put_join(join("own", 0))
        tx.delete_join("own", 0)
        tx.put_join(join("own", 1))

    await store.run_transaction(body)
    got = await store.get_run("r1")
    assert got is not None and got.status == StepRunStatus.SUCCEEDED

    async def marks(tx: ExecutionTx) -> list[int]:
        return [mark.index for mark in await tx.list_joins("own")]

    assert await store.run_transaction(marks) == [1]


async def test_a_failing_transaction_writes_nothing(store: Store) -> None:
    await put(store, execution("ex-1"), run("r1"))

    async def body(tx: ExecutionTx) -> None:
        tx.put_execution(execution("ex-1", status=ExecutionStatus.FAILED))
        tx.put_execution(execution("ex-2"))
        tx.put_run(run("r2"))
        tx.put_signal(signal("s1"))
        tx.add_event(event("ex-1", 1))
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await store.run_transaction(body)
    await _assert_untouched(store)


async def test_a_duplicate_event_seq_conflicts_and_rolls_everything_back(store: Store) -> None:
    await put(store, execution("ex-1"), run("r1"), event("ex-1", 1))

    async def body(tx: ExecutionTx) -> None:
        tx.put_execution(execution("ex-1", status=ExecutionStatus.FAILED))
        tx.put_execution(execution("ex-2"))
        tx.put_run(run("r2"))
        tx.put_signal(signal("s1"))
        tx.add_event(event("ex-1", 2))
        tx.add_event(event("ex-1", 1, kind="step.failed"))

    with pytest.raises(Conflict):
        await store.run_transaction(body)
    await _assert_untouched(store)
    events = await store.list_events("ex-1")
    assert [(e.seq, e.type) for e in events] == [(1, "step.started")]


async def test_the_same_seq_twice_in_one_transaction_conflicts(store: Store) -> None:
    async def body(tx: ExecutionTx) -> None:
        tx.put_execution(execution("ex-2"))
        tx.add_event(event("ex-1", 5))
        tx.add_event(event("ex-1", 5))

    with pytest.raises(Conflict):
        await store.run_transaction(body)
    assert await store.list_events("ex-1") == []
    assert await store.get_execution("ex-2") is None


async def _assert_untouched(store: Store) -> None:
    """State of the rollback tests: ex-1 running with r1, nothing else."""
    ex1 = await store.get_execution("ex-1")
    assert ex1 is not None and ex1.status == ExecutionStatus.RUNNING
    assert await store.get_execution("ex-2") is None
    assert ids(await store.list_runs("ex-1")) == ["r1"]

    async def no_signal(tx: ExecutionTx) -> object:
        return await tx.find_signal("ex-1", "approval")

    assert await store.run_transaction(no_signal) is None
    assert all(e.seq == 1 for e in await store.list_events("ex-1"))


async def test_transaction_returns_the_value_of_fn(store: Store) -> None:
    async def body(tx: ExecutionTx) -> dict[str, int]:
        return {"answer": 42}

    assert await store.run_transaction(body) == {"answer": 42}


async def test_concurrent_claims_have_exactly_one_winner(store: Store) -> None:
    await put(store, run("r1"))

    async def claim(owner: str) -> bool:
        async def body(tx: ExecutionTx) -> bool:
            current = await tx.get_run("r1")
            await asyncio.sleep(0)  # let the other claimers interleave if they can
            if current is None or current.status != StepRunStatus.SCHEDULED:
                return False
            current.status = StepRunStatus.RUNNING
            current.lease_owner = owner
            current.lease_expires_at = T0 + timedelta(minutes=5)
            tx.put_run(current)
            return True

        return await store.run_transaction(body)

    owners = [f"worker-{i}" for i in range(20)]
    results = await asyncio.gather(*(claim(owner) for owner in owners))

    assert results.count(True) == 1
    claimed = await store.get_run("r1")
    assert claimed is not None and claimed.status == StepRunStatus.RUNNING
    assert claimed.lease_owner == owners[results.index(True)]


# -- listeners ---------------------------------------------------------------------------


async def test_listeners_hear_committed_events_only(store: Store) -> None:
    heard: list[list[tuple[str, int]]] = []

    def listener(events: list[ExecutionEvent]) -> None:
        heard.append([(e.execution_id, e.seq) for e in events])

    store.add_listener(listener)
    await put(store, execution("ex-1"))
    await put(store, event("ex-1", 1), run("r1"), event("ex-1", 2))

    async def failing(tx: ExecutionTx) -> None:
        tx.add_event(event("ex-1", 3))
        raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        await store.run_transaction(failing)
    with pytest.raises(Conflict):
        await put(store, event("ex-1", 3), event("ex-1", 2))
    assert heard == [[("ex-1", 1), ("ex-1", 2)]]

    store.remove_listener(listener)
    store.remove_listener(listener)
    await put(store, event("ex-1", 3))
    assert heard == [[("ex-1", 1), ("ex-1", 2)]]


async def test_listeners_run_after_commit_and_their_errors_are_swallowed(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    observed: list[list[int]] = []

    def broken(events: list[ExecutionEvent]) -> None:
        raise ValueError("listener bug")

    def reader(events: list[ExecutionEvent]) -> None:
        observed.append([e.seq for e in events])
        events[0].type = "mutated by listener"

    store.add_listener(broken)
    store.add_listener(reader)
    await put(store, execution("ex-1"), event("ex-1", 1))

    assert observed == [[1]]
    assert "listener bug" in caplog.text
    stored = await store.list_events("ex-1")
    assert [(e.seq, e.type) for e in stored] == [(1, "step.started")]
    assert await store.get_execution("ex-1") is not None


async def test_workflow_and_execution_records_round_trip_exactly(store: Store) -> None:
    wf = WorkflowDefinition.model_validate(
        {
            "id": "wf-rich",
            "name": "rich",
            "trigger": {"type": "schedule", "cron": "*/5 * * * *", "timezone": "Europe/Paris"},
            "steps": [
                {"id": "a", "type": "http", "config": {"url": "https://x"}, "nextSteps": ["b"]},
                {"id": "b", "type": "transform", "onError": {"strategy": "retry"}},
            ],
            "variables": {"k": [1, {"v": None}]},
            "tags": ["t"],
        }
    )
    await store.create_workflow(wf, "default")
    assert dumped(await store.get_workflow("wf-rich", "default")) == dumped(wf)

    ex = WorkflowExecution(
        id="ex-rich",
        workflow_id="wf-rich",
        workflow_version=1,
        result={"deep": [1, 2.5, "x", None]},
        completed_at=T0,
    )
    await put(store, ex)
    assert dumped(await store.get_execution("ex-rich")) == dumped(ex)
