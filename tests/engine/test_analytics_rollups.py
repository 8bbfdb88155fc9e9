"""The analytics use case over real engine runs: the rollups the engine writes in its
own transactions count what ran, once (duplicate and concurrent deliveries, a failed
commit, a redrive), with percentiles from their histograms."""

from __future__ import annotations

import contextlib
from datetime import timedelta
from typing import Any

import pytest
from harness import START, Harness, linear

from shared.adapters.clock import ManualClock
from shared.app.analytics import Analytics, analytics
from shared.engine.rollup import bucket_of, bucket_upper_ms
from shared.engine.steps import Complete, Outcome, StepContext, StepType
from shared.errors import Conflict
from shared.ports.analytics import RollupDelta

FROM, TO = START - timedelta(hours=1), START + timedelta(hours=1)


class TickStep(StepType):
    """Takes ``config.ms`` milliseconds of the manual clock."""

    type_name = "tick"

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock

    async def execute(self, ctx: StepContext) -> Outcome:
        self.clock.advance(timedelta(milliseconds=float(ctx.step.config["ms"])))
        return Complete(output={"tick": ctx.step.id})


def two_steps(ms: float = 100) -> dict[str, Any]:
    return linear(
        {"id": "slow", "type": "tick", "config": {"ms": ms}},
        {"id": "last", "type": "count", "onError": {"retry": {"maxAttempts": 2}}},
        name="analytics",
    )


async def figures(h: Harness, workflow_id: str | None = None) -> Analytics:
    return await analytics(h.store, "default", workflow_id=workflow_id, start=FROM, end=TO)


@pytest.fixture
def ticking(h: Harness) -> Harness:
    h.registry.register(TickStep(h.clock))
    return h


def upper(ms: float) -> float:
    return round(bucket_upper_ms(bucket_of(ms)), 1)


async def test_counts_and_percentiles_match_what_ran(ticking: Harness) -> None:
    h = ticking
    workflow_id = await h.create(two_steps(ms=100))
    for _ in range(3):
        await h.start(workflow_id)
    await h.drain()
    h.counter.fail_codes["last"] = ("BOOM", True)  # retried once, then fails
    for _ in range(2):
        await h.start(workflow_id)
    await h.drain()

    result = await figures(h, workflow_id)
    totals = result.totals
    assert (totals.started, totals.succeeded, totals.failed, totals.running) == (5, 3, 2, 0)
    assert totals.success_rate == 0.6
    assert result.window.bucket == "hour"
    assert sum(point.started for point in result.series) == 5
    steps = {s.step_id: s for s in result.steps}
    assert (steps["slow"].runs, steps["slow"].failed, steps["slow"].retries) == (5, 0, 0)
    assert steps["slow"].duration.p50_ms == upper(100)
    assert steps["slow"].duration.p99_ms == upper(100)
    assert steps["slow"].duration.mean_ms == 100.0
    # last: 3 successes + 2 x (first attempt retried, second attempt failed)
    assert (steps["last"].runs, steps["last"].failed, steps["last"].retries) == (7, 4, 2)
    assert [(e.code, e.failures, e.retries) for e in result.errors] == [("BOOM", 2, 2)]
    assert [(c.code, c.count) for c in result.execution_errors] == [("BOOM", 2)]
    assert [(t.type, t.count) for t in result.triggers] == [("manual", 5)]
    assert result.slowest_steps[0].step_id == "slow"
    assert result.duration.count == 5
    assert result.duration.p50_ms is not None and result.duration.p50_ms >= upper(100)


async def test_percentiles_follow_the_spread_of_durations(ticking: Harness) -> None:
    h = ticking
    fast = await h.create(two_steps(ms=10))
    slow = await h.create(two_steps(ms=5000))
    for _ in range(19):
        await h.start(fast)
    await h.start(slow)
    await h.drain()
    tenant = await figures(h)
    by_step = {(s.workflow_id, s.step_id): s.duration for s in tenant.steps}
    assert by_step[(fast, "slow")].p99_ms == upper(10)
    assert by_step[(slow, "slow")].p50_ms == upper(5000)
    wf = {w.workflow_id: w for w in tenant.workflows}
    assert (wf[fast].started, wf[slow].started) == (19, 1)
    assert tenant.slowest_steps[0].workflow_id == slow
    assert tenant.totals.started == 20


async def test_duplicate_and_concurrent_deliveries_count_once(ticking: Harness) -> None:
    h = ticking
    workflow_id = await h.create(two_steps())
    await h.start(workflow_id)
    await h.start(workflow_id)
    await h.drain(times=3, concurrent=True)
    result = await figures(h, workflow_id)
    assert (result.totals.started, result.totals.succeeded) == (2, 2)
    assert sorted((s.step_id, s.runs) for s in result.steps) == [("last", 2), ("slow", 2)]


async def test_a_duplicate_start_counts_once(ticking: Harness) -> None:
    h = ticking
    workflow_id = await h.create(two_steps())
    await h.start(workflow_id, execution_id="same-id")
    await h.start(workflow_id, execution_id="same-id")
    await h.drain()
    assert (await figures(h)).totals.started == 1


async def test_a_redrive_counts_the_execution_once_as_it_ended_last(ticking: Harness) -> None:
    h = ticking
    workflow_id = await h.create(two_steps())
    h.counter.fail_codes["last"] = ("BOOM", False)
    execution = await h.start(workflow_id)
    await h.drain()
    assert (await figures(h)).totals.failed == 1
    h.counter.fail_codes.clear()
    await h.app.redrive(execution.id)
    await h.drain()
    totals = (await figures(h)).totals
    assert (totals.started, totals.succeeded, totals.failed, totals.redriven) == (1, 1, 0, 1)
    steps = {s.step_id: s for s in (await figures(h)).steps}
    assert (steps["last"].runs, steps["last"].failed) == (2, 1)
    assert steps["slow"].runs == 1  # not run again by the redrive


async def test_a_failed_commit_counts_nothing(
    ticking: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The commit that ends the execution fails once (after its body ran and added its
    rollup): nothing of it counts; the redelivery that commits counts once."""
    h = ticking
    store: Any = h.store
    original = store.run_transaction
    failed: list[bool] = []

    async def flaky(fn: Any) -> Any:
        async def body(tx: Any) -> Any:
            result = await fn(tx)
            # the memory store buffers deltas with its writes, SQLite's beside them
            pending = [*getattr(tx, "writes", []), *getattr(tx, "rollups", [])]
            ends = [w for w in pending if isinstance(w, RollupDelta) and "dur|n" in w.counters]
            if ends and not failed:
                failed.append(True)
                raise Conflict("injected commit failure")
            return result

        return await original(body)

    monkeypatch.setattr(store, "run_transaction", flaky)
    workflow_id = await h.create(two_steps())
    await h.start(workflow_id)
    tasks = []
    for _ in range(20):
        due = h.queue.take_due(h.clock.now())
        if not due:
            break
        for task in due:
            tasks.append(task)
            with contextlib.suppress(Conflict):
                await h.deliver(task)
    assert failed == [True]
    assert (await figures(h)).totals.succeeded == 0
    h.clock.advance(timedelta(minutes=5))
    await h.engine.sweep(grace_seconds=0)  # the lost step is delivered again
    await h.drain()
    totals = (await figures(h)).totals
    assert (totals.started, totals.succeeded) == (1, 1)
