"""Duplicate deliveries are no-ops; executions stay pinned to their version."""

from __future__ import annotations

from collections import Counter

import pytest
from harness import Harness, linear

from shared.errors import Conflict
from shared.models import ExecutionStatus

MIXED = {
    "name": "mixed",
    "steps": [
        {"id": "a", "type": "count", "nextSteps": ["t"]},
        {"id": "t", "type": "transform", "config": {"set": {"x": 1}}, "nextSteps": ["fan"]},
        {
            "id": "fan",
            "type": "parallel",
            "nextSteps": ["w"],
            "config": {"branches": [{"name": "l", "start": "l1"}, {"name": "r", "start": "r1"}]},
        },
        {"id": "l1", "type": "count", "nextSteps": ["l2"]},
        {"id": "l2", "type": "count"},
        {"id": "r1", "type": "count"},
        {"id": "w", "type": "wait", "config": {"seconds": 10}, "nextSteps": ["m"]},
        {
            "id": "m",
            "type": "map",
            "nextSteps": ["z"],
            "config": {"items": "[1, 2, 3]", "start": "mi", "concurrency": 2},
        },
        {"id": "mi", "type": "count"},
        {"id": "z", "type": "count"},
    ],
}


async def _assert_recorded_once(h: Harness, execution_id: str) -> None:
    runs = await h.runs(execution_id)
    keys = Counter((r.scope, r.step_id, r.iteration, r.attempt) for r in runs)
    assert max(keys.values()) == 1, "a step visit recorded twice"
    assert all(n == 1 for n in h.counter.calls.values()), h.counter.calls
    finished = Counter(
        e.run_id
        for e in await h.store.list_events(execution_id)
        if e.type in ("step.succeeded", "step.failed")
    )
    assert max(finished.values()) == 1, "a step finished twice"
    seqs = [e.seq for e in await h.store.list_events(execution_id)]
    assert seqs == list(range(1, len(seqs) + 1)), "event sequence has gaps or repeats"


@pytest.mark.parametrize("times", [2, 3, 4])
@pytest.mark.parametrize("concurrent", [False, True], ids=["sequential", "concurrent"])
async def test_duplicate_deliveries_record_each_step_once(
    h: Harness, times: int, concurrent: bool
) -> None:
    workflow_id = await h.create(MIXED)
    execution = await h.start(workflow_id)
    await h.drain(times=times, concurrent=concurrent)
    done = await h.app.get_execution(execution.id)
    assert done.status == ExecutionStatus.SUCCEEDED
    assert sum(h.counter.calls.values()) == 8  # a, l1, l2, r1, mi x3, z
    await _assert_recorded_once(h, execution.id)
    statuses = Counter(r.status for r in h.results)
    assert statuses["duplicate"] + statuses["busy"] + statuses["early"] >= 1


async def test_redelivered_finished_task_is_a_duplicate(h: Harness) -> None:
    workflow_id = await h.create(linear({"id": "a", "type": "count"}))
    execution = await h.start(workflow_id)
    task = h.queue.tasks[0]
    await h.drain()
    await h.deliver(task, times=3)
    assert [r.status for r in h.results] == ["done", "duplicate", "duplicate", "duplicate"]
    assert (await h.app.get_execution(execution.id)).status == ExecutionStatus.SUCCEEDED


async def test_start_with_the_same_execution_id_is_idempotent(h: Harness) -> None:
    workflow_id = await h.create(linear({"id": "a", "type": "count"}))
    first = await h.start(workflow_id, {"n": 1}, execution_id="msg-42")
    again = await h.start(workflow_id, {"n": 1}, execution_id="msg-42")  # a caller's retry
    # a trigger's redelivery (its id names the message): the first delivery's input wins
    redelivered = await h.start(
        workflow_id, {"n": 2}, execution_id="msg-42", trigger={"type": "event"}
    )
    assert first.id == again.id == redelivered.id == "msg-42"
    assert redelivered.input == {"n": 1}
    with pytest.raises(Conflict) as reused:  # a caller's other start under a used id
        await h.start(workflow_id, {"n": 2}, execution_id="msg-42")
    assert reused.value.code == "EXECUTION_ID_REUSED"
    await h.drain()
    assert sum(h.counter.calls.values()) == 1


async def test_execution_pinned_to_its_version(h: Harness) -> None:
    v1 = {
        "name": "pinned",
        "steps": [
            {"id": "w", "type": "wait", "config": {"seconds": 60}, "nextSteps": ["out"]},
            {"id": "out", "type": "transform", "config": {"output": "v1"}},
        ],
    }
    workflow_id = await h.create(v1)
    old = await h.start(workflow_id)
    await h.drain(advance=False)
    v2 = {
        **v1,
        "steps": [v1["steps"][0], {"id": "out", "type": "transform", "config": {"output": "v2"}}],
    }
    updated = await h.app.update_workflow(workflow_id, v2)
    assert updated.version == 2
    new = await h.start(workflow_id)
    await h.drain()
    old_done = await h.app.get_execution(old.id)
    new_done = await h.app.get_execution(new.id)
    assert (old_done.workflow_version, old_done.result) == (1, "v1")
    assert (new_done.workflow_version, new_done.result) == (2, "v2")
    assert (await h.app.get_version(workflow_id, 1)).steps[1].config == {"output": "v1"}
    assert [d.version for d in await h.app.list_versions(workflow_id)] == [1, 2]


async def test_deleted_workflow_keeps_versions_for_running_executions(h: Harness) -> None:
    workflow_id = await h.create(
        linear(
            {"id": "w", "type": "wait", "config": {"seconds": 5}},
            {"id": "x", "type": "transform", "config": {"output": 1}},
        )
    )
    execution = await h.start(workflow_id)
    await h.drain(advance=False)
    await h.app.delete_workflow(workflow_id)
    h.engine.definitions._items.clear()
    await h.drain()
    assert (await h.app.get_execution(execution.id)).result == 1
