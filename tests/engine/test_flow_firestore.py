"""Flow control on the Firestore store (emulator): the limit holds under concurrent,
duplicated starts and deliveries (transactions contend and retry), slots come back,
priority order holds. Far fewer starts than on the embedded stores (6, not 500): the
emulator serializes contended transactions slowly (see ``STARTS``)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from flow_helpers import ActiveCounter, InFlightStep, drive_concurrently
from google.cloud.firestore import AsyncClient
from harness import Harness, linear

from shared.adapters.firestore_store import FirestoreStore
from shared.models import ExecutionStatus

pytestmark = [pytest.mark.emulator, pytest.mark.slow]

STARTS = 6
"""The emulator resolves contending transactions by lock waits of about a second each
(production Firestore aborts the younger one at once): a duplicated start costs ~2 s."""


@pytest.fixture
async def fh(firestore_project: str) -> AsyncIterator[Harness]:
    store = FirestoreStore(lambda: AsyncClient(project=firestore_project), max_attempts=50)
    harness = Harness(store)  # type: ignore[arg-type]
    try:
        yield harness
    finally:
        await harness.bus.close()
        await store.close()


async def status_of(h: Harness, execution_id: str) -> ExecutionStatus:
    execution = await h.store.get_execution(execution_id)
    assert execution is not None
    return execution.status


async def test_a_limit_of_3_holds_under_duplicated_starts_and_concurrent_deliveries(
    fh: Harness,
) -> None:
    """Each start is sent twice at once, then every task is delivered twice at once:
    the limit holds and every execution runs once. (The emulator serializes contended
    transactions by lock waits, seconds each: starts go one pair at a time.)"""
    probe = InFlightStep()
    fh.registry.register(probe)
    wf = await fh.create(
        linear({"id": "a", "type": "inflight"}, name="burst", concurrency=[{"limit": 3}])
    )
    counter = ActiveCounter()
    fh.store.add_listener(counter)
    ids = [str(uuid.uuid4()) for _ in range(STARTS)]
    for i, e in enumerate(ids):
        await asyncio.gather(*(fh.start(wf, {"i": i}, execution_id=e) for _ in range(2)))
    assert [await status_of(fh, e) for e in ids].count(ExecutionStatus.QUEUED) == STARTS - 3
    await drive_concurrently(fh, duplicates=2)
    assert {await status_of(fh, e) for e in ids} == {ExecutionStatus.SUCCEEDED}
    assert counter.max_active == 3
    assert probe.max_in_flight <= 3
    assert probe.calls == STARTS
    assert await fh.store.list_queued(None, 10) == []


async def test_cancelled_slots_come_back_and_priority_orders_the_queue(fh: Harness) -> None:
    spec: dict[str, Any] = {"limit": 1, "key": "input.customer"}
    wf = await fh.create(
        linear(
            {"id": "a", "type": "count"},
            name="prio",
            concurrency=[spec],
            priority="input.p",
        )
    )
    holder = await fh.start(wf, {"customer": "acme", "p": 0})
    low = await fh.start(wf, {"customer": "acme", "p": 1})
    fh.clock.advance(1)
    high = await fh.start(wf, {"customer": "acme", "p": 9})
    other = await fh.start(wf, {"customer": "beta", "p": 0})
    assert [low.status, high.status, other.status] == [
        ExecutionStatus.QUEUED,
        ExecutionStatus.QUEUED,
        ExecutionStatus.RUNNING,
    ]
    await fh.engine.cancel(holder.id)
    assert await status_of(fh, high.id) == ExecutionStatus.RUNNING
    assert await status_of(fh, low.id) == ExecutionStatus.QUEUED
    await fh.drain()
    for execution in (high, low, other):
        assert await status_of(fh, execution.id) == ExecutionStatus.SUCCEEDED
