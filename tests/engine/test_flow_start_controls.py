"""Start controls in the engine: singleton, rateLimit, throttle and debounce (flow
control part 3), on memory and SQLite; the Firestore emulator runs rateLimit and
debounce in tests/engine/test_flow_firestore.py."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from flow_helpers import ActiveCounter, drive_concurrently
from harness import START, Harness, linear

from shared.api.errors import error_response
from shared.errors import StartRateLimited
from shared.models import ExecutionEvent, ExecutionStatus, StepRunStatus, WorkflowExecution


def flow(name: str, **controls: Any) -> dict[str, Any]:
    return linear(
        {"id": "a", "type": "count"},
        {"id": "b", "type": "transform", "config": {"output": "${input}"}},
        name=name,
        **controls,
    )


async def start(
    h: Harness, workflow_id: str, data: dict[str, Any] | None = None, **kwargs: Any
) -> tuple[WorkflowExecution, bool]:
    """The engine's start (the answer the triggers see: execution and created)."""
    definition = await h.app.get_workflow(workflow_id)
    return await h.engine.start_execution(definition, input=data or {}, **kwargs)


class StartTimes:
    """A store listener: when each execution started running (started or dequeued)."""

    def __init__(self) -> None:
        self.at: dict[str, datetime] = {}

    def __call__(self, events: list[ExecutionEvent]) -> None:
        for event in events:
            if event.type in ("execution.started", "execution.dequeued"):
                self.at[event.execution_id] = event.at

    def offsets(self, ids: list[str]) -> list[float]:
        return [(self.at[i] - START).total_seconds() for i in ids]


async def status_of(h: Harness, execution_id: str) -> ExecutionStatus:
    execution = await h.store.get_execution(execution_id)
    assert execution is not None
    return execution.status


# -- throttle ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("burst", "expected"),
    [
        (None, [0, 0, 5, 10, 15, 20, 25, 30, 35, 40]),
        (1, [0, 5, 10, 15, 20, 25, 30, 35, 40, 45]),
        (3, [0, 0, 0, 5, 10, 15, 20, 25, 30, 35]),
    ],
)
async def test_throttle_delays_excess_starts_to_their_gcra_times_in_order(
    h: Harness, burst: int | None, expected: list[float]
) -> None:
    throttle: dict[str, Any] = {"limit": 2, "period": "10s"}
    if burst is not None:
        throttle["burst"] = burst
    wf = await h.create(flow("throttled", throttle=throttle))
    times = StartTimes()
    h.store.add_listener(times)
    started = [(await start(h, wf, {"n": n}))[0] for n in range(10)]
    held = [e for e in started if e.status == ExecutionStatus.QUEUED]
    assert len(held) == 10 - expected.count(0)
    assert held[0].queue is not None and held[0].queue.reason is not None
    assert held[0].queue.reason.startswith("throttled until ")
    await h.drain()
    ids = [e.id for e in started]
    assert times.offsets(ids) == expected
    for execution in started:
        assert await status_of(h, execution.id) == ExecutionStatus.SUCCEEDED
    assert len(h.counter.calls) == 10  # delayed, never dropped


async def test_throttle_keys_are_independent_and_named_in_the_reason(h: Harness) -> None:
    wf = await h.create(
        flow("throttled-keys", throttle={"limit": 1, "period": 60, "key": "input.customer"})
    )
    a1, _ = await start(h, wf, {"customer": "acme"})
    b1, _ = await start(h, wf, {"customer": "beta"})
    a2, _ = await start(h, wf, {"customer": "acme"})
    assert (a1.status, b1.status, a2.status) == (
        ExecutionStatus.RUNNING,
        ExecutionStatus.RUNNING,
        ExecutionStatus.QUEUED,
    )
    assert a2.queue is not None
    assert (
        a2.queue.reason == f"throttled until {(START + timedelta(seconds=60)).isoformat()} key=acme"
    )
    assert a2.queue.not_before == START + timedelta(seconds=60)


