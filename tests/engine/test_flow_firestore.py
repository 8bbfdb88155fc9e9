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
from flow_helpers import ActiveCounter, Deliveries, InFlightStep, drive_concurrently
from google.cloud.firestore import AsyncClient
from harness import Harness, linear

from shared.adapters.firestore_store import FirestoreStore
from shared.models import ExecutionStatus

pytestmark = [pytest.mark.emulator, pytest.mark.slow, pytest.mark.timeout(300)]

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


async def ran_once_unless_redelivered(
    h: Harness, ids: list[str], probe: InFlightStep, seen: Deliveries
) -> None:
    """Each execution's one run was recorded by exactly one delivery, and its step ran
    once per claim (``deliveries``), more than once only after a delivery of it failed
    (its completing transaction did not commit) and was redelivered."""
    claims = 0
    for e in ids:
        (run,) = await h.store.list_runs(e)
        assert seen.done[run.id] == 1
        assert probe.runs[run.id] == run.deliveries
        assert 1 <= run.deliveries <= 1 + seen.failed[run.id], (run.deliveries, seen.errors)
        claims += run.deliveries
    assert probe.calls == claims  # no call for anything else


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
    seen = await drive_concurrently(fh, duplicates=2)
    assert {await status_of(fh, e) for e in ids} == {ExecutionStatus.SUCCEEDED}
    assert counter.max_active == 3
    assert probe.max_in_flight <= 3
    await ran_once_unless_redelivered(fh, ids, probe, seen)
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


async def test_rate_limit_refuses_past_its_limit_on_firestore(fh: Harness) -> None:
    """The sliding window lives in a flowSlots document read and written in the start
    transaction: duplicated concurrent starts never create more than the limit."""
    from datetime import timedelta

    from harness import START

    from shared.errors import StartRateLimited

    wf = await fh.create(
        linear({"id": "a", "type": "count"}, name="rated", rateLimit={"limit": 2, "period": 60})
    )
    definition = await fh.app.get_workflow(wf)
    ids = [str(uuid.uuid4()) for _ in range(4)]
    answers = await asyncio.gather(
        *(fh.engine.start_execution(definition, input={}, execution_id=e) for e in ids * 2),
        return_exceptions=True,
    )
    created = [a for a in answers if not isinstance(a, BaseException) and a[1]]
    refused = [a for a in answers if isinstance(a, StartRateLimited)]
    assert len(created) == 2
    assert len(created) + len(refused) + sum(
        1 for a in answers if not isinstance(a, BaseException) and not a[1]
    ) == len(answers)
    fh.clock.set(START + timedelta(seconds=60))
    _, again = await fh.engine.start_execution(definition, input={})
    assert again


async def test_debounce_runs_the_last_start_once_on_firestore(fh: Harness) -> None:
    from datetime import timedelta

    from harness import START

    wf = await fh.create(
        linear(
            {"id": "a", "type": "transform", "config": {"output": "${input}"}},
            name="debounced",
            debounce={"period": 3},
        )
    )
    definition = await fh.app.get_workflow(wf)
    answers = []
    for n in range(3):
        fh.clock.set(START + timedelta(seconds=n))
        await fh.drain(advance=False)
        answers.append(await fh.engine.start_execution(definition, input={"n": n}))
    assert len({execution.id for execution, _ in answers}) == 1
    assert [created for _, created in answers] == [True, False, False]
    await fh.drain()
    done = await fh.app.get_execution(answers[0][0].id)
    assert done.status == ExecutionStatus.SUCCEEDED
    assert done.result == {"n": 2}


async def step_limit_of_2(h: Harness, starts: int) -> Deliveries:
    """``starts`` executions whose one step has a limit of 2, every task delivered twice
    at once: the limit holds, each succeeds, its run recorded once and never retried."""
    probe = InFlightStep()
    h.registry.register(probe)
    wf = await h.create(
        linear(
            {"id": "call", "type": "inflight", "concurrency": {"limit": 2, "key": "'api'"}},
            name="step-limit",
        )
    )
    ids = [(await h.start(wf, {"i": i})).id for i in range(starts)]
    seen = await drive_concurrently(h, duplicates=2)
    assert {await status_of(h, e) for e in ids} == {ExecutionStatus.SUCCEEDED}
    assert probe.max_in_flight <= 2
    await ran_once_unless_redelivered(h, ids, probe, seen)
    for e in ids:
        (run,) = await h.store.list_runs(e)
        assert run.attempt == 1 and "waiting" not in run.state  # waiting is no retry
    return seen


async def test_a_step_level_limit_of_2_holds_on_firestore(fh: Harness) -> None:
    """Step-level ``concurrency`` (issue 13): 5 executions. The slot is taken in the
    claim transaction; a run without one stays scheduled and comes back later. (Each
    pair of duplicated claims still waits out one emulator lock timeout, ~2 s: 15-30 s
    in all; before claims read one slot and retries spread out, 12-230 s, and once 50
    attempts of one transaction all timed out.)"""
    await step_limit_of_2(fh, 5)


async def test_contention_that_reaches_the_queue_is_redelivered(firestore_project: str) -> None:
    """One attempt per transaction: every lock timeout fails its delivery with Conflict
    (retryable), which the driver redelivers as Cloud Tasks would. The limit holds and
    a step runs again only after a delivery of it failed."""
    store = FirestoreStore(lambda: AsyncClient(project=firestore_project), max_attempts=1)
    h = Harness(store)  # type: ignore[arg-type]
    try:
        seen = await step_limit_of_2(h, 3)
    finally:
        await h.bus.close()
        await store.close()
    # Two deliveries of one run read and write its document: on the emulator they wait
    # for each other until a lock timeout, so contention did reach the queue.
    assert seen.redelivered > 0
    assert all(error.startswith("Contention") for error in seen.errors)
