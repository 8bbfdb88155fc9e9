"""Behaviour the sixth mutation sample (seed 37, untuned 139/150 = 92.7%) found untested:
an early delivery's re-queued task continues the delivery's own span, a lost enqueue is
logged with its run, and resume leaves a run leased to a live delivery to it while it
re-enqueues every other run that has a due time."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta

import pytest
from harness import Harness
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared.engine.steps import Complete, Outcome, StepContext, StepType
from shared.models import ExecutionStatus, StepRunStatus
from shared.observability import use_tracer_provider
from shared.ports import StepTask

TRACE = "0af7651916cd43dd8448eb211c80319c"
CALLER = f"00-{TRACE}-b7ad6b7169203331-01"
WAIT = {"name": "w", "steps": [{"id": "w", "type": "wait", "config": {"seconds": 600}}]}


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Every span of the test, recorded in memory."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    previous = use_tracer_provider(provider)
    try:
        yield exporter
    finally:
        use_tracer_provider(previous)
        provider.shutdown()


async def test_an_early_delivery_requeues_its_task_under_its_own_span(
    h: Harness, spans: InMemorySpanExporter
) -> None:
    """The trace follows the execution hop by hop: the re-queued task's parent is the
    early delivery's span, not the span of the hop before it."""
    await h.start(await h.create(WAIT))
    await h.drain(advance=False)
    [timer] = h.queue.tasks
    h.queue.tasks.clear()
    await h.deliver(replace(timer, trace=CALLER))  # ten minutes early
    assert h.results[-1].status == "early"
    [again] = h.queue.tasks
    [delivery] = [
        s
        for s in spans.get_finished_spans()
        if s.parent is not None and s.parent.span_id == int(CALLER.split("-")[2], 16)
    ]
    assert delivery.name.startswith("step") and delivery.context is not None
    assert again.trace is not None
    version, trace_id, parent_id, _flags = again.trace.split("-")
    assert (version, trace_id) == ("00", TRACE)
    assert parent_id == f"{delivery.context.span_id:016x}" != CALLER.split("-")[2]
    assert again.due_at == timer.due_at


class RefusingQueue:
    """A task queue that is down: every enqueue raises."""

    def __init__(self) -> None:
        self.refused: list[StepTask] = []

    async def enqueue(self, task: StepTask) -> None:
        self.refused.append(task)
        raise ConnectionError("queue unavailable")


async def test_a_lost_enqueue_is_logged_with_its_run_and_swept_later(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    workflow_id = await h.create({"name": "c", "steps": [{"id": "c", "type": "count"}]})
    down = RefusingQueue()
    h.engine.queue = down
    with caplog.at_level(logging.WARNING, logger="shared.engine"):
        execution = await h.start(workflow_id)
    assert execution.status == ExecutionStatus.RUNNING, "the start is committed anyway"
    [lost] = down.refused
    [record] = [r for r in caplog.records if r.name.startswith("shared.engine")]
    assert record.levelno == logging.WARNING
    assert lost.run_id in record.getMessage()
    assert record.exc_info is not None and isinstance(record.exc_info[1], ConnectionError)
    h.engine.queue = h.queue
    h.clock.set(h.clock.now() + timedelta(minutes=5))
    assert await h.engine.sweep() == 1
    await h.drain()
    assert (await h.app.get_execution(execution.id)).status == ExecutionStatus.SUCCEEDED


class Gate(StepType):
    """A step that runs until the test opens the gate."""

    type_name = "gate"

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.open = asyncio.Event()
        self.calls = 0

    async def execute(self, ctx: StepContext) -> Outcome:
        self.calls += 1
        self.entered.set()
        await asyncio.wait_for(self.open.wait(), timeout=30)
        return Complete(output={"gate": ctx.step.id})


async def test_resume_leaves_a_run_leased_to_a_live_delivery_to_it(h: Harness) -> None:
    """Pause and resume while a step runs: the delivery that holds the lease finishes the
    run; resume must not hand the same run to a second task."""
    gate = Gate()
    h.registry.register(gate)
    workflow_id = await h.create({"name": "g", "steps": [{"id": "g", "type": "gate"}]})
    execution = await h.start(workflow_id)
    [task] = h.queue.take_due(h.clock.now())
    delivery = asyncio.create_task(h.engine.handle_task(task))
    try:
        await asyncio.wait_for(gate.entered.wait(), timeout=30)
        [running] = await h.runs(execution.id)
        assert running.status == StepRunStatus.RUNNING
        await h.app.pause(execution.id)
        resumed = await h.app.resume(execution.id)
        assert resumed.status == ExecutionStatus.RUNNING
        assert [t for t in h.queue.tasks if t.run_id == running.id] == []
        assert [r.wake_seq for r in await h.runs(execution.id)] == [running.wake_seq]
    finally:
        gate.open.set()  # a failed assertion must not leave the delivery hanging
    assert (await asyncio.wait_for(delivery, timeout=30)).status == "done"
    await h.drain()
    done = await h.app.get_execution(execution.id)
    assert done.status == ExecutionStatus.SUCCEEDED
    assert done.result == {"gate": "g"}
    assert gate.calls == 1


async def test_resume_requeues_every_branch_of_a_waiting_parallel(h: Harness) -> None:
    """The parallel step waits for its branches with no due time of its own; resume
    passes over it and still brings back the task of each branch the pause dropped."""
    workflow_id = await h.create(
        {
            "name": "p",
            "steps": [
                {
                    "id": "par",
                    "type": "parallel",
                    "config": {
                        "branches": [{"name": "a", "start": "a"}, {"name": "b", "start": "b"}]
                    },
                },
                {"id": "a", "type": "count"},
                {"id": "b", "type": "count"},
            ],
        }
    )
    execution = await h.start(workflow_id)
    [first] = h.queue.take_due(h.clock.now())
    await h.deliver(first)
    assert sorted(s for s, _ in await h.statuses(execution.id)) == ["a", "b", "par"]
    await h.app.pause(execution.id)
    await h.drain()
    assert {r.status for r in h.results[1:]} == {"paused"}
    assert h.queue.tasks == []
    await h.app.resume(execution.id)
    assert len(h.queue.tasks) == 2
    await h.drain()
    done = await h.app.get_execution(execution.id)
    assert done.status == ExecutionStatus.SUCCEEDED
    assert done.result == {
        "a": {"step": "a", "prev": None},
        "b": {"step": "b", "prev": None},
    }
