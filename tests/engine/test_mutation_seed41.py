"""Behaviour the seventh mutation sample (seed 41, untuned 138/150 = 92.0%) found
untested: the task that wakes a parent when its child times out is a valid task on the
wire, a child's events are numbered without a gap, the payload a step that started a
child is resumed with when the child fails, and a signal's time is the engine's."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from harness import Harness

from shared.engine.steps import Outcome, StepContext
from shared.models import ExecutionStatus
from shared.steps.messaging import SubworkflowStep
from shared.task_codec import decode_task, encode_task


async def test_a_child_timing_out_wakes_its_parent_with_a_task_the_wire_carries(
    h: Harness,
) -> None:
    """The wake task goes through Cloud Tasks as JSON: it must carry the parent run's
    current ``wakeSeq`` (a new task name), which the execute-step edge requires."""
    await h.create(
        {
            "name": "slow-child",
            "timeoutSeconds": 60,
            "steps": [
                {
                    "id": "w",
                    "type": "wait_for_event",
                    "config": {"event": "never", "timeoutSeconds": 3600},
                }
            ],
        }
    )
    workflow_id = await h.create(
        {
            "name": "parent",
            "steps": [
                {"id": "sub", "type": "subworkflow", "config": {"workflowName": "slow-child"}}
            ],
        }
    )
    execution = await h.start(workflow_id)
    await h.drain(advance=False)
    h.clock.set(h.clock.now() + timedelta(seconds=60))
    for task in h.queue.take_due(h.clock.now()):  # the child's deadline
        await h.deliver(task)
    [sub] = [r for r in await h.runs(execution.id) if r.step_id == "sub"]
    [wake] = [t for t in h.queue.tasks if t.run_id == sub.id]
    h.queue.tasks.remove(wake)
    assert wake.wake_seq == sub.wake_seq
    on_the_wire = decode_task(encode_task(wake), received_at=h.clock.now())
    assert (on_the_wire.run_id, on_the_wire.wake_seq) == (sub.id, sub.wake_seq)
    await h.deliver(on_the_wire)
    await h.drain()
    done = await h.app.get_execution(execution.id)
    assert done.status == ExecutionStatus.FAILED
    assert done.error_info is not None and done.error_info.code == "CHILD_TIMED_OUT"
    child = await h.app.get_execution(sub.state["childExecutionId"])
    assert child.status == ExecutionStatus.TIMED_OUT


async def test_a_childs_events_are_numbered_without_a_gap(h: Harness) -> None:
    """Stream clients resume from the last sequence number they saw: a gap would make
    them wait for an event that never comes."""
    await h.create(
        {
            "name": "child",
            "steps": [
                {"id": "a", "type": "count", "nextSteps": ["b"]},
                {"id": "b", "type": "count"},
            ],
        }
    )
    execution = await h.run(
        {
            "name": "parent",
            "steps": [{"id": "sub", "type": "subworkflow", "config": {"workflowName": "child"}}],
        }
    )
    assert execution.status == ExecutionStatus.SUCCEEDED
    [sub] = [r for r in await h.runs(execution.id) if r.step_id == "sub"]
    events = await h.store.list_events(sub.state["childExecutionId"])
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[0].type == "execution.started"
    assert events[-1].type == "execution.succeeded"


class RecordingSubworkflow(SubworkflowStep):
    """A plug-in step that starts a child (as ``subworkflow`` does) and keeps the
    payload it is resumed with when the child ends."""

    type_name = "recording_subworkflow"

    def __init__(self) -> None:
        self.resumed: list[Any] = []

    def resume(self, ctx: StepContext, payload: Any) -> Outcome:
        self.resumed.append(payload)
        return super().resume(ctx, payload)


async def test_a_step_that_started_a_child_is_resumed_with_its_end(h: Harness) -> None:
    """Step plug-ins that start a child read ``ok``, then ``value`` or ``error``."""
    spawner = RecordingSubworkflow()
    h.registry.register(spawner)
    h.counter.fail_codes["boom"] = ("BOOM", False)
    await h.create({"name": "bad-child", "steps": [{"id": "boom", "type": "count"}]})
    await h.create({"name": "good-child", "steps": [{"id": "fine", "type": "count"}]})
    failed = await h.run(
        {
            "name": "p1",
            "steps": [
                {
                    "id": "s",
                    "type": "recording_subworkflow",
                    "config": {"workflowName": "bad-child"},
                }
            ],
        }
    )
    succeeded = await h.run(
        {
            "name": "p2",
            "steps": [
                {
                    "id": "s",
                    "type": "recording_subworkflow",
                    "config": {"workflowName": "good-child"},
                }
            ],
        }
    )
    [child_failed, child_succeeded] = spawner.resumed
    assert child_failed["ok"] is False
    assert child_failed["error"]["code"] == "CHILD_FAILED"
    assert "BOOM: boom told to fail" in child_failed["error"]["message"]
    assert child_succeeded == {"ok": True, "value": {"step": "fine", "prev": None}}
    assert failed.status == ExecutionStatus.FAILED
    assert failed.error_info is not None and failed.error_info.code == "CHILD_FAILED"
    assert succeeded.status == ExecutionStatus.SUCCEEDED


async def test_a_signal_is_stamped_with_the_engines_clock(h: Harness) -> None:
    workflow_id = await h.create(
        {
            "name": "w",
            "steps": [
                {
                    "id": "w",
                    "type": "wait_for_event",
                    "config": {"event": "go", "timeoutSeconds": 3600},
                }
            ],
        }
    )
    execution = await h.start(workflow_id)
    await h.drain(advance=False)
    h.clock.set(h.clock.now() + timedelta(seconds=42))
    signal, delivered = await h.engine.send_signal(execution.id, "go", {"n": 1})
    assert delivered is True
    assert signal.created_at == h.clock.now()
    await h.drain(advance=False)
    assert (await h.app.get_execution(execution.id)).status == ExecutionStatus.SUCCEEDED
