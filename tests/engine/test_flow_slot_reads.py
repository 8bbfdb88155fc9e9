"""Which step-level slot documents a claim reads (issue 13). On Firestore a read locks
its document until the commit, and two transactions that read a slot and then both
write it wait for each other (the emulator until a ~2 s lock timeout): a claim reads one
slot first and the others only when that one is held, so claims that take different
slots never read the same document."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

import pytest
from harness import Harness, linear

from shared.adapters.memory_store import MemoryStore
from shared.engine.claim import HopResult
from shared.engine.flow import slot_id
from shared.engine.step_limits import HELD_SLOTS
from shared.models import ConcurrencySlot, StepRun
from shared.ports import ExecutionTx, StepTask

T = TypeVar("T")


class SlotReadsStore(MemoryStore):
    """A MemoryStore that records, per transaction, the batches of slot ids read."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[list[list[str]]] = []

    async def run_transaction(self, fn: Callable[[ExecutionTx], Awaitable[T]]) -> T:
        batches: list[list[str]] = []

        async def recorded(tx: ExecutionTx) -> T:
            batches.clear()
            read = tx.get_slots

            async def get_slots(slot_ids: list[str]) -> dict[str, ConcurrencySlot]:
                batches.append(list(slot_ids))
                return await read(slot_ids)

            tx.get_slots = get_slots  # type: ignore[method-assign]
            return await fn(tx)

        result = await super().run_transaction(recorded)
        if batches:
            self.reads.append(list(batches))
        return result


@pytest.fixture
async def h() -> AsyncIterator[Harness]:
    harness = Harness(SlotReadsStore())
    yield harness
    await harness.bus.close()


def store_of(h: Harness) -> SlotReadsStore:
    assert isinstance(h.store, SlotReadsStore)
    return h.store


async def claim(h: Harness, task: StepTask, token: str) -> HopResult | tuple[StepRun, object]:
    store_of(h).reads.clear()
    return await h.engine._claim(task, token)


async def started(h: Harness, count: int, limit: int) -> tuple[list[StepTask], list[str]]:
    """``count`` executions of a one-step workflow whose step has a limit: their tasks,
    and the slot ids of the limit's key."""
    wf = await h.create(
        linear(
            {"id": "a", "type": "count", "concurrency": {"limit": limit, "key": "'api'"}},
            name="slot-reads",
        )
    )
    for i in range(count):
        await h.start(wf, {"i": i})
    tasks = h.queue.take_due(h.clock.now())
    assert len(tasks) == count
    return tasks, [slot_id("default", "stepc:k:api", i) for i in range(limit)]


async def test_a_claim_with_free_slots_reads_one(h: Harness) -> None:
    (task,), ids = await started(h, 1, 3)
    claimed = await claim(h, task, "t1")
    assert not isinstance(claimed, HopResult)
    ((batch,),) = store_of(h).reads  # one transaction, one batch
    assert len(batch) == 1 and batch[0] in ids
    assert claimed[0].state[HELD_SLOTS] == batch


async def test_a_claim_that_finds_its_first_slot_held_reads_the_others_in_one_batch(
    h: Harness,
) -> None:
    tasks, ids = await started(h, 4, 3)
    for n, task in enumerate(tasks[:3]):  # every slot taken, each by one run
        assert not isinstance(await claim(h, task, f"t{n}"), HopResult)
        ((batch, *others),) = store_of(h).reads
        assert len(batch) == 1 and all(len(more) == 2 for more in others)
    assert (await claim(h, tasks[3], "t3")) == HopResult("waiting")
    ((first, rest),) = store_of(h).reads
    assert len(first) == 1 and sorted(first + rest) == sorted(ids)


async def test_a_run_taken_over_after_its_lease_reads_its_own_slot_first(h: Harness) -> None:
    (task,), _ = await started(h, 1, 4)
    claimed = await claim(h, task, "t1")
    assert not isinstance(claimed, HopResult)
    run = claimed[0]
    assert run.lease_expires_at is not None
    h.clock.set(run.lease_expires_at + timedelta(seconds=1))  # its holder died
    again = await claim(h, task, "t2")
    assert not isinstance(again, HopResult)
    assert store_of(h).reads == [[run.state[HELD_SLOTS]]]
    assert again[0].state[HELD_SLOTS] == run.state[HELD_SLOTS]
