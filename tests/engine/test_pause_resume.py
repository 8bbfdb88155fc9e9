"""Pause then resume restores the state it interrupted (issue 11, item 2).

A paused execution answers every delivery with ``paused`` and the task is gone; resume
must bring back what those tasks would have done, under task names the queue has not
seen (Cloud Tasks remembers a name for about an hour), and the status the pause
interrupted (``waiting`` while a step waits, so ``?status=waiting`` lists it).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from harness import Harness, linear

from shared.models import ExecutionStatus, StepRunStatus
from shared.ports import StepTask

ASK = {"id": "ask", "type": "wait_for_event", "config": {"event": "go", "timeoutSeconds": 600}}
AFTER = {"id": "after", "type": "transform", "config": {"output": "${prev.payload}"}}


class RememberingQueue:
    """Wraps the recording queue with Cloud Tasks' name dedupe: a name once used is
    refused (ALREADY_EXISTS, taken as success), pending or long finished."""

    def __init__(self, h: Harness) -> None:
        self.inner = h.queue
        self.names: set[str] = set()
        self.refused = 0

    async def enqueue(self, task: StepTask) -> None:
        if task.name in self.names:
            self.refused += 1
            return
        self.names.add(task.name)
        await self.inner.enqueue(task)


@pytest.fixture
def cloud_names(h: Harness) -> RememberingQueue:
    queue = RememberingQueue(h)
    h.engine.queue = queue
    return queue


async def waiting_ids(h: Harness) -> list[str]:
    page = await h.app.list_executions(status=ExecutionStatus.WAITING)
    return [e.id for e in page.items]


async def test_resume_while_waiting_for_an_event_keeps_it_waiting(h: Harness) -> None:
    workflow_id = await h.create(linear(ASK, AFTER))
    execution = await h.start(workflow_id)
    await h.drain(advance=False)
    assert await waiting_ids(h) == [execution.id]
    await h.app.pause(execution.id)
    resumed = await h.app.resume(execution.id)
    assert resumed.status == ExecutionStatus.WAITING
    assert await waiting_ids(h) == [execution.id]
    await h.drain(advance=False)
    assert (await h.app.get_execution(execution.id)).status == ExecutionStatus.WAITING
    assert (await h.app.send_event(execution.id, "go", "yes"))["delivered"] is True
    await h.drain(advance=False)
    done = await h.app.get_execution(execution.id)
    assert done.status == ExecutionStatus.SUCCEEDED and done.result == "yes"


async def test_event_sent_while_paused_runs_after_resume_under_a_new_task_name(
    h: Harness, cloud_names: RememberingQueue
) -> None:
    workflow_id = await h.create(linear(ASK, AFTER))
    execution = await h.start(workflow_id)
    await h.drain(advance=False)
    await h.app.pause(execution.id)
    assert (await h.app.send_event(execution.id, "go", "later"))["delivered"] is True
    await h.drain(advance=False)  # the woken run's task is answered "paused" and gone
    assert h.results[-1].status == "paused"
    assert (await h.app.get_execution(execution.id)).status == ExecutionStatus.PAUSED
    resumed = await h.app.resume(execution.id)
    assert resumed.status == ExecutionStatus.RUNNING, "a woken step is due: running"
    await h.drain(advance=False)
    done = await h.app.get_execution(execution.id)
    assert done.status == ExecutionStatus.SUCCEEDED and done.result == "later"


async def test_event_timeout_that_fired_while_paused_runs_after_resume(
    h: Harness, cloud_names: RememberingQueue
) -> None:
    ask = {**ASK, "onError": {"strategy": "continue"}}
    workflow_id = await h.create(linear(ask, {"id": "after", "type": "count"}))
    execution = await h.start(workflow_id)
    await h.drain(advance=False)
    await h.app.pause(execution.id)
    await h.drain()  # the clock moves to the timeout; its task is answered "paused"
    assert h.results[-1].status == "paused"
    await h.app.resume(execution.id)
    await h.drain()
    done = await h.app.get_execution(execution.id)
    assert done.status == ExecutionStatus.SUCCEEDED
    assert [s for _, s in await h.statuses(execution.id)] == ["failed", "succeeded"]


async def test_timed_wait_that_fired_while_paused_runs_after_resume(
    h: Harness, cloud_names: RememberingQueue
) -> None:
    workflow_id = await h.create(
        linear({"id": "w", "type": "wait", "config": {"seconds": 30}}, {"id": "b", "type": "count"})
    )
    execution = await h.start(workflow_id)
    await h.drain(advance=False)
    assert await waiting_ids(h) == [execution.id]
    await h.app.pause(execution.id)
    resumed = await h.app.resume(execution.id)
    assert resumed.status == ExecutionStatus.WAITING, "the wait is not over: still waiting"
    await h.app.pause(execution.id)
    await h.drain()  # the timer fires during the pause
    assert h.results[-1].status == "paused" and not h.counter.calls
    await h.app.resume(execution.id)
    await h.drain()
    assert (await h.app.get_execution(execution.id)).status == ExecutionStatus.SUCCEEDED
    assert sum(h.counter.calls.values()) == 1


@pytest.mark.parametrize("commit_steps", [1, 50])
async def test_pause_during_a_running_step_then_resume(h: Harness, commit_steps: int) -> None:
    """The step in flight commits while paused; its cheap successor must not be left
    leased to a delivery that no longer runs it (with one commit per step, the commit
    used to claim the transform for this delivery, which then stopped: RUNNING forever).
    """
    h.engine.settings = replace(h.engine.settings, chain_commit_steps=commit_steps)
    workflow_id = await h.create(
        linear(
            {"id": "slow", "type": "count"},
            {"id": "t", "type": "transform", "config": {"set": {"x": 1}}},
            {"id": "end", "type": "count"},
        )
    )
    execution = await h.start(workflow_id)
    h.counter.delay = 0.05
    (task,) = h.queue.take_due(h.clock.now())
    delivery = asyncio.create_task(h.engine.handle_task(task))
    while not h.counter.calls:
        await asyncio.sleep(0.001)
    await h.app.pause(execution.id)
    await delivery
    h.counter.delay = 0.0
    runs = await h.runs(execution.id)
    assert not [r for r in runs if r.status == StepRunStatus.RUNNING], "nothing left leased"
    await h.drain(advance=False)
    assert (await h.app.get_execution(execution.id)).status == ExecutionStatus.PAUSED
    await h.app.resume(execution.id)
    await h.drain(advance=False)
    done = await h.app.get_execution(execution.id)
    assert done.status == ExecutionStatus.SUCCEEDED
    assert [s for _, s in await h.statuses(execution.id)] == ["succeeded"] * 3


async def test_repeated_pause_resume_while_waiting(
    h: Harness, cloud_names: RememberingQueue
) -> None:
    workflow_id = await h.create(linear(ASK, AFTER))
    execution = await h.start(workflow_id)
    await h.drain(advance=False)
    for _ in range(3):
        await h.app.pause(execution.id)
        await h.drain(advance=False)
        assert (await h.app.resume(execution.id)).status == ExecutionStatus.WAITING
        await h.drain(advance=False)
    await h.app.send_event(execution.id, "go", 3)
    await h.drain(advance=False)
    assert (await h.app.get_execution(execution.id)).status == ExecutionStatus.SUCCEEDED
