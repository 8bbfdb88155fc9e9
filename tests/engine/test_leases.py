"""Issue 11, item 3: a run whose worker died, or whose outcome could not be recorded,
is retried within seconds of its step's own deadline, not six minutes later.

Once a run's lease was its step timeout (300 s by default, whatever the step) plus
60 s, and a failed commit kept it: redeliveries found the run busy and were dropped,
so only the sweeper finished it, about 370 s later.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from harness import Harness, linear

from shared.errors import TransientError
from shared.models import ExecutionStatus, StepRunStatus
from shared.ports import StepTask


async def _first_task(h: Harness, raw: dict[str, Any]) -> tuple[str, StepTask]:
    workflow_id = await h.create(raw)
    execution = await h.start(workflow_id)
    [task] = h.queue.take_due(h.clock.now())
    return execution.id, task


@pytest.mark.parametrize(
    ("step", "lease_seconds"),
    [
        ({"id": "a", "type": "count", "timeoutSeconds": 10}, 10 + 10),
        ({"id": "a", "type": "transform", "config": {"set": {"x": 1}}}, 10 + 10),
        ({"id": "a", "type": "wait", "config": {"seconds": 5}}, 10 + 10),
        (
            {"id": "a", "type": "http", "config": {"url": "https://x.test/", "timeoutSeconds": 10}},
            10 + 5 + 10,
        ),
        ({"id": "a", "type": "count"}, 300 + 10),  # no bound of its own: the default
    ],
)
async def test_the_lease_follows_the_steps_own_deadline(
    h: Harness, step: dict[str, Any], lease_seconds: float
) -> None:
    _, task = await _first_task(h, linear(step))
    claimed = await h.engine._claim(task, "a-worker-that-dies")
    assert isinstance(claimed, tuple)
    run = claimed[0]
    assert run.lease_expires_at == h.clock.now() + timedelta(seconds=lease_seconds)


async def test_a_dead_workers_run_is_retried_once_its_lease_ends(h: Harness) -> None:
    execution_id, task = await _first_task(
        h, linear({"id": "a", "type": "count", "timeoutSeconds": 10}, {"id": "b", "type": "count"})
    )
    await h.engine._claim(task, "a-worker-that-dies")  # claimed, then the process is killed
    h.clock.advance(timedelta(seconds=19))
    assert (await h.engine.handle_task(task)).status == "busy"  # still within its lease
    h.clock.advance(timedelta(seconds=2))  # 21 s after the claim: the lease has ended
    assert (await h.engine.handle_task(task)).status == "done"
    await h.drain()
    execution = await h.app.get_execution(execution_id)
    assert execution.status == ExecutionStatus.SUCCEEDED
    assert sum(h.counter.calls.values()) == 2  # a once, b once


async def test_a_failed_commit_frees_the_run_for_the_redelivery(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    execution_id, task = await _first_task(h, linear({"id": "a", "type": "count"}))
    real = h.store.run_transaction
    calls = 0

    async def failing_second(fn: Any) -> Any:  # the claim commits, the outcome does not
        nonlocal calls
        calls += 1
        if calls == 2:
            raise TransientError("disk full", code="STORE_UNAVAILABLE")
        return await real(fn)

    monkeypatch.setattr(h.store, "run_transaction", failing_second)
    with pytest.raises(TransientError):
        await h.engine.handle_task(task)
    [run] = await h.runs(execution_id)
    assert run.status == StepRunStatus.RUNNING and run.lease_expires_at == h.clock.now()

    # the queue redelivers at once (a 503): the run is not "busy" for minutes
    assert (await h.engine.handle_task(task)).status == "done"
    assert (await h.app.get_execution(execution_id)).status == ExecutionStatus.SUCCEEDED
