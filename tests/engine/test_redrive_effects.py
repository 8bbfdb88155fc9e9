"""Redrive does not double a side effect (issue 11, item 1).

One parallel branch fails while the other's HTTP call is in flight: the execution
ends and cancels that run, the call still lands, and its outcome is dropped. A redrive
runs the step again; it must send the same ``Idempotency-Key`` so the service, which
dedupes on it, applies the effect once. A visit a redrive already completed is not run
again by the next redrive.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
from effect_counter import EffectCounter
from harness import Harness

from shared.adapters.memory_store import MemoryStore
from shared.adapters.sqlite_store import SqliteStore
from shared.models import ExecutionStatus, StepRunStatus
from shared.ports import StepTask
from shared.steps.http import HttpGateway


def workflow(url: str) -> dict[str, object]:
    return {
        "name": "charge-and-ship",
        "steps": [
            {
                "id": "fan",
                "type": "parallel",
                "config": {
                    "branches": [
                        {"name": "ship", "start": "ship"},
                        {"name": "pay", "start": "pay"},
                    ]
                },
            },
            {"id": "ship", "type": "http", "config": {"method": "POST", "url": f"{url}/ship"}},
            {
                "id": "pay",
                "type": "http",
                "config": {"method": "POST", "url": f"{url}/charge", "body": {"amount": 5}},
            },
        ],
    }


@pytest.fixture
async def counter() -> AsyncIterator[EffectCounter]:
    async with EffectCounter() as server:
        yield server


@pytest.fixture(params=["memory", "sqlite"])
async def hc(
    request: pytest.FixtureRequest, tmp_path: Path, counter: EffectCounter
) -> AsyncIterator[Harness]:
    store = MemoryStore() if request.param == "memory" else SqliteStore(tmp_path / "e.db")
    gateway = HttpGateway(allowed_hosts=frozenset({f"127.0.0.1:{counter.port}"}))
    harness = Harness(store, http=gateway)
    try:
        yield harness
    finally:
        await gateway.aclose()
        await harness.bus.close()
        await store.close()


async def step_of(h: Harness, task: StepTask) -> str:
    run = await h.store.get_run(task.run_id)
    assert run is not None
    return run.step_id


async def start_branches(h: Harness) -> None:
    """Deliver the fan-out's task: both branches are scheduled, neither runs yet."""
    (task,) = h.queue.take_due(h.clock.now())
    await h.deliver(task)
    assert len(h.queue.tasks) == 2


async def ship_fails_while_pay_is_in_flight(h: Harness, counter: EffectCounter) -> str:
    """Deliver the due tasks so that ``ship`` fails while ``pay``'s call is held open;
    returns the status of ``pay``'s delivery (its outcome comes after the end)."""
    tasks = h.queue.take_due(h.clock.now())
    by_step = {await step_of(h, t): t for t in tasks}
    counter.gate.clear()
    counter.arrived.clear()
    pay = asyncio.create_task(h.engine.handle_task(by_step["pay"]))
    await asyncio.wait_for(counter.arrived.wait(), 10)
    await h.deliver(by_step["ship"])
    counter.gate.set()
    return (await pay).status


async def test_redrive_sends_the_cut_off_call_with_its_key(
    hc: Harness, counter: EffectCounter
) -> None:
    execution = await hc.start(await hc.create(workflow(counter.url)))
    await start_branches(hc)
    assert await ship_fails_while_pay_is_in_flight(hc, counter) == "lost_lease"
    assert (await hc.app.get_execution(execution.id)).status == ExecutionStatus.FAILED
    assert counter.effects == 1, "the cancelled call landed"
    cancelled = [r for r in await hc.runs(execution.id) if r.step_id == "pay"]
    assert [r.status for r in cancelled] == [StepRunStatus.CANCELLED]

    counter.ship_status = 200  # the operator repaired the shipping service
    await hc.app.redrive(execution.id)
    await hc.drain()
    done = await hc.app.get_execution(execution.id)
    assert done.status == ExecutionStatus.SUCCEEDED
    assert counter.effects == 1, f"one charge, not {counter.effects}: {counter.keys}"
    assert sum(counter.keys.values()) == 2, "the call was sent again, with the same key"
    pays = [r for r in await hc.runs(execution.id) if r.step_id == "pay"]
    assert [(r.generation, r.status.value) for r in pays] == [(0, "cancelled"), (1, "succeeded")]
    assert len({r.idempotency_key for r in pays}) == 1


async def test_a_definite_failure_gets_a_new_key_on_redrive(
    hc: Harness, counter: EffectCounter
) -> None:
    """A 404 is an answer the service may have stored under the key: the redriven
    call is a new request."""
    execution = await hc.start(await hc.create(workflow(counter.url)))
    await hc.drain()
    assert (await hc.app.get_execution(execution.id)).status == ExecutionStatus.FAILED
    counter.ship_status = 200
    await hc.app.redrive(execution.id)
    await hc.drain()
    assert (await hc.app.get_execution(execution.id)).status == ExecutionStatus.SUCCEEDED
    ships = [r for r in await hc.runs(execution.id) if r.step_id == "ship"]
    assert [r.status.value for r in ships] == ["failed", "succeeded"]
    assert ships[0].idempotency_key != ships[1].idempotency_key
    assert counter.effects == 1, "pay succeeded before the redrive and is not run again"


