"""The event broker: replay/live boundary, gaps, terminal events, tenants, slow consumers.

The runtime is built on the memory store and not started, so nothing runs on its
own: each test commits the events it needs through store transactions, at the
moments that make the races happen.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest

from shared.api._subscription import format_cursor, parse_cursor
from shared.api.broker import EventBroker, SlowConsumer
from shared.app import WorkflowApp
from shared.app.service import StartRequest
from shared.composition import LocalRuntime, build_local
from shared.errors import InputInvalid, NotFound
from shared.models import ExecutionEvent, ExecutionStatus
from shared.ports import ExecutionTx

pytestmark = pytest.mark.timeout(20)

WORKFLOW = {"name": "w", "steps": [{"id": "a", "type": "transform", "config": {"set": {"x": 1}}}]}


@pytest.fixture
async def runtime() -> AsyncIterator[LocalRuntime]:
    local = build_local(memory=True)
    try:
        yield local
    finally:
        await local.store.close()


async def start(runtime: LocalRuntime, workflow_id: str | None = None) -> tuple[str, str]:
    """A new execution (its seq 1 is ``execution.started``): (workflow id, execution id)."""
    if workflow_id is None:
        workflow_id = (await runtime.app.create_workflow(WORKFLOW)).id
    execution = await runtime.app.start_execution(StartRequest(workflow_id, {}))
    return workflow_id, execution.id


async def emit(runtime: LocalRuntime, execution_id: str, *types: str) -> list[ExecutionEvent]:
    """Commit events of ``types`` with the next sequence numbers, in one transaction."""

    async def body(tx: ExecutionTx) -> list[ExecutionEvent]:
        execution = await tx.get_execution(execution_id)
        assert execution is not None
        events = []
        for kind in types:
            if kind.startswith("execution.") and kind != "execution.started":
                execution.status = ExecutionStatus(kind.removeprefix("execution."))
            elif execution.status.terminal:  # redriven
                execution.status = ExecutionStatus.RUNNING
            execution.event_seq += 1
            event = ExecutionEvent(
                execution_id=execution_id,
                workflow_id=execution.workflow_id,
                seq=execution.event_seq,
                type=kind,
                step_id="a",
            )
            tx.add_event(event)
            events.append(event)
        tx.put_execution(execution)
        return events

    return await runtime.store.run_transaction(body)


def attached(runtime: LocalRuntime, app: Any = None, **options: Any) -> EventBroker:
    broker = EventBroker(app or runtime.app, **options)
    broker.attach_feed(runtime.event_feed())
    return broker


async def take(stream: AsyncIterator[ExecutionEvent], count: int) -> list[int]:
    return [(await anext(stream)).seq for _ in range(count)]


class RacingApp:
    """The app, but each ``events`` query lets ``hook`` commit first and/or after it."""

    def __init__(self, app: WorkflowApp, before: Any = None, after: Any = None) -> None:
        self.app, self.before, self.after = app, before, after
        self.queries: list[int] = []

    def for_tenant(self, tenant: str) -> RacingApp:
        return RacingApp(self.app.for_tenant(tenant), self.before, self.after)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.app, name)

    async def events(
        self, execution_id: str, after_seq: int = 0, limit: int = 1000
    ) -> list[ExecutionEvent]:
        if self.before is not None:
            await self.before()
        page = await self.app.events(execution_id, after_seq, limit)
        if self.after is not None:
            await self.after()
        return page


@pytest.mark.parametrize("moment", ["before", "after"])
async def test_events_committed_around_each_replay_query_arrive_once(
    runtime: LocalRuntime, moment: str
) -> None:
    _, execution_id = await start(runtime)
    await emit(runtime, execution_id, "step.started", "step.succeeded")
    budget = [4]

    async def commit() -> None:  # a concurrent writer: two events per replay query
        if budget[0] > 0:
            budget[0] -= 2
            await emit(runtime, execution_id, "step.started", "step.succeeded")

    app = RacingApp(runtime.app, **{moment: commit})
    broker = attached(runtime, app, page_size=2)
    stream = broker.stream(tenant="default", execution_id=execution_id)
    assert await take(stream, 7) == [1, 2, 3, 4, 5, 6, 7]
    await emit(runtime, execution_id, "step.started", "execution.succeeded")
    assert [event.seq async for event in stream] == [8, 9]
    stored = await runtime.app.events(execution_id)
    assert [e.seq for e in stored] == list(range(1, 10))


async def test_replay_from_after_then_live(runtime: LocalRuntime) -> None:
    _, execution_id = await start(runtime)
    await emit(runtime, execution_id, "step.started", "step.succeeded", "step.started")
    broker = attached(runtime)
    events = broker.open(tenant="default", execution_id=execution_id, after=2)
    async with events:
        assert [(await events.next()).seq for _ in range(2)] == [3, 4]  # type: ignore[union-attr]
        assert await events.next(timeout=0.05) is None  # idle: a keepalive tick, nothing lost
        await emit(runtime, execution_id, "step.succeeded", "execution.failed")
        assert [(await events.next()).seq for _ in range(2)] == [5, 6]  # type: ignore[union-attr]
        with pytest.raises(StopAsyncIteration):
            await events.next()
    assert broker.subscriber_count == 0


async def test_live_gap_and_reordering_are_repaired_from_the_store(runtime: LocalRuntime) -> None:
    _, execution_id = await start(runtime)
    broker = EventBroker(runtime.app)  # fed by hand: a lagging, reordering feed
    stream = broker.stream(tenant="default", execution_id=execution_id)
    assert await take(stream, 1) == [1]
    committed = await emit(runtime, execution_id, "step.started", "step.succeeded", "step.started")
    broker.publish([committed[2]])  # 4 arrives first: 2 and 3 are read from the store
    assert await take(stream, 3) == [2, 3, 4]
    broker.publish(committed[:2])  # the late ones are duplicates now
    last = await emit(runtime, execution_id, "execution.succeeded")
    broker.publish(last)
    assert [event.seq async for event in stream] == [5]


async def test_stream_ends_after_terminal_event_and_at_once_when_already_over(
    runtime: LocalRuntime,
) -> None:
    _, execution_id = await start(runtime)
    await emit(runtime, execution_id, "step.failed", "execution.failed")
    broker = attached(runtime)
    assert [e.seq async for e in broker.stream(tenant="default", execution_id=execution_id)] == [
        1,
        2,
        3,
    ]
    over = broker.stream(tenant="default", execution_id=execution_id, after=3)
    assert [e async for e in over] == []
    with pytest.raises(InputInvalid):
        await anext(broker.stream(tenant="default", execution_id=execution_id, after=4))


async def test_a_redriven_execution_streams_past_its_first_terminal_event(
    runtime: LocalRuntime,
) -> None:
    _, execution_id = await start(runtime)
    await emit(runtime, execution_id, "execution.failed")
    await emit(runtime, execution_id, "step.started", "execution.succeeded")  # redrive
    broker = attached(runtime)
    seqs = [e.seq async for e in broker.stream(tenant="default", execution_id=execution_id)]
    assert seqs == [1, 2, 3, 4]


async def test_other_tenants_ids_are_not_found(runtime: LocalRuntime) -> None:
    workflow_id, execution_id = await start(runtime)
    broker = attached(runtime)
    targets: list[dict[str, Any]] = [
        {"execution_id": execution_id},
        {"workflow_id": workflow_id},
        {"execution_id": "nope"},
    ]
    for target in targets:
        with pytest.raises(NotFound):
            await anext(broker.stream(tenant="acme", **target))
    assert broker.subscriber_count == 0


async def test_workflow_stream_replays_cursor_then_follows_every_execution(
    runtime: LocalRuntime,
) -> None:
    workflow_id, first = await start(runtime)
    await emit(runtime, first, "step.started", "step.succeeded")
    broker = attached(runtime)
    stream = broker.open(tenant="default", workflow_id=workflow_id, cursor=f"{first}:1,ghost:3")
    async with stream:
        got = [await anext(stream) for _ in range(2)]
        _, second = await start(runtime, workflow_id)
        await emit(runtime, first, "execution.succeeded")
        got += [await anext(stream) for _ in range(2)]
        assert [(e.execution_id, e.seq) for e in got] == [
            (first, 2),
            (first, 3),
            (second, 1),
            (first, 4),
        ]
        cursor = parse_cursor(stream.cursor())
        assert cursor.pop("@") == int(got[-1].at.timestamp() * 1000)
        assert cursor == {second: 1, first: 4}


async def test_workflow_resume_replays_executions_started_while_away(
    runtime: LocalRuntime,
) -> None:
    workflow_id, first = await start(runtime)
    broker = attached(runtime)
    async with broker.open(
        tenant="default", workflow_id=workflow_id, cursor=f"{first}:0"
    ) as stream:
        assert (await anext(stream)).seq == 1
        cursor = stream.cursor()
    _, second = await start(runtime, workflow_id)  # while the client is away
    await emit(runtime, second, "step.started")
    await emit(runtime, first, "step.started")
    async with broker.open(tenant="default", workflow_id=workflow_id, cursor=cursor) as stream:
        got = [(e.execution_id, e.seq) for e in [await anext(stream) for _ in range(3)]]
    assert got == [(first, 2), (second, 1), (second, 2)]


async def test_slow_consumer_is_cut_off_and_the_writer_never_waits(runtime: LocalRuntime) -> None:
    _, execution_id = await start(runtime)
    broker = attached(runtime, max_queue=3)
    stalled = broker.open(tenant="default", execution_id=execution_id)
    await stalled.start()
    for _ in range(3):  # the writer commits without waiting for the stalled subscriber
        await asyncio.wait_for(emit(runtime, execution_id, "step.started", "step.succeeded"), 1)
    assert stalled.overflowed.is_set()
    assert broker.subscriber_count == 0 and broker.stats.cut_off == 1
    with pytest.raises(SlowConsumer) as caught:
        await stalled.next()
    assert caught.value.code == "SLOW_CONSUMER" and caught.value.retryable


async def test_slow_consumer_does_not_block_a_running_engine() -> None:
    local = build_local(memory=True)
    async with local:
        broker = attached(local, max_queue=5)
        workflow = await local.app.create_workflow(
            {
                "name": "chain",
                "steps": [
                    {
                        "id": f"s{i}",
                        "type": "transform",
                        "config": {"set": {"x": i}},
                        **({"nextSteps": [f"s{i + 1}"]} if i < 19 else {}),
                    }
                    for i in range(20)
                ],
            }
        )
        stalled = broker.open(tenant="default", workflow_id=workflow.id)
        await stalled.start()
        ids = [
            (await local.app.start_execution(StartRequest(workflow.id, {}))).id for _ in range(3)
        ]
        for _ in range(200):
            statuses = [(await local.app.get_execution(i)).status.value for i in ids]
            if statuses == ["succeeded"] * 3:
                break
            await asyncio.sleep(0.02)
        assert statuses == ["succeeded"] * 3
        assert stalled.overflowed.is_set() and broker.subscriber_count == 0
        with pytest.raises(SlowConsumer):
            await stalled.next()


async def test_publish_from_another_thread_is_delivered_in_the_loop(runtime: LocalRuntime) -> None:
    _, execution_id = await start(runtime)
    broker = EventBroker(runtime.app)  # fed from a foreign thread, like a Firestore listener
    stream = broker.stream(tenant="default", execution_id=execution_id)
    assert await take(stream, 1) == [1]
    events = await emit(runtime, execution_id, "step.started", "execution.cancelled")
    feeder = threading.Thread(target=broker.publish, args=(events,))
    feeder.start()
    feeder.join()
    assert [e.seq async for e in stream] == [2, 3]


async def test_a_broker_fed_by_the_runtime_reads_its_store(runtime: LocalRuntime) -> None:
    broker = EventBroker(runtime.app)
    broker.attach_feed(runtime.event_feed())
    assert broker.source is runtime.store
    other = build_local(memory=True)
    broker.attach_feed(other.event_feed())
    assert broker.source is other.store
    broker.detach()
    assert broker.source is None
    await other.store.close()


@pytest.mark.parametrize("cursor", [{"a:b": 3, "x,y": 0, "plain": 12, "@": 1700000000000}, {}])
def test_cursor_round_trip(cursor: dict[str, int]) -> None:
    assert parse_cursor(format_cursor(cursor)) == cursor


@pytest.mark.parametrize("text", ["abc", "abc:", ":3", "abc:-1", "abc:x", "a:1,,b:2", "a:²"])
def test_bad_cursors_are_invalid_input(text: str) -> None:
    with pytest.raises(InputInvalid):
        parse_cursor(text)