async def test_a_throttled_execution_then_waits_for_a_concurrency_slot(h: Harness) -> None:
    wf = await h.create(
        flow("throttled-limited", throttle={"limit": 1, "period": 1}, concurrency=[{"limit": 1}])
    )
    h.counter.delay = 0.0
    times = StartTimes()
    h.store.add_listener(times)
    first, _ = await start(h, wf)
    second, _ = await start(h, wf)
    assert second.status == ExecutionStatus.QUEUED
    # The first one's step does not finish before the second's timer: park its task.
    tasks = list(h.queue.tasks)
    h.queue.tasks = [t for t in tasks if t.execution_id != first.id]
    h.clock.set(START + timedelta(seconds=1))
    await h.drain(advance=False)
    waiting = await h.app.get_execution(second.id)
    assert waiting.status == ExecutionStatus.QUEUED
    assert waiting.queue is not None
    assert waiting.queue.reason == "waiting for concurrency slot"
    h.queue.tasks.extend(t for t in tasks if t.execution_id == first.id)
    await h.drain()
    assert await status_of(h, second.id) == ExecutionStatus.SUCCEEDED
    assert times.at[second.id] > times.at[first.id]


# -- debounce ------------------------------------------------------------------------


async def test_debounce_runs_only_the_last_start_with_its_input(h: Harness) -> None:
    """Five starts one second apart, period 3 s: one execution, run at 4 + 3 = 7 s."""
    wf = await h.create(flow("debounced", debounce={"period": 3}))
    times = StartTimes()
    h.store.add_listener(times)
    answers = []
    for n in range(5):
        h.clock.set(START + timedelta(seconds=n))
        await h.drain(advance=False)  # deliver what is due: the timer is early each time
        answers.append(await start(h, wf, {"n": n}, trigger={"type": "event", "n": n}))
    ids = {execution.id for execution, _ in answers}
    assert len(ids) == 1
    assert [created for _, created in answers] == [True, False, False, False, False]
    (execution_id,) = ids
    pending = await h.app.get_execution(execution_id)
    assert pending.status == ExecutionStatus.QUEUED
    assert pending.input == {"n": 4}
    assert pending.queue is not None and pending.queue.reason is not None
    assert pending.queue.reason.startswith("debounced until ")
    await h.drain()
    done = await h.app.get_execution(execution_id)
    assert done.status == ExecutionStatus.SUCCEEDED
    assert done.result == {"n": 4}
    assert done.trigger == {"type": "event", "n": 4}
    assert times.offsets([execution_id]) == [7.0]
    assert sum(h.counter.calls.values()) == 1
    types = await h.event_types(execution_id)
    assert types.count("execution.debounced") == 4
    assert len((await h.app.list_executions(workflow_id=wf)).items) == 1


async def test_debounce_starts_again_after_the_period_and_per_key(h: Harness) -> None:
    wf = await h.create(flow("debounced-keys", debounce={"period": "2s", "key": "input.k"}))
    a1, _ = await start(h, wf, {"k": "a", "n": 1})
    b1, _ = await start(h, wf, {"k": "b", "n": 1})
    assert a1.id != b1.id
    await h.drain()  # both run at 2 s
    assert await status_of(h, a1.id) == ExecutionStatus.SUCCEEDED
    a2, created = await start(h, wf, {"k": "a", "n": 2})
    assert created and a2.id != a1.id
    await h.drain()
    assert (await h.app.get_execution(a2.id)).result == {"k": "a", "n": 2}


async def test_a_cancelled_debounced_execution_lets_the_next_start_create_one(
    h: Harness,
) -> None:
    wf = await h.create(flow("debounced-cancel", debounce={"period": 5}))
    first, _ = await start(h, wf, {"n": 1})
    await h.engine.cancel(first.id)
    runs = await h.runs(first.id)
    assert all(r.status == StepRunStatus.CANCELLED for r in runs)
    second, created = await start(h, wf, {"n": 2})
    assert created and second.id != first.id
    await h.drain()
    assert await status_of(h, first.id) == ExecutionStatus.CANCELLED
    assert await status_of(h, second.id) == ExecutionStatus.SUCCEEDED
    assert sum(h.counter.calls.values()) == 1