@pytest.mark.parametrize("seed", range(6))
async def test_repeated_redrives_under_chaos_apply_the_effect_once(
    hc: Harness, counter: EffectCounter, seed: int
) -> None:
    """Rounds of: ship fails with pay in flight, or after pay landed, with duplicate
    deliveries; then a redrive. The effect stays one; the last redrive succeeds. (Before
    the fix every redrive of a cut-off call added one effect.)"""
    rng = random.Random(seed)
    execution = await hc.start(await hc.create(workflow(counter.url)))
    await start_branches(hc)
    for _ in range(5):
        if rng.random() < 0.7 and len(hc.queue.tasks) == 2:
            await ship_fails_while_pay_is_in_flight(hc, counter)
        await hc.drain(times=rng.choice([1, 2]), concurrent=rng.random() < 0.5)
        current = await hc.app.get_execution(execution.id)
        assert current.status == ExecutionStatus.FAILED
        assert counter.effects <= 1, counter.keys  # 0 when ship failed before pay ran
        await hc.app.redrive(execution.id)
    counter.ship_status = 200  # repaired before the last redrive's runs are delivered
    await hc.drain(times=rng.choice([1, 2]), concurrent=rng.random() < 0.5)
    assert (await hc.app.get_execution(execution.id)).status == ExecutionStatus.SUCCEEDED
    assert counter.effects == 1, counter.keys
    pays = [r for r in await hc.runs(execution.id) if r.step_id == "pay"]
    assert [r.status for r in pays].count(StepRunStatus.SUCCEEDED) == 1


async def test_a_visit_a_redrive_completed_is_not_run_by_the_next(
    hc: Harness, counter: EffectCounter
) -> None:
    execution = await hc.start(await hc.create(workflow(counter.url)))
    await start_branches(hc)
    await ship_fails_while_pay_is_in_flight(hc, counter)
    await hc.app.redrive(execution.id)  # ship and the cut-off pay again
    by_step = {await step_of(hc, t): t for t in hc.queue.take_due(hc.clock.now())}
    await hc.deliver(by_step["pay"])  # pay completes first this time
    await hc.deliver(by_step["ship"])  # then ship fails again
    assert (await hc.app.get_execution(execution.id)).status == ExecutionStatus.FAILED
    counter.ship_status = 200
    await hc.app.redrive(execution.id)
    await hc.drain()
    assert (await hc.app.get_execution(execution.id)).status == ExecutionStatus.SUCCEEDED
    pays = [
        (r.generation, r.status.value) for r in await hc.runs(execution.id) if r.step_id == "pay"
    ]
    assert pays == [(0, "cancelled"), (1, "succeeded")], "the second redrive ran ship only"
    assert sum(counter.keys.values()) == 2 and counter.effects == 1


async def test_pause_and_resume_around_a_running_http_step(
    hc: Harness, counter: EffectCounter
) -> None:
    """Paused while its call is held open: the answer is recorded, the cheap step after
    it is not left leased, and the resume finishes the execution with one effect."""
    hc.engine.settings = replace(hc.engine.settings, chain_commit_steps=1)
    execution = await hc.start(
        await hc.create(
            {
                "name": "pay-then-note",
                "steps": [
                    {
                        "id": "pay",
                        "type": "http",
                        "nextSteps": ["note"],
                        "config": {"method": "POST", "url": f"{counter.url}/charge"},
                    },
                    {"id": "note", "type": "transform", "config": {"output": "${prev.status}"}},
                ],
            }
        )
    )
    (task,) = hc.queue.take_due(hc.clock.now())
    counter.gate.clear()
    delivery = asyncio.create_task(hc.engine.handle_task(task))
    await asyncio.wait_for(counter.arrived.wait(), 10)
    await hc.app.pause(execution.id)
    counter.gate.set()
    assert (await delivery).status == "done"
    statuses = await hc.statuses(execution.id)
    assert statuses == [("pay", "succeeded"), ("note", "scheduled")]
    await hc.drain()
    assert (await hc.app.get_execution(execution.id)).status == ExecutionStatus.PAUSED
    assert (await hc.app.resume(execution.id)).status == ExecutionStatus.RUNNING
    await hc.drain()
    done = await hc.app.get_execution(execution.id)
    assert done.status == ExecutionStatus.SUCCEEDED and done.result == 200
    assert counter.effects == 1


async def test_a_call_cut_off_inside_a_nested_fan_out_keeps_its_key(
    hc: Harness, counter: EffectCounter
) -> None:
    """The cut-off call sits in a parallel inside the branch: redrive reopens that inner
    parallel where it stood (same run, same scope) instead of fanning out anew, so the
    call's visit, and its key, are the same."""
    definition = workflow(counter.url)
    steps = definition["steps"]
    assert isinstance(steps, list)
    steps[0]["config"]["branches"][1] = {"name": "money", "start": "inner"}
    steps.append(
        {
            "id": "inner",
            "type": "parallel",
            "config": {"branches": [{"name": "pay", "start": "pay"}]},
        }
    )
    execution = await hc.start(await hc.create(definition))
    await start_branches(hc)  # the inner parallel (no I/O) fans out in the same commit
    assert {await step_of(hc, t) for t in hc.queue.tasks} == {"pay", "ship"}
    assert await ship_fails_while_pay_is_in_flight(hc, counter) == "lost_lease"
    assert counter.effects == 1
    counter.ship_status = 200
    await hc.app.redrive(execution.id)
    await hc.drain()
    assert (await hc.app.get_execution(execution.id)).status == ExecutionStatus.SUCCEEDED
    assert counter.effects == 1, counter.keys
    inner = [r for r in await hc.runs(execution.id) if r.step_id == "inner"]
    assert [r.status.value for r in inner] == ["succeeded"], "reopened, not run again"
