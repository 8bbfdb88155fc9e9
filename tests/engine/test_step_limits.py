"""Step-level ``concurrency`` and ``rateLimit`` (issue 13): checked at claim, in the
claim's transaction, on memory and SQLite. A run that may not start stays scheduled
with the reason in ``state.waiting``; slots come back with the run's outcome, a cancel,
a timeout, a retry, and by lease after a crash."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from effect_counter import RawHttpServer
from flow_helpers import InFlightStep, drive_concurrently
from harness import Harness, linear

from shared.adapters.memory_store import MemoryStore
from shared.adapters.sqlite_store import SqliteStore
from shared.engine.flow import slot_id
from shared.engine.steps import Complete, Outcome, StepContext, StepType
from shared.errors import DefinitionInvalid
from shared.models import ConcurrencySlot, ExecutionStatus, StepRun, StepRunStatus
from shared.ports import ExecutionTx, StepTask
from shared.steps.http import HttpGateway


class InFlightServer(RawHttpServer):
    """Counts the requests it holds open at once."""

    def __init__(self, hold: float = 0.01) -> None:
        super().__init__()
        self.hold = hold
        self.in_flight = 0
        self.max_in_flight = 0
        self.requests = 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.in_flight += 1
        self.requests += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await self.read_request(reader)
            await asyncio.sleep(self.hold)
            await self.answer(writer, 200, {"ok": True})
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.in_flight -= 1
            writer.close()


class SlowInFlightStep(InFlightStep):
    """``InFlightStep`` holding each call 10 ms, so calls overlap on every store."""

    async def execute(self, ctx: StepContext) -> Outcome:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0.01)
        finally:
            self.in_flight -= 1
        self.calls += 1
        return Complete(output=None)


class GateStep(StepType):
    """A hop step that blocks until the test opens its gate."""

    type_name = "gate"

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.entered = asyncio.Event()

    async def execute(self, ctx: StepContext) -> Outcome:
        self.entered.set()
        await self.gate.wait()
        return Complete(output=None)


@pytest.fixture
async def server() -> AsyncIterator[InFlightServer]:
    async with InFlightServer() as running:
        yield running


@pytest.fixture(params=["memory", "sqlite"])
async def hs(
    request: pytest.FixtureRequest, tmp_path: Path, server: InFlightServer
) -> AsyncIterator[Harness]:
    store = MemoryStore() if request.param == "memory" else SqliteStore(tmp_path / "e.db")
    gateway = HttpGateway(allowed_hosts=frozenset({f"127.0.0.1:{server.port}"}))
    harness = Harness(store, http=gateway)
    try:
        yield harness
    finally:
        await gateway.aclose()
        await harness.bus.close()
        await store.close()


def gated(h: Harness) -> GateStep:
    step = GateStep()
    h.registry.register(step)
    return step


def one_step(step: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return linear(step, name=extra.pop("name", "limited-step"), **extra)


async def slot(h: Harness, tenant: str, slot_key: str, index: int = 0) -> ConcurrencySlot | None:
    ident = slot_id(tenant, slot_key, index)

    async def read(tx: ExecutionTx) -> ConcurrencySlot | None:
        return (await tx.get_slots([ident])).get(ident)

    return await h.store.run_transaction(read)


async def only_run(h: Harness, execution_id: str, step_id: str = "a") -> StepRun:
    runs = [r for r in await h.runs(execution_id) if r.step_id == step_id]
    assert runs, f"no run of {step_id}"
    return runs[-1]


def tasks_of(h: Harness, execution_id: str) -> list[StepTask]:
    mine = [t for t in h.queue.tasks if t.execution_id == execution_id]
    h.queue.tasks = [t for t in h.queue.tasks if t.execution_id != execution_id]
    return mine


async def status_of(h: Harness, execution_id: str) -> ExecutionStatus:
    return (await h.app.get_execution(execution_id)).status


async def test_a_step_limit_of_5_never_has_a_6th_call_in_flight(
    hs: Harness, server: InFlightServer
) -> None:
    wf = await hs.create(
        linear(
            {"id": "prep", "type": "transform", "config": {"set": {"n": "{{ input.n }}"}}},
            {
                "id": "call",
                "type": "http",
                "config": {"method": "POST", "url": f"{server.url}/api", "body": {"n": 1}},
                "concurrency": {"limit": 5},
            },
            {"id": "done", "type": "transform", "config": {"set": {"ok": True}}},
            name="five-calls",
        )
    )
    started = [await hs.start(wf, {"n": i}) for i in range(50)]
    await drive_concurrently(hs, duplicates=2)
    assert server.max_in_flight <= 5
    assert server.max_in_flight >= 2  # the calls did overlap: the limit was exercised
    assert server.requests == 50  # one call per execution despite doubled deliveries
    for execution in started:
        assert await status_of(hs, execution.id) == ExecutionStatus.SUCCEEDED
        run = await only_run(hs, execution.id, "call")
        assert run.attempt == 1 and run.deliveries == 1  # waiting was never a retry
        assert "waiting" not in run.state
    for index in range(5):  # every slot is free at the end
        left = await slot(hs, "default", f"stepc:w:{wf}:call", index)
        assert left is None or left.holder is None


async def test_a_held_run_stays_scheduled_with_its_reason(h: Harness) -> None:
    gate = gated(h)
    wf = await h.create(
        one_step({"id": "a", "type": "gate", "concurrency": {"limit": 1, "key": "input.host"}})
    )
    first = await h.start(wf, {"host": "api.example.com"})
    second = await h.start(wf, {"host": "api.example.com"})
    other = await h.start(wf, {"host": "other.example.com"})
    (task1,) = tasks_of(h, first.id)
    (task2,) = tasks_of(h, second.id)
    (task3,) = tasks_of(h, other.id)
    holder = asyncio.create_task(h.engine.handle_task(task1))
    await gate.entered.wait()
    assert (await h.engine.handle_task(task2)).status == "waiting"
    held = await only_run(h, second.id)
    assert held.status == StepRunStatus.SCHEDULED
    assert held.state["waiting"] == "waiting for step concurrency slot key=api.example.com"
    assert held.attempt == 1 and held.deliveries == 0
    assert held.due_at is not None and held.due_at > h.clock.now()
    assert await status_of(h, second.id) == ExecutionStatus.RUNNING
    (retry,) = h.queue.tasks  # its next try, under a new task name
    assert retry.run_id == held.id and retry.wake_seq == held.wake_seq
    # Another key value has its own slot: it runs while the first is held.
    other_run = asyncio.create_task(h.engine.handle_task(task3))
    await asyncio.sleep(0.05)
    assert (await only_run(h, other.id)).status == StepRunStatus.RUNNING
    gate.gate.set()
    assert (await holder).status == "done"
    assert (await other_run).status == "done"
    await h.drain()
    assert await status_of(h, second.id) == ExecutionStatus.SUCCEEDED
    assert "waiting" not in (await only_run(h, second.id)).state


async def test_backoff_grows_to_five_seconds_with_jitter(h: Harness) -> None:
    gate = gated(h)
    wf = await h.create(one_step({"id": "a", "type": "gate", "concurrency": {"limit": 1}}))
    first = await h.start(wf)
    second = await h.start(wf)
    (task1,) = tasks_of(h, first.id)
    holder = asyncio.create_task(h.engine.handle_task(task1))
    await gate.entered.wait()
    delays = []
    for _ in range(8):
        (task,) = h.queue.take_due(h.queue.next_due() or h.clock.now())
        h.clock.set(task.due_at)
        before = h.clock.now()
        assert (await h.engine.handle_task(task)).status == "waiting"
        run = await only_run(h, second.id)
        assert run.due_at is not None
        delays.append((run.due_at - before).total_seconds())
    for n, delay in enumerate(delays):
        nominal = min(5.0, 0.25 * 2**n)
        assert 0.75 * nominal <= delay <= nominal
    gate.gate.set()
    await holder
    await h.drain()
    run = await only_run(h, second.id)
    assert run.status == StepRunStatus.SUCCEEDED and run.attempt == 1


async def hold_slot(h: Harness, gate: GateStep, execution_id: str) -> asyncio.Task[Any]:
    (task,) = [
        t for t in h.queue.tasks if t.execution_id == execution_id and t.due_at <= h.clock.now()
    ]
    h.queue.tasks.remove(task)
    holding = asyncio.create_task(h.engine.handle_task(task))
    await gate.entered.wait()
    return holding


@pytest.mark.parametrize("end", ["cancel", "timeout"])
async def test_cancel_and_timeout_free_the_slot_in_their_transaction(h: Harness, end: str) -> None:
    gate = gated(h)
    step = {"id": "a", "type": "gate", "concurrency": {"limit": 1, "key": "'api'"}}
    wf = await h.create(one_step(step, timeoutSeconds=30))
    patient = await h.create(one_step(step, name="no-time-limit"))
    holder = await h.start(wf)
    waiting = await h.start(patient)
    holding = await hold_slot(h, gate, holder.id)
    (task,) = [t for t in tasks_of(h, waiting.id) if t.due_at <= h.clock.now()]
    assert (await h.engine.handle_task(task)).status == "waiting"
    if end == "cancel":
        await h.engine.cancel(holder.id)
    else:
        h.clock.advance(31)  # the holder's lease (300 s step limit + 10 s) is still live
        for timer in tasks_of(h, holder.id):
            await h.engine.handle_task(timer)
    ended = await h.app.get_execution(holder.id)
    assert ended.status == (
        ExecutionStatus.CANCELLED if end == "cancel" else ExecutionStatus.TIMED_OUT
    )
    left = await slot(h, "default", "stepc:k:api")
    assert left is not None and left.holder is None
    # The waiting run gets the slot while the holder's call is still stuck.
    gate.entered.clear()
    (retry,) = [t for t in h.queue.tasks if t.execution_id == waiting.id]
    h.queue.tasks.remove(retry)
    h.clock.set(max(h.clock.now(), retry.due_at))
    second = asyncio.create_task(h.engine.handle_task(retry))
    await asyncio.wait_for(gate.entered.wait(), 10)
    assert (await only_run(h, waiting.id)).status == StepRunStatus.RUNNING
    gate.gate.set()
    assert (await second).status == "done"
    assert (await holding).status in ("lost_lease", "done")
    await h.drain()
    assert await status_of(h, waiting.id) == ExecutionStatus.SUCCEEDED


@pytest.mark.parametrize("end", ["fail", "retry"])
async def test_a_failure_or_a_retry_frees_the_slot(h: Harness, end: str) -> None:
    step: dict[str, Any] = {"id": "a", "type": "count", "concurrency": {"limit": 1}}
    if end == "retry":
        step["onError"] = {"retry": {"maxAttempts": 2, "initialDelaySeconds": 60, "jitter": 0}}
    wf = await h.create(one_step(step))
    h.counter.fail_codes["a"] = ("BOOM", end == "retry")
    first = await h.start(wf)
    second = await h.start(wf)
    for task in tasks_of(h, first.id):
        await h.engine.handle_task(task)
    h.counter.fail_codes.clear()
    left = await slot(h, "default", f"stepc:w:{wf}:a")
    assert left is not None and left.holder is None
    if end == "retry":
        retry = await only_run(h, first.id)
        assert retry.attempt == 2 and retry.status == StepRunStatus.SCHEDULED
    for task in tasks_of(h, second.id):
        assert (await h.engine.handle_task(task)).status == "done"
    assert await status_of(h, second.id) == ExecutionStatus.SUCCEEDED
    await h.drain()
    expected = ExecutionStatus.SUCCEEDED if end == "retry" else ExecutionStatus.FAILED
    assert await status_of(h, first.id) == expected


async def test_a_crashed_holder_slot_comes_back_when_its_lease_expires(h: Harness) -> None:
    wf = await h.create(
        one_step({"id": "a", "type": "count", "timeoutSeconds": 5, "concurrency": {"limit": 1}})
    )
    crashed = await h.start(wf)
    waiting = await h.start(wf)
    (task1,) = tasks_of(h, crashed.id)
    claimed = await h.engine._claim(task1, "dead-worker")  # claimed, then the worker died
    assert not isinstance(claimed, type(h.results)) and isinstance(claimed, tuple)
    (task2,) = tasks_of(h, waiting.id)
    assert (await h.engine.handle_task(task2)).status == "waiting"
    # Its lease is the step's 5 s plus 10 s: until then the slot stays taken.
    h.clock.advance(14)
    for task in h.queue.take_due(h.clock.now()):
        assert (await h.engine.handle_task(task)).status == "waiting"
    h.clock.advance(2)
    await h.drain(advance=False)
    assert await status_of(h, waiting.id) == ExecutionStatus.SUCCEEDED
    # The crashed run is taken over by a redelivery and finishes too.
    await h.engine.handle_task(task1)
    await h.drain()
    assert await status_of(h, crashed.id) == ExecutionStatus.SUCCEEDED
    assert h.counter.calls[(await only_run(h, crashed.id)).id] == 1


async def test_a_shared_key_is_one_limit_across_workflows(h: Harness) -> None:
    probe = SlowInFlightStep()
    h.registry.register(probe)
    shared = {"limit": 2, "key": "'api.example.com'"}
    wf1 = await h.create(one_step({"id": "a", "type": "inflight", "concurrency": shared}))
    wf2 = await h.create(
        one_step({"id": "b", "type": "inflight", "concurrency": shared}, name="other")
    )
    started = []
    for i in range(10):
        started.append(await h.start(wf1, {"i": i}))
        started.append(await h.start(wf2, {"i": i}))
    await drive_concurrently(h, duplicates=2)
    assert probe.calls == 20
    assert probe.max_in_flight == 2  # not 4: both workflows count against one limit
    for execution in started:
        assert await status_of(h, execution.id) == ExecutionStatus.SUCCEEDED


async def test_without_a_key_each_step_has_its_own_slots(h: Harness) -> None:
    probe = SlowInFlightStep()
    h.registry.register(probe)
    wf1 = await h.create(one_step({"id": "a", "type": "inflight", "concurrency": {"limit": 2}}))
    wf2 = await h.create(
        one_step({"id": "a", "type": "inflight", "concurrency": {"limit": 2}}, name="other")
    )
    for i in range(6):
        await h.start(wf1, {"i": i})
        await h.start(wf2, {"i": i})
    await drive_concurrently(h, duplicates=1)
    assert probe.calls == 12
    assert probe.max_in_flight == 4


async def test_rate_limit_3_per_10_s_gives_the_documented_start_times(h: Harness) -> None:
    wf = await h.create(
        one_step({"id": "a", "type": "count", "rateLimit": {"limit": 3, "period": "10s"}})
    )
    started = [await h.start(wf, {"n": i}) for i in range(8)]
    start = h.clock.now()
    await h.drain(concurrent=True, times=2)
    offsets = []
    for execution in started:
        assert await status_of(h, execution.id) == ExecutionStatus.SUCCEEDED
        run = await only_run(h, execution.id)
        assert run.started_at is not None and run.attempt == 1
        offsets.append((run.started_at - start).total_seconds())
    assert sorted(offsets) == [0, 0, 0, 10, 10, 10, 20, 20]
    assert sum(h.counter.calls.values()) == 8


async def test_a_rate_limited_run_shows_its_time(h: Harness) -> None:
    wf = await h.create(
        one_step(
            {"id": "a", "type": "count", "rateLimit": {"limit": 1, "period": 60, "key": "'k'"}}
        )
    )
    first = await h.start(wf)
    second = await h.start(wf)
    for task in tasks_of(h, first.id):
        await h.engine.handle_task(task)
    (task,) = tasks_of(h, second.id)
    assert (await h.engine.handle_task(task)).status == "waiting"
    run = await only_run(h, second.id)
    at = h.clock.now() + timedelta(seconds=60)
    assert run.status == StepRunStatus.SCHEDULED and run.due_at == at
    assert run.state["waiting"] == f"waiting for step rate limit until {at.isoformat()} key=k"


async def test_a_limited_inline_step_is_not_chained_past_its_check(h: Harness) -> None:
    wf = await h.create(
        linear(
            {"id": "a", "type": "transform", "config": {"set": {"x": 1}}},
            {
                "id": "b",
                "type": "transform",
                "config": {"set": {"y": 2}},
                "rateLimit": {"limit": 1, "period": 60},
            },
            name="inline",
        )
    )
    first = await h.start(wf)
    second = await h.start(wf)
    start = h.clock.now()
    await h.drain()
    times = []
    for execution in (first, second):
        assert await status_of(h, execution.id) == ExecutionStatus.SUCCEEDED
        run = await only_run(h, execution.id, "b")
        assert run.started_at is not None
        times.append((run.started_at - start).total_seconds())
    assert sorted(times) == [0, 60]


async def test_a_failing_key_fails_the_step_without_retry(h: Harness) -> None:
    wf = await h.create(
        one_step(
            {
                "id": "a",
                "type": "count",
                "concurrency": {"limit": 1, "key": "input.customer"},
                "onError": {"retry": {"maxAttempts": 3}},
            }
        )
    )
    bad = await h.start(wf, {"customer": ["not", "a", "string"]})
    await h.drain()
    ended = await h.app.get_execution(bad.id)
    assert ended.status == ExecutionStatus.FAILED
    assert ended.error_info is not None and ended.error_info.code == "STEP_LIMIT_KEY_INVALID"
    assert not h.counter.calls
    good = await h.start(wf, {"customer": "acme"})
    await h.drain()
    assert await status_of(h, good.id) == ExecutionStatus.SUCCEEDED


@pytest.mark.parametrize(
    ("patch", "code", "path"),
    [
        ({"concurrency": {"limit": 0}}, "INVALID_VALUE", "/steps/0/concurrency/limit"),
        ({"concurrency": {"limit": 10_001}}, "INVALID_VALUE", "/steps/0/concurrency/limit"),
        ({"rateLimit": {"limit": 3, "period": 0.5}}, "INVALID_VALUE", "/steps/0/rateLimit/period"),
        (
            {"concurrency": {"limit": 1, "key": "prev.host"}},
            "EXPRESSION_UNKNOWN_VARIABLE",
            "/steps/0/concurrency/key",
        ),
        (
            {"rateLimit": {"limit": 1, "period": 1, "key": "input.("}},
            "EXPRESSION_SYNTAX",
            "/steps/0/rateLimit/key",
        ),
    ],
)
async def test_step_limits_are_validated_at_save_time(
    h: Harness, patch: dict[str, Any], code: str, path: str
) -> None:
    with pytest.raises(DefinitionInvalid) as info:
        await h.app.create_workflow(one_step({"id": "a", "type": "count", **patch}))
    issue = info.value.issues[0]
    assert (issue.code, issue.path) == (code, path)
