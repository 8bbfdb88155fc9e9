"""LocalTaskQueue fairness: due tasks are taken round robin across tenants.

Tenants come from an injected resolver (execution id -> tenant). Every test enqueues
before ``start`` so all tasks are due together and the order of deliveries is exactly
the dispatcher's choice, not a race with the enqueuer.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shared.adapters.clock import ManualClock
from shared.adapters.local_queue import DEFAULT_BUCKET, LocalTaskQueue
from shared.app.service import StartRequest
from shared.composition.local import build_local
from shared.ports import StepTask
from shared.settings import Settings

T0 = datetime(2030, 1, 1, tzinfo=UTC)


class Tenants:
    """Resolver: execution ``<tenant>/<n>`` belongs to ``<tenant>``; counts calls."""

    def __init__(self, fail: frozenset[str] = frozenset()) -> None:
        self.calls: list[str] = []
        self.fail = fail

    async def __call__(self, execution_id: str) -> str | None:
        self.calls.append(execution_id)
        tenant, _, _ = execution_id.partition("/")
        if tenant in self.fail:
            raise RuntimeError("store unavailable")
        if tenant == "missing":
            return None
        return tenant


class Recorder:
    def __init__(self) -> None:
        self.tasks: list[StepTask] = []

    async def __call__(self, step_task: StepTask) -> None:
        self.tasks.append(step_task)

    def tenants(self) -> list[str]:
        return [t.execution_id.partition("/")[0] for t in self.tasks]


def step(tenant: str, index: int, delay: float = 0.0) -> StepTask:
    return StepTask(f"{tenant}/{index}", f"{tenant}-run-{index}", T0 + timedelta(seconds=delay))


async def _run(queue: LocalTaskQueue, expected: int, recorder: Recorder) -> None:
    async with queue:
        assert await queue.join(timeout=20.0)
    assert len(recorder.tasks) == expected


async def test_small_tenant_is_not_stuck_behind_a_flood() -> None:
    recorder = Recorder()
    queue = LocalTaskQueue(recorder, clock=ManualClock(T0), workers=1, tenant_of=Tenants())
    for index in range(1000):  # A's flood is due first...
        await queue.enqueue(step("a", index, delay=-10 + index * 0.001))
    for index in range(10):  # ...and B's ten come after all of it
        await queue.enqueue(step("b", index, delay=-1))
    assert queue.pending_by_bucket() == {"a": 1000, "b": 10}
    await _run(queue, 1010, recorder)
    positions = [i for i, tenant in enumerate(recorder.tenants()) if tenant == "b"]
    assert len(positions) == 10
    assert positions[-1] < 2 * 10  # every one of B's within the first ~2x10 deliveries
    # Within a tenant, due-time order holds.
    a_runs = [t.run_id for t in recorder.tasks if t.execution_id.startswith("a/")]
    assert a_runs == [f"a-run-{index}" for index in range(1000)]


async def test_fifo_when_fairness_is_off() -> None:
    recorder = Recorder()
    queue = LocalTaskQueue(
        recorder, clock=ManualClock(T0), workers=1, tenant_of=Tenants(), fair=False
    )
    for index in range(100):
        await queue.enqueue(step("a", index, delay=-10 + index * 0.001))
    for index in range(10):
        await queue.enqueue(step("b", index, delay=-1))
    await _run(queue, 110, recorder)
    assert recorder.tenants() == ["a"] * 100 + ["b"] * 10


async def test_three_tenants_share_the_workers_equally() -> None:
    recorder = Recorder()
    queue = LocalTaskQueue(recorder, clock=ManualClock(T0), workers=3, tenant_of=Tenants())
    for tenant in ("a", "b", "c"):
        for index in range(30):
            await queue.enqueue(step(tenant, index, delay=-5 + index * 0.01))
    await _run(queue, 90, recorder)
    first = recorder.tenants()[:30]
    assert {tenant: first.count(tenant) for tenant in "abc"} == {"a": 10, "b": 10, "c": 10}


async def test_not_yet_due_tasks_wait_for_their_time() -> None:
    clock = ManualClock(T0)
    recorder = Recorder()
    queue = LocalTaskQueue(recorder, clock=clock, workers=2, tenant_of=Tenants())
    await queue.enqueue(step("b", 0, delay=60))
    for index in range(5):
        await queue.enqueue(step("a", index))
    async with queue:
        assert await queue.join(timeout=0.3) is False  # b's task is not due
        assert recorder.tenants() == ["a"] * 5
        assert queue.pending_by_bucket() == {"b": 1}
        assert queue.next_due() == T0 + timedelta(seconds=60)
        clock.advance(60)
        queue.wake()
        assert await queue.join(timeout=5.0)
    assert recorder.tenants() == ["a"] * 5 + ["b"]


async def test_unknown_execution_goes_to_the_default_bucket() -> None:
    recorder = Recorder()
    tenants = Tenants()
    queue = LocalTaskQueue(recorder, clock=ManualClock(T0), workers=1, tenant_of=tenants)
    for index in range(20):
        await queue.enqueue(step("a", index))
    for index in range(3):
        await queue.enqueue(step("missing", index))
    assert queue.pending_by_bucket() == {"a": 20, DEFAULT_BUCKET: 3}
    assert queue.stats.unresolved == 3
    await _run(queue, 23, recorder)
    positions = [i for i, tenant in enumerate(recorder.tenants()) if tenant == "missing"]
    assert positions[-1] < 6  # the default bucket gets its turn like any tenant


async def test_failing_resolver_loses_no_task() -> None:
    recorder = Recorder()
    tenants = Tenants(fail=frozenset({"broken"}))
    queue = LocalTaskQueue(recorder, clock=ManualClock(T0), workers=2, tenant_of=tenants)
    for index in range(5):
        await queue.enqueue(step("broken", index))
        await queue.enqueue(step("a", index))
    assert queue.stats.unresolved == 5
    assert queue.pending_by_bucket() == {DEFAULT_BUCKET: 5, "a": 5}
    await _run(queue, 10, recorder)
    assert sorted(t.run_id for t in recorder.tasks if t.execution_id.startswith("broken")) == [
        f"broken-run-{index}" for index in range(5)
    ]


async def test_slow_resolver_times_out_into_the_default_bucket(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("shared.adapters.local_queue._RESOLVE_TIMEOUT", 0.05)
    never = asyncio.Event()

    async def hanging(execution_id: str) -> str | None:
        await never.wait()
        return "never"

    recorder = Recorder()
    queue = LocalTaskQueue(recorder, clock=ManualClock(T0), tenant_of=hanging)
    await queue.enqueue(step("a", 0))
    assert queue.pending_by_bucket() == {DEFAULT_BUCKET: 1}
    await _run(queue, 1, recorder)


async def test_tenant_is_cached_per_execution_in_a_bounded_lru() -> None:
    tenants = Tenants()
    queue = LocalTaskQueue(
        Recorder(), clock=ManualClock(T0), tenant_of=tenants, tenant_cache_size=2
    )
    for wake in range(3):  # same execution, three wake-ups: one lookup
        await queue.enqueue(StepTask("a/1", "run-1", T0, wake))
    assert tenants.calls == ["a/1"]
    await queue.enqueue(StepTask("b/1", "run-2", T0))
    await queue.enqueue(StepTask("a/1", "run-3", T0))  # still cached; now most recent
    await queue.enqueue(StepTask("c/1", "run-4", T0))  # evicts b/1
    await queue.enqueue(StepTask("b/1", "run-5", T0))
    assert tenants.calls == ["a/1", "b/1", "c/1", "b/1"]
    # Unknown executions are not cached: they may be written later.
    await queue.enqueue(StepTask("missing/1", "run-6", T0))
    await queue.enqueue(StepTask("missing/1", "run-7", T0))
    assert tenants.calls.count("missing/1") == 2


async def test_dedup_retries_and_duplicates_keep_working_per_tenant() -> None:
    failed: set[str] = set()
    delivered: list[str] = []

    async def flaky(step_task: StepTask) -> None:
        delivered.append(step_task.name)
        if step_task.execution_id.startswith("b/") and step_task.name not in failed:
            failed.add(step_task.name)
            raise RuntimeError("first attempt fails")

    queue = LocalTaskQueue(
        flaky,
        clock=ManualClock(T0),
        tenant_of=Tenants(),
        min_backoff=0.0,
        duplicate_rate=1.0,
        seed=1,
    )
    await queue.enqueue(step("a", 0, delay=-1))
    await queue.enqueue(step("a", 0, delay=-1))  # same name: refused
    await queue.enqueue(step("b", 0, delay=-1))
    assert queue.stats.deduplicated == 1
    async with queue:
        assert await queue.join(timeout=5.0)
    assert queue.stats.retried == 1
    assert queue.stats.acknowledged >= 3  # a twice (duplicate), b's retry
    assert delivered.count("b-run-0-0") >= 2


async def test_stop_discards_ready_and_timed_tasks() -> None:
    queue = LocalTaskQueue(Recorder(), clock=ManualClock(T0), tenant_of=Tenants())
    await queue.enqueue(step("a", 0))
    await queue.enqueue(step("b", 0, delay=60))
    queue._promote(T0)  # a's task is due: it sits in a's ready heap
    assert queue.pending_count() == 2
    await queue.start()
    await queue.stop()
    assert queue.pending_count() + queue.in_flight_count() == 0
    assert queue.next_due() is None


def test_rejects_an_empty_tenant_cache() -> None:
    with pytest.raises(ValueError):
        LocalTaskQueue(Recorder(), tenant_cache_size=0)


async def test_local_runtime_buckets_by_the_execution_tenant(tmp_path: Path) -> None:
    runtime = build_local(Settings.local_mode(str(tmp_path / "fair.db"), rate_limits=False))
    definition = {
        "name": "fair-e2e",
        "steps": [{"id": "s", "type": "transform", "config": {"set": {"x": 1}}}],
    }
    # Not started: the first step's task stays pending, in its tenant's bucket.
    for tenant in ("acme", "globex"):
        app = runtime.app.for_tenant(tenant)
        workflow = await app.create_workflow(definition)
        await app.start_execution(StartRequest(workflow.id, {}))
    assert runtime.queue.pending_by_bucket() == {"acme": 1, "globex": 1}
    assert runtime.queue.stats.unresolved == 0
    async with runtime:
        assert await runtime.queue.join(timeout=20.0)
    assert runtime.queue.stats.acknowledged >= 2
