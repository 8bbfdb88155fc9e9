"""Contract of the flow-control store operations (slot documents, the queue of queued
executions) on every store: memory, SQLite and Firestore (emulator)."""

from __future__ import annotations

import asyncio

from _builders import Store, at, execution

from shared.engine.flow import slot_id
from shared.models import ConcurrencySlot, ExecutionStatus, QueueState, WorkflowExecution
from shared.ports import ExecutionTx


def queued(
    execution_id: str, key: str, priority: int, queued_s: float, tenant: str = "t1"
) -> WorkflowExecution:
    ex = execution(execution_id, status=ExecutionStatus.QUEUED, tenant=tenant)
    ex.queue = QueueState(priority=priority, wait_key=key, key="k", queued_at=at(queued_s))
    return ex


def slot(tenant: str, key: str, index: int, holder: str | None) -> ConcurrencySlot:
    return ConcurrencySlot(
        id=slot_id(tenant, key, index), tenant=tenant, slot_key=key, index=index, holder=holder
    )


async def put_all(store: Store, *records: WorkflowExecution | ConcurrencySlot) -> None:
    async def body(tx: ExecutionTx) -> None:
        for record in records:
            if isinstance(record, ConcurrencySlot):
                tx.put_slot(record)
            else:
                tx.put_execution(record)

    await store.run_transaction(body)


async def test_slots_are_read_back_by_id_and_missing_ones_are_absent(store: Store) -> None:
    await put_all(store, slot("t1", "w:wf:a", 0, "ex-1"), slot("t1", "w:wf:a", 1, None))
    ids = [slot_id("t1", "w:wf:a", i) for i in range(3)]

    async def read(tx: ExecutionTx) -> dict[str, ConcurrencySlot]:
        return await tx.get_slots(ids)

    found = await store.run_transaction(read)
    assert sorted(found) == sorted(ids[:2])
    assert found[ids[0]].holder == "ex-1"
    assert found[ids[1]].holder is None
    # A write replaces the holder; ids another tenant would use are different documents.
    await put_all(store, slot("t1", "w:wf:a", 0, None))
    assert (await store.run_transaction(read))[ids[0]].holder is None
    assert slot_id("t2", "w:wf:a", 0) not in ids


async def test_queue_order_is_priority_then_fifo_per_tenant_and_key(store: Store) -> None:
    await put_all(
        store,
        queued("late-high", "w:wf:a", 5, 30),
        queued("early-low", "w:wf:a", 0, 10),
        queued("early-high", "w:wf:a", 5, 20),
        queued("other-key", "w:wf:b", 9, 0),
        queued("other-tenant", "w:wf:a", 9, 0, tenant="t2"),
        execution("running", tenant="t1"),
    )

    async def head(tx: ExecutionTx) -> list[str]:
        return [ex.id for ex in await tx.queued_executions("t1", "w:wf:a", 10)]

    assert await store.run_transaction(head) == ["early-high", "late-high", "early-low"]
    oldest = [ex.id for ex in await store.list_queued(None, 10)]
    assert oldest[:2] in (["other-key", "other-tenant"], ["other-tenant", "other-key"])
    assert oldest[2:] == ["early-low", "early-high", "late-high"]
    assert [ex.id for ex in await store.list_queued("t2", 10)] == ["other-tenant"]


async def test_an_execution_leaves_the_queue_when_its_status_changes(store: Store) -> None:
    waiting = queued("ex-1", "w:wf:a", 0, 0)
    await put_all(store, waiting)
    assert [ex.id for ex in await store.list_queued("t1", 10)] == ["ex-1"]
    waiting.status = ExecutionStatus.RUNNING
    await put_all(store, waiting)
    assert await store.list_queued("t1", 10) == []

    async def head(tx: ExecutionTx) -> list[WorkflowExecution]:
        return await tx.queued_executions("t1", "w:wf:a", 10)

    assert await store.run_transaction(head) == []


async def test_slots_are_listed_by_tenant_and_key_prefix(store: Store) -> None:
    await put_all(
        store,
        slot("t1", "w:wf:a", 1, "x"),
        slot("t1", "w:wf:a", 0, None),
        slot("t1", "w:wf2:a", 0, "y"),
        slot("t1", "t:shared", 0, "z"),
        slot("t2", "w:wf:a", 0, "w"),
    )
    listed = await store.list_slots("t1", "w:wf:")
    assert [(s.slot_key, s.index, s.holder) for s in listed] == [
        ("w:wf:a", 0, None),
        ("w:wf:a", 1, "x"),
    ]
    assert [s.slot_key for s in await store.list_slots("t1", "t:")] == ["t:shared"]
    assert [s.holder for s in await store.list_slots("t2", "")] == ["w"]


async def test_two_transactions_cannot_both_take_the_last_slot(store: Store) -> None:
    """Read the slot, take it if free: of two concurrent takers exactly one wins (a
    serialized store runs them in turn; Firestore makes the loser retry and see it)."""
    ident = slot_id("t1", "w:wf:a", 0)
    winners: list[str] = []

    def taker(name: str) -> object:
        async def body(tx: ExecutionTx) -> bool:
            found = (await tx.get_slots([ident])).get(ident)
            if found is not None and found.holder is not None:
                return False
            tx.put_slot(slot("t1", "w:wf:a", 0, name))
            return True

        return body

    async def take(name: str) -> None:
        if await store.run_transaction(taker(name)):  # type: ignore[arg-type]
            winners.append(name)

    await asyncio.gather(*(take(f"ex-{i}") for i in range(5)))
    assert len(winners) == 1
    stored = await store.list_slots("t1", "w:wf:a")
    assert [s.holder for s in stored] == winners
