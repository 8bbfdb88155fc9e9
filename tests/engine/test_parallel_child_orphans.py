"""Issue 11: a child execution must not outlive the parent that started it.

A ``parallel`` whose one branch waits in a ``subworkflow`` child and whose other branch
fails ends the parent; the child it started must end ``cancelled`` in the same commit
(with an event that says why), also when the parent times out, and neither a redrive nor
a cancel of the parent may leave a child of it running.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from harness import Harness

from shared.models import ExecutionStatus, StepRunStatus
from shared.ports import ExecutionTx

CHILD = {
    "name": "child",
    "steps": [
        {
            "id": "hold",
            "type": "wait_for_event",
            "nextSteps": ["done"],
            "config": {"event": "go", "timeoutSeconds": 9999},
        },
        {"id": "done", "type": "transform", "config": {"output": "child done"}},
    ],
}


def parent(**extra: Any) -> dict[str, Any]:
    """A parallel of a subworkflow branch and a branch that waits 5 s, then counts."""
    return {
        "name": "parent",
        "steps": [
            {
                "id": "par",
                "type": "parallel",
                "config": {
                    "branches": [
                        {"name": "sub", "start": "call"},
                        {"name": "other", "start": "pause"},
                    ]
                },
            },
            {"id": "call", "type": "subworkflow", "config": {"workflowName": "child"}},
            {"id": "pause", "type": "wait", "config": {"seconds": 5}, "nextSteps": ["bad"]},
            {"id": "bad", "type": "count"},
        ],
        **extra,
    }


async def _started(h: Harness, **extra: Any) -> tuple[str, str]:
    """The parent running, its child parked on its event; returns both ids."""
    await h.create(CHILD)
    execution = await h.start(await h.create(parent(**extra)))
    await h.drain(advance=False)
    child_id = await _child_of(h, execution.id)
    assert (await h.app.get_execution(child_id)).status == ExecutionStatus.WAITING
    return execution.id, child_id


async def _child_of(h: Harness, parent_id: str, generation: int = 0) -> str:
    [call] = [
        r for r in await h.runs(parent_id) if r.step_id == "call" and r.generation == generation
    ]
    child_id = call.state["childExecutionId"]
    assert isinstance(child_id, str)
    return child_id


async def _fail_other_branch(h: Harness) -> None:
    h.counter.fail_codes["bad"] = ("BROKEN", False)
    h.clock.set(h.clock.now() + timedelta(seconds=5))
    await h.drain(advance=False)


async def _live_children(h: Harness, parent_id: str) -> list[str]:
    ids = {r.state.get("childExecutionId") for r in await h.runs(parent_id)} - {None}
    live = []
    for child_id in sorted(i for i in ids if isinstance(i, str)):
        if not (await h.app.get_execution(child_id)).status.terminal:
            live.append(child_id)
    return live


async def _assert_cancelled_by_parent(h: Harness, child_id: str, parent_id: str, why: str) -> None:
    child = await h.app.get_execution(child_id)
    assert child.status == ExecutionStatus.CANCELLED
    assert child.error_info is not None and child.error_info.code == "CANCELLED"
    assert parent_id in child.error_info.message and why in child.error_info.message
    assert all(r.status.terminal for r in await h.runs(child_id))
    events = await h.store.list_events(child_id)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    ends = [e for e in events if e.type == "execution.cancelled"]
    assert len(ends) == 1
    assert ends[0].data["parentExecutionId"] == parent_id
    assert ends[0].data["parentStatus"] == why
    assert events[-1].type == "execution.cancelled"


async def test_a_failing_branch_cancels_the_child_of_the_other_branch(h: Harness) -> None:
    parent_id, child_id = await _started(h)
    await _fail_other_branch(h)
    ended = await h.app.get_execution(parent_id)
    assert ended.status == ExecutionStatus.FAILED
    assert ended.error_info is not None and ended.error_info.code == "BROKEN"
    await _assert_cancelled_by_parent(h, child_id, parent_id, "failed")
    statuses = dict(await h.statuses(child_id))
    assert statuses["hold"] == "cancelled"
    # The child's own timers still fire later: they find it ended and change nothing.
    before = await h.store.list_events(child_id)
    await h.drain()
    assert await h.store.list_events(child_id) == before
    assert (await h.app.get_execution(parent_id)).status == ExecutionStatus.FAILED


async def test_a_parent_that_times_out_cancels_its_child(h: Harness) -> None:
    parent_id, child_id = await _started(h, timeoutSeconds=3)
    h.clock.set(h.clock.now() + timedelta(seconds=3))
    await h.drain(advance=False)
    assert (await h.app.get_execution(parent_id)).status == ExecutionStatus.TIMED_OUT
    await _assert_cancelled_by_parent(h, child_id, parent_id, "timed_out")


async def test_a_cancelled_parent_cancels_its_child_in_the_same_commit(h: Harness) -> None:
    parent_id, child_id = await _started(h)
    await h.app.cancel(parent_id, "customer left")
    await _assert_cancelled_by_parent(h, child_id, parent_id, "cancelled")


async def test_a_child_that_ended_first_is_left_as_it_ended(h: Harness) -> None:
    parent_id, child_id = await _started(h)
    await h.engine.send_signal(child_id, "go", {})
    await h.drain(advance=False)
    assert (await h.app.get_execution(child_id)).status == ExecutionStatus.SUCCEEDED
    await _fail_other_branch(h)
    assert (await h.app.get_execution(parent_id)).status == ExecutionStatus.FAILED
    assert (await h.app.get_execution(child_id)).status == ExecutionStatus.SUCCEEDED


async def test_grandchildren_are_cancelled_with_the_child(h: Harness) -> None:
    await h.create({**CHILD, "name": "leaf"})
    await h.create(
        {
            "name": "child",
            "steps": [{"id": "deeper", "type": "subworkflow", "config": {"workflowName": "leaf"}}],
        }
    )
    execution = await h.start(await h.create(parent()))
    await h.drain(advance=False)
    child_id = await _child_of(h, execution.id)
    [deeper] = await h.runs(child_id)
    leaf_id = deeper.state["childExecutionId"]
    assert (await h.app.get_execution(leaf_id)).status == ExecutionStatus.WAITING
    await _fail_other_branch(h)
    await _assert_cancelled_by_parent(h, child_id, execution.id, "failed")
    await _assert_cancelled_by_parent(h, leaf_id, child_id, "cancelled")


async def test_redrive_then_cancel_leaves_no_child_running(h: Harness) -> None:
    parent_id, first_child = await _started(h)
    await _fail_other_branch(h)
    h.counter.fail_codes.clear()
    await h.app.redrive(parent_id)
    await h.drain(advance=False)
    second_child = await _child_of(h, parent_id, generation=1)
    assert second_child != first_child
    assert await _live_children(h, parent_id) == [second_child]
    await h.app.cancel(parent_id, "enough")
    assert await _live_children(h, parent_id) == []
    await _assert_cancelled_by_parent(h, first_child, parent_id, "failed")
    await _assert_cancelled_by_parent(h, second_child, parent_id, "cancelled")


async def test_a_redriven_branch_has_one_live_child_and_completes_with_it(h: Harness) -> None:
    parent_id, first_child = await _started(h)
    await _fail_other_branch(h)
    h.counter.fail_codes.clear()
    await h.app.redrive(parent_id)
    await h.drain(advance=False)
    second_child = await _child_of(h, parent_id, generation=1)
    assert await _live_children(h, parent_id) == [second_child]
    assert (await h.app.get_execution(parent_id)).status == ExecutionStatus.RUNNING
    _, delivered = await h.engine.send_signal(second_child, "go", {"n": 1})
    assert delivered is True
    await h.drain(advance=False)
    assert (await h.app.get_execution(second_child)).status == ExecutionStatus.SUCCEEDED
    done = await h.app.get_execution(parent_id)
    assert done.status == ExecutionStatus.SUCCEEDED
    assert isinstance(done.result, dict) and done.result["sub"] == "child done"
    assert (await h.app.get_execution(first_child)).status == ExecutionStatus.CANCELLED


# -- children a former engine left behind -----------------------------------------------


async def _orphan(h: Harness, parent_id: str, child_id: str) -> None:
    """Put back what the engine before this fix left: the parent's call run cancelled
    (the parent ended) while its child still waits."""

    async def revive(tx: ExecutionTx) -> None:
        child = await tx.get_execution(child_id)
        assert child is not None
        child.status = ExecutionStatus.WAITING
        child.error = child.error_info = child.completed_at = child.duration = None
        tx.put_execution(child)
        for run in await tx.list_runs(child_id):
            if run.step_id == "hold":
                run.status = StepRunStatus.WAITING
                run.finished_at = None
                tx.put_run(run)

    await h.store.run_transaction(revive)
    assert child_id in await _live_children(h, parent_id)


async def test_cancel_reaches_a_child_whose_run_is_no_longer_active(h: Harness) -> None:
    parent_id, child_id = await _started(h)
    await _fail_other_branch(h)
    await _orphan(h, parent_id, child_id)
    h.counter.fail_codes.clear()
    await h.app.redrive(parent_id)  # the redrive ends the child the run it replaces left
    assert child_id not in await _live_children(h, parent_id)
    await h.drain(advance=False)
    await _orphan(h, parent_id, child_id)  # and once more, behind the redriven parent
    await h.app.cancel(parent_id)
    assert await _live_children(h, parent_id) == []
    child = await h.app.get_execution(child_id)
    assert child.status == ExecutionStatus.CANCELLED
    assert child.error_info is not None and parent_id in child.error_info.message


async def test_the_slot_of_a_parent_ended_with_its_child_goes_to_the_next_one(h: Harness) -> None:
    """The commit that ends the parent and its child also starts the execution queued
    for the parent's slot, which then starts a child of its own."""
    await h.create(CHILD)
    workflow_id = await h.create(parent(concurrency=[{"limit": 1}]))
    first = await h.start(workflow_id)
    second = await h.start(workflow_id)
    assert second.status == ExecutionStatus.QUEUED
    await h.drain(advance=False)
    first_child = await _child_of(h, first.id)
    await _fail_other_branch(h)
    await _assert_cancelled_by_parent(h, first_child, first.id, "failed")
    assert (await h.app.get_execution(second.id)).status == ExecutionStatus.RUNNING
    second_child = await _child_of(h, second.id)
    assert (await h.app.get_execution(second_child)).status == ExecutionStatus.WAITING
    await h.app.cancel(second.id)
    await _assert_cancelled_by_parent(h, second_child, second.id, "cancelled")


async def test_only_the_parents_own_children_are_cancelled(h: Harness) -> None:
    """A run naming an execution that another parent started (or none started) as its
    child: the parent's end leaves that execution alone."""
    parent_id, child_id = await _started(h)
    other_id, other_child = await _started(h)

    async def point_at_the_other_child(tx: ExecutionTx) -> None:
        for run in await tx.list_runs(parent_id):
            if run.step_id == "call":
                run.state = {**run.state, "childExecutionId": other_child}
                tx.put_run(run)

    await h.store.run_transaction(point_at_the_other_child)
    await h.app.cancel(parent_id)
    assert (await h.app.get_execution(other_child)).status == ExecutionStatus.WAITING
    assert (await h.app.get_execution(other_id)).status == ExecutionStatus.RUNNING
    await h.app.cancel(other_id)
    await _assert_cancelled_by_parent(h, other_child, other_id, "cancelled")
    assert (await h.app.get_execution(child_id)).status == ExecutionStatus.WAITING
