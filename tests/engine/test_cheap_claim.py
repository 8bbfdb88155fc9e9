"""A cheap step delivered by its own task (transform, branch: no I/O) is read outside a
transaction, run, then claimed and recorded by one transaction (``Engine._read_cheap``):
one transaction per delivery instead of a claim and a commit. What the claim decided
must still hold: a duplicate delivery records nothing, an execution paused or cancelled
between the read and the commit writes nothing, and a step with I/O is claimed first."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import pytest
from harness import Harness, linear

from shared.models import ExecutionStatus, StepRunStatus
from shared.ports import ExecutionTx


def transform(step_id: str, value: int) -> dict[str, Any]:
    return {"id": step_id, "type": "transform", "config": {"set": {step_id: value}}}


FLOW = linear(transform("a", 1), transform("b", 2))


def count_transactions(h: Harness, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    counted = [0]
    real = h.store.run_transaction

    async def counting(fn: Callable[[ExecutionTx], Awaitable[Any]]) -> Any:
        counted[0] += 1
        return await real(fn)

    monkeypatch.setattr(h.store, "run_transaction", counting)
    return counted


async def test_a_cheap_delivery_is_one_transaction(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    execution = await h.start(await h.create(FLOW))
    (task,) = h.queue.take_due(h.clock.now())
    transactions = count_transactions(h, monkeypatch)
    await h.deliver(task)
    assert transactions == [1]  # was two: the claim, then the commit
    assert [r.status for r in h.results] == ["done"]
    done = await h.app.get_execution(execution.id)
    assert done.status == ExecutionStatus.SUCCEEDED
    assert done.variables == {"a": 1, "b": 2}
    events = await h.store.list_events(execution.id)
    assert [(e.type, e.step_id) for e in events] == [
        ("execution.started", None),
        # no step.started: claimed and recorded by one commit, like a chained step
        ("step.succeeded", "a"),
        ("step.succeeded", "b"),
        ("execution.succeeded", None),
    ]
    assert events[1].data == {"attempt": 1, "durationMs": 0.0}
    first = next(r for r in await h.runs(execution.id) if r.step_id == "a")
    assert (first.deliveries, first.status) == (1, StepRunStatus.SUCCEEDED)
    assert first.started_at is not None and first.lease_owner is None


async def test_a_claim_that_makes_a_waiting_execution_run_says_so(h: Harness) -> None:
    # The streams follow an execution's status from its events: a commit that claims a
    # cheap step of a waiting execution (it runs again) keeps the step.started that says
    # so, while a running execution's cheap steps get none.
    execution = await h.start(await h.create(FLOW))
    (task,) = h.queue.take_due(h.clock.now())

    async def waiting(tx: ExecutionTx) -> None:
        stored = await tx.get_execution(execution.id)
        assert stored is not None
        stored.status = ExecutionStatus.WAITING
        tx.put_execution(stored)

    await h.store.run_transaction(waiting)
    await h.deliver(task)
    assert [r.status for r in h.results] == ["done"]
    assert (await h.app.get_execution(execution.id)).status == ExecutionStatus.SUCCEEDED
    assert await h.event_types(execution.id) == [
        "execution.started",
        "step.started",
        "step.succeeded",
        "step.succeeded",
        "execution.succeeded",
    ]


async def test_duplicate_deliveries_at_once_record_the_step_once(h: Harness) -> None:
    # a step with I/O after the chain: the execution still runs after the first commit
    flow = linear(transform("a", 1), transform("b", 2), {"id": "c", "type": "count"})
    execution = await h.start(await h.create(flow))
    (task,) = h.queue.take_due(h.clock.now())
    await h.deliver(task, times=3, concurrent=True)
    assert sorted(r.status for r in h.results) == ["done", "duplicate", "duplicate"]
    assert await h.event_types(execution.id) == [
        "execution.started",
        "step.succeeded",
        "step.succeeded",
    ]
    assert await h.statuses(execution.id) == [
        ("a", "succeeded"),
        ("b", "succeeded"),
        ("c", "scheduled"),
    ]
    assert [r.deliveries for r in await h.runs(execution.id)] == [1, 1, 0]
    assert len(h.queue.take_due(h.clock.now())) == 1  # one task for c, not three


@pytest.mark.parametrize("control", ["pause", "cancel"])
async def test_an_execution_paused_or_cancelled_after_the_read_records_nothing(
    h: Harness, monkeypatch: pytest.MonkeyPatch, control: str
) -> None:
    execution = await h.start(await h.create(FLOW))
    (task,) = h.queue.take_due(h.clock.now())
    real = h.engine._read_cheap

    async def read_then_control(*args: Any) -> Any:
        read = await real(*args)
        assert read is not None  # the step was read as cheap...
        await getattr(h.app, control)(execution.id)  # ...then the execution changed
        return read

    monkeypatch.setattr(h.engine, "_read_cheap", read_then_control)
    await h.deliver(task)
    monkeypatch.undo()
    assert [r.status for r in h.results] == ["paused" if control == "pause" else "duplicate"]
    runs = await h.runs(execution.id)
    assert [(r.step_id, r.deliveries) for r in runs] == [("a", 0)]
    assert "step.started" not in await h.event_types(execution.id)
    if control == "pause":
        await h.app.resume(execution.id)
        await h.drain()
        done = await h.app.get_execution(execution.id)
        assert done.status == ExecutionStatus.SUCCEEDED and done.variables == {"a": 1, "b": 2}
        assert (await h.event_types(execution.id)).count("step.started") == 1
    else:
        assert (await h.app.get_execution(execution.id)).status == ExecutionStatus.CANCELLED


async def test_a_run_claimed_by_another_delivery_after_the_read_is_left_to_it(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    execution = await h.start(await h.create(FLOW))
    (task,) = h.queue.take_due(h.clock.now())
    real = h.engine._read_cheap
    other: list[Any] = []

    async def read_then_claimed(*args: Any) -> Any:
        read = await real(*args)
        other.append(await h.engine._claim(task, "another-worker"))  # it holds the lease
        return read

    monkeypatch.setattr(h.engine, "_read_cheap", read_then_claimed)
    await h.deliver(task)
    assert [r.status for r in h.results] == ["busy"]  # the claim it fell back to says so
    (run,) = await h.runs(execution.id)
    assert (run.status, run.lease_owner, run.deliveries) == (
        StepRunStatus.RUNNING,
        "another-worker",
        1,
    )
    assert (await h.event_types(execution.id)).count("step.started") == 1


async def test_a_step_with_io_is_claimed_before_it_runs(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    execution = await h.start(await h.create(linear({"id": "c", "type": "count"})))
    (task,) = h.queue.take_due(h.clock.now())
    assert task.cheap is False
    transactions = count_transactions(h, monkeypatch)
    await h.deliver(replace(task, cheap=True))  # even with a forged or stale hint
    assert transactions == [2]  # the claim (its lease guards the I/O), then the commit
    assert (await h.app.get_execution(execution.id)).status == ExecutionStatus.SUCCEEDED
    assert sum(h.counter.calls.values()) == 1


async def test_a_task_without_the_hint_is_claimed_as_before(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sweeper's and a resume's tasks carry no hint: the claim, then the commit (and
    nothing read before the claim)."""
    execution = await h.start(await h.create(FLOW))
    (task,) = h.queue.take_due(h.clock.now())
    assert task.cheap is True  # the start's task for a cheap first step
    transactions = count_transactions(h, monkeypatch)
    reads: list[str] = []
    real_get_run = h.store.get_run

    async def get_run(run_id: str) -> Any:
        reads.append(run_id)
        return await real_get_run(run_id)

    monkeypatch.setattr(h.store, "get_run", get_run)
    await h.deliver(replace(task, cheap=False))
    assert transactions == [2] and reads == []
    assert (await h.app.get_execution(execution.id)).status == ExecutionStatus.SUCCEEDED
