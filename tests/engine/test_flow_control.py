"""Flow control in the engine: concurrency keys, the queued status, priority, slots
that come back when their holder ends, and the sweeper's backstop (memory and SQLite;
the Firestore emulator runs the same scenarios in tests/contract/test_flow_firestore.py)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flow_helpers import ActiveCounter, InFlightStep, drive_concurrently
from harness import Harness, linear

from shared.adapters.sqlite_store import SqliteStore
from shared.errors import DefinitionInvalid, InputInvalid, InvalidState
from shared.models import ExecutionStatus, StepRunStatus
from shared.ports import ExecutionTx


def limited(limit: int = 3, **extra: Any) -> dict[str, Any]:
    return linear(
        {"id": "a", "type": "count"},
        {"id": "b", "type": "transform", "config": {"set": {"done": True}}},
        name=extra.pop("name", "limited"),
        concurrency=extra.pop("concurrency", [{"limit": limit}]),
        **extra,
    )


async def status_of(h: Harness, execution_id: str) -> ExecutionStatus:
    execution = await h.store.get_execution(execution_id)
    assert execution is not None
    return execution.status


async def test_a_fourth_start_queues_and_runs_when_a_slot_frees(h: Harness) -> None:
    wf = await h.create(limited(3))
    started = [await h.start(wf, {"n": i}) for i in range(5)]
    assert [e.status for e in started] == [ExecutionStatus.RUNNING] * 3 + [
        ExecutionStatus.QUEUED
    ] * 2
    queued = await h.app.get_execution(started[3].id)
    assert queued.queue is not None
    assert queued.queue.reason == "waiting for concurrency slot"
    assert await h.event_types(started[3].id) == ["execution.queued"]
    # No task exists for a queued execution: only the three running ones have one.
    assert {t.execution_id for t in h.queue.tasks} == {e.id for e in started[:3]}
    await h.drain()
    for execution in started:
        assert await status_of(h, execution.id) == ExecutionStatus.SUCCEEDED
    types = await h.event_types(started[4].id)
    assert types[:2] == ["execution.queued", "execution.dequeued"]


async def test_keys_are_evaluated_per_input_and_shown_in_the_reason(h: Harness) -> None:
    wf = await h.create(limited(concurrency=[{"limit": 1, "key": "input.customer"}]))
    a1 = await h.start(wf, {"customer": "acme"})
    b1 = await h.start(wf, {"customer": "beta"})
    a2 = await h.start(wf, {"customer": "acme"})
    assert (a1.status, b1.status, a2.status) == (
        ExecutionStatus.RUNNING,
        ExecutionStatus.RUNNING,
        ExecutionStatus.QUEUED,
    )
    assert a2.queue is not None
    assert a2.queue.reason == "waiting for concurrency slot key=acme"
    assert a2.queue.key == "acme"
    await h.drain()
    assert await status_of(h, a2.id) == ExecutionStatus.SUCCEEDED


@pytest.mark.parametrize(
    ("end", "code"),
    [("cancel", "CANCELLED"), ("fail", "BOOM"), ("timeout", "EXECUTION_TIMEOUT")],
)
async def test_slots_of_ended_executions_come_back(h: Harness, end: str, code: str) -> None:
    extra: dict[str, Any] = {"timeoutSeconds": 30} if end == "timeout" else {}
    wf = await h.create(limited(1, **extra))
    holder = await h.start(wf)
    waiting = await h.start(wf)
    assert waiting.status == ExecutionStatus.QUEUED
    if end == "cancel":
        await h.engine.cancel(holder.id)
    elif end == "fail":
        h.counter.fail_codes["a"] = ("BOOM", False)
        mine = [t for t in h.queue.tasks if t.execution_id == holder.id]
        h.queue.tasks = [t for t in h.queue.tasks if t not in mine]
        for task in mine:
            await h.deliver(task)
        h.counter.fail_codes.clear()
    else:
        # The holder's first delivery comes after its deadline: it times out.
        h.clock.advance(31)
        await h.drain(advance=False)
    ended = await h.app.get_execution(holder.id)
    assert ended.status.terminal and ended.error_info is not None
    assert ended.error_info.code == code
    assert await status_of(h, waiting.id) != ExecutionStatus.QUEUED
    await h.drain()
    assert await status_of(h, waiting.id) == ExecutionStatus.SUCCEEDED


async def test_a_queued_execution_keeps_its_time_limit_until_it_starts(h: Harness) -> None:
    wf = await h.create(limited(1, timeoutSeconds=30))
    holder = await h.start(wf)
    waiting = await h.start(wf)
    assert waiting.deadline is None
    h.clock.advance(3600)  # an hour in the queue is not a timeout
    await h.engine.cancel(holder.id)
    started = await h.app.get_execution(waiting.id)
    assert started.status == ExecutionStatus.RUNNING
    assert started.deadline == h.clock.now() + timedelta(seconds=30)


async def test_higher_priority_leaves_the_queue_first_then_fifo(h: Harness) -> None:
    wf = await h.create(limited(1, priority="input.p"))
    started = []
    for p in (0, 1, 5, 5, 10**9):  # FIFO is by queued time (ties: by id), so time moves
        started.append(await h.start(wf, {"p": p}))
        h.clock.advance(1)
    holder, low, high_a, high_b, clamped = started
    assert clamped.queue is not None and clamped.queue.priority == 1000
    order: list[str] = []

    def listen(events: list[Any]) -> None:
        order.extend(e.execution_id for e in events if e.type == "execution.dequeued")

    h.store.add_listener(listen)
    await h.drain()
    assert order == [clamped.id, high_a.id, high_b.id, low.id]
    assert await status_of(h, holder.id) == ExecutionStatus.SUCCEEDED


async def test_tenant_scope_is_shared_across_workflows_not_across_tenants(h: Harness) -> None:
    spec = [{"limit": 1, "key": "'shared-api'", "scope": "tenant"}]
    wf1 = await h.create(limited(name="one", concurrency=spec))
    wf2 = await h.create(limited(name="two", concurrency=spec))
    first = await h.start(wf1)
    second = await h.start(wf2)
    assert (first.status, second.status) == (ExecutionStatus.RUNNING, ExecutionStatus.QUEUED)
    definition = await h.store.get_workflow(wf2, "default")
    assert definition is not None
    other, _ = await h.engine.start_execution(definition, tenant="other")
    assert other.status == ExecutionStatus.RUNNING  # another tenant's slots are its own
    await h.drain()
    assert await status_of(h, second.id) == ExecutionStatus.SUCCEEDED


async def test_a_bad_key_value_refuses_the_start_and_writes_nothing(h: Harness) -> None:
    wf = await h.create(limited(concurrency=[{"limit": 1, "key": "input.k"}]))
    for bad in ({"k": [1]}, {"k": True}, {"k": "x" * 300}, {}):
        with pytest.raises(InputInvalid) as info:
            await h.start(wf, bad)
        assert info.value.code == "CONCURRENCY_KEY_INVALID"
        assert info.value.path == "/concurrency/0/key"
    assert h.queue.tasks == []
    assert (await h.start(wf, {"k": 7})).status == ExecutionStatus.RUNNING


@pytest.mark.parametrize(
    ("patch", "code", "path"),
    [
        ({"concurrency": [{"limit": 0}]}, "INVALID_VALUE", "/concurrency/0/limit"),
        ({"concurrency": [{"limit": 1001}]}, "INVALID_VALUE", "/concurrency/0/limit"),
        ({"concurrency": [{"limit": 1}] * 3}, "TOO_LONG", "/concurrency"),
        ({"concurrency": [{"limit": 1, "key": "vars.x"}]}, "EXPRESSION_UNKNOWN_VARIABLE", None),
        ({"concurrency": [{"limit": 1, "key": "input.("}]}, "EXPRESSION_SYNTAX", None),
        ({"concurrency": [{"limit": 1, "scope": "galaxy"}]}, "INVALID_VALUE", None),
        ({"concurrency": [{"limit": 1}, {"limit": 2}]}, "DUPLICATE_CONCURRENCY_KEY", None),
        ({"priority": "vars.p"}, "EXPRESSION_UNKNOWN_VARIABLE", "/priority"),
    ],
)
async def test_flow_fields_are_validated_at_save_time(
    h: Harness, patch: dict[str, Any], code: str, path: str | None
) -> None:
    raw = {**limited(), **patch}
    with pytest.raises(DefinitionInvalid) as info:
        await h.app.create_workflow(raw)
    issue = info.value.issues[0]
    assert issue.code == code
    assert issue.path == (path or issue.path)
    assert issue.path.startswith(("/concurrency", "/priority"))


async def test_a_queued_execution_cannot_be_paused_but_can_be_cancelled(h: Harness) -> None:
    wf = await h.create(limited(1))
    await h.start(wf)
    waiting = await h.start(wf)
    with pytest.raises(InvalidState):
        await h.engine.pause(waiting.id)
    cancelled = await h.engine.cancel(waiting.id)
    assert cancelled.status == ExecutionStatus.CANCELLED
    assert cancelled.queue is not None and cancelled.queue.reason is None
    runs = await h.runs(waiting.id)
    assert runs and all(r.status == StepRunStatus.CANCELLED for r in runs)
    await h.drain()


async def test_redrive_takes_a_slot_again_or_queues(h: Harness) -> None:
    wf = await h.create(limited(1))
    h.counter.fail_codes["a"] = ("BOOM", False)
    failed = await h.start(wf)
    await h.drain()
    h.counter.fail_codes.clear()
    assert await status_of(h, failed.id) == ExecutionStatus.FAILED
    holder = await h.start(wf)
    assert holder.status == ExecutionStatus.RUNNING
    redriven = await h.engine.redrive(failed.id)
    assert redriven.status == ExecutionStatus.QUEUED  # its slot went to ``holder``
    assert not [t for t in h.queue.tasks if t.execution_id == failed.id]
    await h.drain()
    assert await status_of(h, failed.id) == ExecutionStatus.SUCCEEDED
    again = await h.start(wf)
    assert again.status == ExecutionStatus.RUNNING  # every slot came back
    await h.drain()


async def test_a_slot_whose_holder_ended_without_release_comes_back(h: Harness) -> None:
    """Self-healing: a holder that ended without freeing its slot (a bug, a restored
    backup) does not block the key: the next start, and the sweeper, see it free."""
    wf = await h.create(limited(1))
    holder = await h.start(wf)
    waiting = await h.start(wf)

    async def end_without_release(tx: ExecutionTx) -> None:
        execution = await tx.get_execution(holder.id)
        assert execution is not None
        execution.status = ExecutionStatus.SUCCEEDED
        tx.put_execution(execution)

    await h.store.run_transaction(end_without_release)
    assert await status_of(h, waiting.id) == ExecutionStatus.QUEUED
    await h.engine.sweep()
    assert await status_of(h, waiting.id) == ExecutionStatus.RUNNING
    await h.drain()
    assert await status_of(h, waiting.id) == ExecutionStatus.SUCCEEDED


async def test_a_limit_of_3_never_sees_a_fourth_active_execution(h: Harness) -> None:
    """500 concurrent starts, each sent twice (duplicate deliveries of the start), every
    task delivered twice at once: at most 3 active executions and 3 steps in flight."""
    probe = InFlightStep()
    h.registry.register(probe)
    wf = await h.create(
        linear({"id": "a", "type": "inflight"}, name="burst", concurrency=[{"limit": 3}])
    )
    counter = ActiveCounter()
    h.store.add_listener(counter)
    ids = [str(uuid.uuid4()) for _ in range(500)]
    await asyncio.gather(*(h.start(wf, {"i": i}, execution_id=e) for i, e in enumerate(ids)))
    await asyncio.gather(*(h.start(wf, {"i": i}, execution_id=e) for i, e in enumerate(ids)))
    await drive_concurrently(h, duplicates=2)
    statuses = {await status_of(h, e) for e in ids}
    assert statuses == {ExecutionStatus.SUCCEEDED}
    assert counter.max_active == 3
    assert probe.max_in_flight <= 3
    assert probe.calls == 500
    assert counter.active == set()


async def test_queued_executions_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "flow.db"
    first = Harness(SqliteStore(path))
    wf = await first.create(limited(1))
    holder = await first.start(wf)
    waiting = [await first.start(wf, {"n": n}) for n in range(3)]
    await first.bus.close()
    await first.store.close()

    second = Harness(SqliteStore(path))
    try:
        for execution in waiting:
            assert await status_of(second, execution.id) == ExecutionStatus.QUEUED
        assert len(await second.store.list_queued(None, 10)) == 3
        await second.engine.recover()  # the dead process's tasks are re-enqueued
        await second.drain()
        assert await status_of(second, holder.id) == ExecutionStatus.SUCCEEDED
        for execution in waiting:
            assert await status_of(second, execution.id) == ExecutionStatus.SUCCEEDED
    finally:
        await second.bus.close()
        await second.store.close()