# -- rateLimit -----------------------------------------------------------------------


async def test_rate_limit_refuses_with_a_code_and_retry_after(h: Harness) -> None:
    wf = await h.create(flow("rated", rateLimit={"limit": 3, "period": "1m"}))
    for n in range(3):
        assert (await start(h, wf, {"n": n}))[1]
    h.clock.set(START + timedelta(seconds=20))
    with pytest.raises(StartRateLimited) as refused:
        await start(h, wf, {"n": 3})
    assert refused.value.code == "RATE_LIMITED"
    assert refused.value.retryable
    assert refused.value.details["retryAfterSeconds"] == 40
    response = error_response(refused.value)
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "40"
    h.clock.set(START + timedelta(seconds=60))
    assert (await start(h, wf, {"n": 4}))[1]


async def test_rate_limit_never_lets_more_than_limit_start_per_period(h: Harness) -> None:
    """40 concurrent starts, each sent twice, per period of 10 s for five periods: at
    most 3 executions are created in each."""
    wf = await h.create(flow("rated-burst", rateLimit={"limit": 3, "period": 10}))
    created_at: list[float] = []
    for second in range(0, 50, 5):
        h.clock.set(START + timedelta(seconds=second))
        ids = [str(uuid.uuid4()) for _ in range(20)]
        answers = await asyncio.gather(
            *(start(h, wf, {"i": i}, execution_id=e) for i, e in enumerate(ids * 2)),
            return_exceptions=True,
        )
        for answer in answers:
            if isinstance(answer, BaseException):
                assert isinstance(answer, StartRateLimited), answer
            elif answer[1]:
                created_at.append(float(second))
    assert len(created_at) == 15  # 3 per 10 s over 50 s
    for low in range(0, 50, 5):
        assert sum(1 for t in created_at if low <= t < low + 10) <= 3


async def test_rate_limit_queue_mode_starts_excess_ones_when_the_window_allows(
    h: Harness,
) -> None:
    wf = await h.create(
        flow(
            "rated-queue",
            rateLimit={"limit": 2, "period": 10, "mode": "queue", "key": "input.customer"},
        )
    )
    times = StartTimes()
    h.store.add_listener(times)
    started = [(await start(h, wf, {"customer": "acme", "n": n}))[0] for n in range(5)]
    third = started[2]
    assert third.status == ExecutionStatus.QUEUED
    assert third.queue is not None
    until = (START + timedelta(seconds=10)).isoformat()
    assert third.queue.reason == f"rate limited until {until} key=acme"
    await h.drain()
    assert times.offsets([e.id for e in started]) == [0, 0, 10, 10, 20]


# -- singleton -----------------------------------------------------------------------


async def test_singleton_skip_answers_the_live_execution(h: Harness) -> None:
    wf = await h.create(flow("single", singleton={"key": "input.k"}))
    live, created = await start(h, wf, {"k": "a"})
    assert created
    again, created = await start(h, wf, {"k": "a", "other": 1})
    assert (again.id, created) == (live.id, False)
    other, created = await start(h, wf, {"k": "b"})
    assert created and other.id != live.id
    await h.drain()
    assert await status_of(h, live.id) == ExecutionStatus.SUCCEEDED
    after, created = await start(h, wf, {"k": "a"})
    assert created and after.id != live.id
    await h.drain()
    assert sum(h.counter.calls.values()) == 3


async def test_singleton_counts_a_queued_execution_as_live(h: Harness) -> None:
    wf = await h.create(
        flow("single-queued", singleton={"key": "input.k"}, concurrency=[{"limit": 1}])
    )
    holder, _ = await start(h, wf, {"k": "a"})
    queued, _ = await start(h, wf, {"k": "b"})
    assert queued.status == ExecutionStatus.QUEUED
    again, created = await start(h, wf, {"k": "b"})
    assert (again.id, created) == (queued.id, False)
    await h.drain()
    assert {await status_of(h, e.id) for e in (holder, queued)} == {ExecutionStatus.SUCCEEDED}


