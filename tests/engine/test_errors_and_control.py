"""Retries, error strategies, timeouts, loops, cancel, pause, resume and redrive."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from harness import Harness, linear

from shared.errors import InvalidState
from shared.models import ExecutionStatus

RETRY = {"maxAttempts": 3, "initialDelaySeconds": 10, "multiplier": 3, "jitter": 0}


async def test_retry_policy_backs_off_then_fails(h: Harness) -> None:
    h.counter.fail_codes["flaky"] = ("UPSTREAM", True)
    workflow_id = await h.create(
        linear({"id": "flaky", "type": "count", "onError": {"strategy": "retry", "retry": RETRY}})
    )
    execution = await h.start(workflow_id)
    started = h.clock.now()
    delivered_at = []
    while (due := h.queue.next_due()) is not None:
        h.clock.set(due)
        delivered_at.append((h.clock.now() - started).total_seconds())
        await h.drain(advance=False)
    done = await h.app.get_execution(execution.id)
    assert done.status == ExecutionStatus.FAILED
    assert done.error_info is not None and done.error_info.code == "UPSTREAM"
    assert delivered_at == [0, 10, 40], "delays 10 s then 30 s (multiplier 3)"
    runs = await h.runs(execution.id)
    assert [(r.attempt, r.status.value) for r in runs] == [
        (1, "failed"),
        (2, "failed"),
        (3, "failed"),
    ]
    assert "step.retrying" in await h.event_types(execution.id)


async def test_non_retryable_error_is_not_retried(h: Harness) -> None:
    h.counter.fail_codes["bad"] = ("INVALID", False)
    execution = await h.run(
        linear({"id": "bad", "type": "count", "onError": {"strategy": "retry", "retry": RETRY}})
    )
    assert execution.status == ExecutionStatus.FAILED
    assert len(await h.runs(execution.id)) == 1


async def test_retry_on_limits_codes(h: Harness) -> None:
    h.counter.fail_codes["s"] = ("OTHER", True)
    execution = await h.run(
        linear(
            {"id": "s", "type": "count", "onError": {"retry": {**RETRY, "retryOn": ["UPSTREAM"]}}}
        )
    )
    assert len(await h.runs(execution.id)) == 1
    assert execution.status == ExecutionStatus.FAILED


async def test_retry_then_success(h: Harness) -> None:
    workflow_id = await h.create(
        linear(
            {"id": "flaky", "type": "count", "onError": {"strategy": "retry", "retry": RETRY}},
            {"id": "after", "type": "transform", "config": {"output": "${prev.step}"}},
        )
    )
    h.counter.fail_codes["flaky"] = ("UPSTREAM", True)
    execution = await h.start(workflow_id)
    await h.drain(advance=False)
    del h.counter.fail_codes["flaky"]
    await h.drain()
    done = await h.app.get_execution(execution.id)
    assert done.status == ExecutionStatus.SUCCEEDED and done.result == "flaky"
    assert await h.statuses(execution.id) == [
        ("flaky", "failed"),
        ("flaky", "succeeded"),
        ("after", "succeeded"),
    ]


async def test_continue_strategy_passes_the_error_on(h: Harness) -> None:
    h.counter.fail_codes["s"] = ("NOPE", False)
    execution = await h.run(
        linear(
            {"id": "s", "type": "count", "onError": {"strategy": "continue"}},
            {"id": "after", "type": "transform", "config": {"output": "${prev.error.code}"}},
        )
    )
    assert execution.status == ExecutionStatus.SUCCEEDED and execution.result == "NOPE"


async def test_fallback_strategy_runs_the_fallback_step(h: Harness) -> None:
    h.counter.fail_codes["s"] = ("NOPE", False)
    execution = await h.run(
        {
            "name": "f",
            "steps": [
                {
                    "id": "s",
                    "type": "count",
                    "nextSteps": ["normal"],
                    "onError": {"strategy": "fallback", "fallbackStep": "rescue"},
                },
                {"id": "normal", "type": "transform", "config": {"output": "normal"}},
                {"id": "rescue", "type": "transform", "config": {"output": "rescued"}},
            ],
        }
    )
    assert execution.result == "rescued"
    assert [s for s, _ in await h.statuses(execution.id)] == ["s", "rescue"]


async def test_step_timeout(h: Harness) -> None:
    h.counter.delay = 0.5
    execution = await h.run(linear({"id": "slow", "type": "count", "timeoutSeconds": 0.05}))
    assert execution.status == ExecutionStatus.FAILED
    assert execution.error_info is not None and execution.error_info.code == "STEP_TIMEOUT"


async def test_execution_timeout_while_waiting(h: Harness) -> None:
    execution = await h.run(
        linear(
            {
                "id": "ask",
                "type": "wait_for_event",
                "config": {"event": "x", "timeoutSeconds": 9999},
            },
            timeoutSeconds=60,
        )
    )
    assert execution.status == ExecutionStatus.TIMED_OUT
    assert execution.error_info is not None
    assert execution.error_info.code == "EXECUTION_TIMEOUT"
    assert dict(await h.statuses(execution.id))["ask"] == "cancelled"


async def test_loop_bounded_by_max_iterations(h: Harness) -> None:
    execution = await h.run(
        {
            "name": "loop",
            "variables": {"n": 0},
            "steps": [
                {
                    "id": "inc",
                    "type": "transform",
                    "config": {"set": {"n": "${vars.n + 1}"}},
                    "nextSteps": ["again"],
                    "maxIterations": 3,
                },
                {
                    "id": "again",
                    "type": "branch",
                    "nextSteps": ["inc"],
                    "config": {"cases": [{"when": "true", "next": "inc"}]},
                },
            ],
        }
    )
    assert execution.status == ExecutionStatus.FAILED
    assert execution.error_info is not None
    assert execution.error_info.code == "LOOP_LIMIT_EXCEEDED"
    assert execution.variables["n"] == 3


async def test_cancel_a_waiting_execution(h: Harness) -> None:
    workflow_id = await h.create(
        linear({"id": "w", "type": "wait", "config": {"seconds": 60}}, {"id": "x", "type": "count"})
    )
    execution = await h.start(workflow_id)
    await h.drain(advance=False)
    cancelled = await h.app.cancel(execution.id, "no longer needed")
    assert cancelled.status == ExecutionStatus.CANCELLED
    await h.drain()
    assert await h.statuses(execution.id) == [("w", "cancelled")]
    assert not h.counter.calls
    with pytest.raises(InvalidState):
        await h.app.cancel(execution.id)


async def test_pause_holds_work_and_resume_releases_it(h: Harness) -> None:
    workflow_id = await h.create(linear({"id": "a", "type": "count"}, {"id": "b", "type": "count"}))
    execution = await h.start(workflow_id)
    await h.app.pause(execution.id)
    await h.drain()
    assert (await h.app.get_execution(execution.id)).status == ExecutionStatus.PAUSED
    assert not h.counter.calls
    await h.app.resume(execution.id)
    await h.drain()
    done = await h.app.get_execution(execution.id)
    assert done.status == ExecutionStatus.SUCCEEDED
    assert sum(h.counter.calls.values()) == 2
    types = await h.event_types(execution.id)
    assert types.index("execution.paused") < types.index("execution.resumed")


async def test_pause_keeps_timers(h: Harness) -> None:
    workflow_id = await h.create(
        linear({"id": "w", "type": "wait", "config": {"seconds": 30}}, {"id": "b", "type": "count"})
    )
    execution = await h.start(workflow_id)
    await h.drain(advance=False)
    await h.app.pause(execution.id)
    h.clock.advance(60)
    await h.drain(advance=False)
    assert not h.counter.calls
    await h.app.resume(execution.id)
    await h.drain()
    assert (await h.app.get_execution(execution.id)).status == ExecutionStatus.SUCCEEDED


async def test_redrive_from_the_failed_step(h: Harness) -> None:
    h.counter.fail_codes["b"] = ("BROKEN", False)
    workflow_id = await h.create(
        linear(
            {"id": "a", "type": "count"}, {"id": "b", "type": "count"}, {"id": "c", "type": "count"}
        )
    )
    execution = await h.start(workflow_id)
    await h.drain()
    assert (await h.app.get_execution(execution.id)).status == ExecutionStatus.FAILED
    del h.counter.fail_codes["b"]
    redriven = await h.app.redrive(execution.id)
    assert redriven.status == ExecutionStatus.RUNNING
    await h.drain()
    done = await h.app.get_execution(execution.id)
    assert done.status == ExecutionStatus.SUCCEEDED and done.redrive_count == 1
    assert await h.statuses(execution.id) == [
        ("a", "succeeded"),
        ("b", "failed"),
        ("b", "succeeded"),
        ("c", "succeeded"),
    ]
    calls_of_a = [
        n for rid, n in h.counter.calls.items() if rid == (await h.runs(execution.id))[0].id
    ]
    assert calls_of_a == [1], "steps before the failure are not run again"
    with pytest.raises(InvalidState):
        await h.app.redrive(execution.id)


async def test_redrive_inside_a_parallel_branch(h: Harness) -> None:
    h.counter.fail_codes["bad"] = ("BROKEN", False)
    execution = await h.run(
        {
            "name": "p",
            "steps": [
                {
                    "id": "fan",
                    "type": "parallel",
                    "nextSteps": ["after"],
                    "config": {
                        "branches": [
                            {"name": "ok", "start": "good"},
                            {"name": "ko", "start": "bad"},
                        ]
                    },
                },
                {"id": "good", "type": "count"},
                {"id": "bad", "type": "count"},
                {"id": "after", "type": "transform", "config": {"output": "${prev}"}},
            ],
        }
    )
    assert execution.status == ExecutionStatus.FAILED
    del h.counter.fail_codes["bad"]
    await h.app.redrive(execution.id)
    await h.drain()
    done = await h.app.get_execution(execution.id)
    assert done.status == ExecutionStatus.SUCCEEDED
    assert set(done.result) == {"ok", "ko"}


async def test_concurrent_branches_do_not_lose_variable_writes(h: Harness) -> None:
    branches = [{"name": f"b{i}", "start": f"s{i}"} for i in range(6)]
    steps = [{"id": "fan", "type": "parallel", "config": {"branches": branches}}]
    steps += [{"id": f"s{i}", "type": "count", "outputVar": f"v{i}"} for i in range(6)]
    workflow_id = await h.create({"name": "vars", "steps": steps})
    execution = await h.start(workflow_id)
    await h.drain(advance=False)
    while h.queue.tasks:
        await asyncio.gather(*(h.deliver(t) for t in h.queue.take_due(h.clock.now())))
    done = await h.app.get_execution(execution.id)
    assert done.status == ExecutionStatus.SUCCEEDED
    assert {k for k in done.variables if k.startswith("v")} == {f"v{i}" for i in range(6)}


async def test_long_wait_hops_are_rescheduled(h: Harness) -> None:
    workflow_id = await h.create(
        linear({"id": "w", "type": "wait", "config": {"seconds": 90 * 86400}})
    )
    execution = await h.start(workflow_id)
    await h.drain(advance=False)
    task = h.queue.tasks.pop()
    early = task.__class__(task.execution_id, task.run_id, h.clock.now(), task.wake_seq)
    h.clock.advance(timedelta(days=30))
    await h.deliver(early)
    assert (await h.app.get_execution(execution.id)).status == ExecutionStatus.WAITING
    assert len(h.queue.tasks) == 1 and h.queue.tasks[0].wake_seq == task.wake_seq + 1
    await h.drain()
    assert (await h.app.get_execution(execution.id)).status == ExecutionStatus.SUCCEEDED


async def test_redriven_execution_gets_a_new_deadline(h: Harness) -> None:
    h.counter.fail_codes["a"] = ("BROKEN", False)
    workflow_id = await h.create(
        linear(
            {"id": "a", "type": "count"},
            {
                "id": "ask",
                "type": "wait_for_event",
                "config": {"event": "x", "timeoutSeconds": 9999},
            },
            timeoutSeconds=60,
        )
    )
    execution = await h.start(workflow_id)
    await h.drain(advance=False)
    assert (await h.app.get_execution(execution.id)).status == ExecutionStatus.FAILED
    del h.counter.fail_codes["a"]
    h.clock.advance(3600)
    await h.app.redrive(execution.id)
    await h.drain()
    done = await h.app.get_execution(execution.id)
    assert done.status == ExecutionStatus.TIMED_OUT
    assert done.completed_at is not None
    assert (done.completed_at - done.started_at).total_seconds() == 3660


async def test_step_history_leaves_out_the_deadline_timer(h: Harness) -> None:
    execution = await h.run(linear({"id": "a", "type": "transform"}, timeoutSeconds=60))
    assert [r.step_id for r in await h.runs(execution.id)] == ["a", "$deadline"]
    assert [r.step_id for r in await h.app.step_history(execution.id)] == ["a"]