async def test_singleton_skip_under_concurrent_starts_creates_one(h: Harness) -> None:
    wf = await h.create(flow("single-burst", singleton={}))
    counter = ActiveCounter()
    h.store.add_listener(counter)
    ids = [str(uuid.uuid4()) for _ in range(30)]
    answers = await asyncio.gather(*(start(h, wf, {}, execution_id=e) for e in ids * 2))
    assert sum(1 for _, created in answers if created) == 1
    assert len({execution.id for execution, _ in answers}) == 1
    await drive_concurrently(h)
    assert counter.max_active == 1


async def test_singleton_cancel_running_replaces_the_live_execution(h: Harness) -> None:
    wf = await h.create(flow("single-cancel", singleton={"mode": "cancelRunning"}))
    first, _ = await start(h, wf, {"n": 1})
    second, created = await start(h, wf, {"n": 2})
    assert created and second.status == ExecutionStatus.RUNNING
    cancelled = await h.app.get_execution(first.id)
    assert cancelled.status == ExecutionStatus.CANCELLED
    assert cancelled.error_info is not None
    assert "replaced by a new start" in cancelled.error_info.message
    await h.drain()
    assert await status_of(h, second.id) == ExecutionStatus.SUCCEEDED


async def test_singleton_cancel_running_under_concurrent_starts_never_has_two_live(
    h: Harness,
) -> None:
    wf = await h.create(flow("single-cancel-burst", singleton={"mode": "cancelRunning"}))
    counter = ActiveCounter()
    h.store.add_listener(counter)
    ids = [str(uuid.uuid4()) for _ in range(8)]
    answers = await asyncio.gather(
        *(start(h, wf, {"i": i}, execution_id=e) for i, e in enumerate(ids * 2))
    )
    assert counter.max_active == 1
    # A start that finds a newer one in place after its cancel yields to it (not stored).
    stored = [e for e in [await h.store.get_execution(i) for i in ids] if e is not None]
    statuses = [e.status for e in stored]
    assert sum(1 for s in statuses if not s.terminal) == 1
    assert all(s == ExecutionStatus.CANCELLED for s in statuses if s.terminal)
    assert {execution.id for execution, _ in answers} <= {e.id for e in stored}
    await drive_concurrently(h)
    assert counter.max_active == 1


# -- durability ----------------------------------------------------------------------


async def test_a_lost_timer_task_is_redelivered_by_the_sweeper(h: Harness) -> None:
    wf = await h.create(flow("throttled-sweep", throttle={"limit": 1, "period": 30}))
    first, _ = await start(h, wf)
    held, _ = await start(h, wf)
    h.queue.tasks = [t for t in h.queue.tasks if t.execution_id != held.id]  # lost
    await h.drain()
    assert await status_of(h, held.id) == ExecutionStatus.QUEUED
    h.clock.set(START + timedelta(seconds=120))
    await h.engine.sweep()
    await h.drain()
    assert await status_of(h, held.id) == ExecutionStatus.SUCCEEDED
    assert await status_of(h, first.id) == ExecutionStatus.SUCCEEDED


async def test_a_timer_delivered_twice_starts_the_execution_once(h: Harness) -> None:
    wf = await h.create(flow("throttled-dup", throttle={"limit": 1, "period": 5}))
    await start(h, wf)
    held, _ = await start(h, wf)
    await h.drain(times=3, concurrent=True)
    assert await status_of(h, held.id) == ExecutionStatus.SUCCEEDED
    assert (await h.event_types(held.id)).count("execution.dequeued") == 1
    assert sum(h.counter.calls.values()) == 2


async def test_a_rest_start_of_a_skipped_singleton_answers_the_live_execution(
    h: Harness,
) -> None:
    wf = await h.create(flow("single-rest", singleton={}))
    live = await h.start(wf, {"n": 1})
    again = await h.start(wf, {"n": 2})
    assert again.id == live.id
