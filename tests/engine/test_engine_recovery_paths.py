"""Recovery and control paths that mutation testing (``make mutation``) found
unchecked: restart recovery, the sweeper's new task names, early deliveries keeping
their trace, a signal consumed once, the status a resume restores, loop-limit and
child-id details."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

from harness import Harness, linear

from shared.engine import policy
from shared.errors import Conflict
from shared.models import ExecutionStatus, StepRunStatus
from shared.ports import StepTask

TRACE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


async def test_recover_releases_a_dead_workers_lease_and_requeues_its_run(h: Harness) -> None:
    workflow_id = await h.create(linear({"id": "a", "type": "count"}))
    execution = await h.start(workflow_id)
    [task] = h.queue.take_due(h.clock.now())
    await h.engine._claim(task, "the-process-that-died")
    [claimed] = await h.runs(execution.id)
    assert claimed.status == StepRunStatus.RUNNING and claimed.lease_expires_at > h.clock.now()
    assert await h.engine.recover() == 1
    [released] = await h.runs(execution.id)
    assert released.lease_expires_at == h.clock.now()
    [again] = h.queue.take_due(h.clock.now())
    assert (again.run_id, again.due_at, again.wake_seq) == (
        claimed.id,
        claimed.due_at,
        claimed.wake_seq,
    )
    assert (await h.engine.handle_task(again)).status == "done"
    assert (await h.app.get_execution(execution.id)).status == ExecutionStatus.SUCCEEDED
    assert sum(h.counter.calls.values()) == 1


async def test_the_sweeper_gives_a_lost_task_the_next_name(h: Harness) -> None:
    workflow_id = await h.create(linear({"id": "a", "type": "count"}))
    execution = await h.start(workflow_id)
    [lost] = h.queue.take_due(h.clock.now())  # the enqueue was lost
    assert lost.execution_id == execution.id
    h.clock.advance(timedelta(seconds=30))
    assert await h.engine.sweep() == 0, "not overdue yet"
    h.clock.advance(timedelta(seconds=30.5))
    assert await h.engine.sweep() == 1, "overdue by more than the default 60 s of grace"
    [task] = h.queue.take_due(h.clock.now())
    assert task.run_id == lost.run_id and task.wake_seq == lost.wake_seq + 1
    [run] = await h.runs(execution.id)
    assert run.wake_seq == lost.wake_seq + 1
    assert (await h.engine.handle_task(task)).status == "done"
    assert (await h.app.get_execution(execution.id)).status == ExecutionStatus.SUCCEEDED


async def test_an_early_delivery_is_requeued_with_its_trace(h: Harness) -> None:
    workflow_id = await h.create(
        linear(
            {"id": "w", "type": "wait", "config": {"seconds": 3600}}, {"id": "b", "type": "count"}
        )
    )
    execution = await h.start(workflow_id)
    await h.drain(advance=False)
    [timer] = h.queue.tasks
    h.queue.tasks.clear()
    early = StepTask(timer.execution_id, timer.run_id, h.clock.now(), timer.wake_seq, trace=TRACE)
    assert (await h.engine.handle_task(early)).status == "early"
    [again] = h.queue.tasks
    assert again.due_at == timer.due_at and again.wake_seq == timer.wake_seq + 1
    assert again.trace is not None and again.trace.split("-")[1] == TRACE.split("-")[1]
    assert (await h.app.get_execution(execution.id)).status == ExecutionStatus.WAITING


async def test_a_signal_wakes_one_wait_only(h: Harness) -> None:
    """The signal a waiting step took is consumed: a later wait for the same event
    waits for the next one."""
    ask = {"type": "wait_for_event", "config": {"event": "go", "timeoutSeconds": 3600}}
    workflow_id = await h.create(
        linear({"id": "first", **ask}, {"id": "second", **ask}, {"id": "end", "type": "count"})
    )
    execution = await h.start(workflow_id)
    await h.drain(advance=False)
    answer = await h.app.send_event(execution.id, "go", 1)
    assert answer["delivered"] is True
    await h.drain(advance=False)
    assert (await h.app.get_execution(execution.id)).status == ExecutionStatus.WAITING
    assert dict(await h.statuses(execution.id)) == {"first": "succeeded", "second": "waiting"}
    await h.app.send_event(execution.id, "go", 2)
    await h.drain(advance=False)
    done = await h.app.get_execution(execution.id)
    assert done.status == ExecutionStatus.SUCCEEDED


async def test_resume_restores_running_for_a_fan_out_whose_bodies_wait(h: Harness) -> None:
    """Waiting bodies and their fan-out owner (or the deadline timer) do not make the
    execution ``waiting``: a resume restores ``running``, the status the pause found."""
    wait = {"type": "wait", "config": {"seconds": 600}}
    workflow_id = await h.create(
        {
            "name": "fan",
            "timeoutSeconds": 3600,
            "steps": [
                {
                    "id": "fan",
                    "type": "parallel",
                    "config": {
                        "branches": [{"name": "l", "start": "l"}, {"name": "r", "start": "r"}]
                    },
                },
                {"id": "l", **wait},
                {"id": "r", **wait},
            ],
        }
    )
    execution = await h.start(workflow_id)
    await h.drain(advance=False)
    assert (await h.app.get_execution(execution.id)).status == ExecutionStatus.RUNNING
    await h.app.pause(execution.id)
    assert (await h.app.resume(execution.id)).status == ExecutionStatus.RUNNING
    await h.drain()
    assert (await h.app.get_execution(execution.id)).status == ExecutionStatus.SUCCEEDED


async def test_resume_restores_running_for_a_parent_waiting_on_its_child(h: Harness) -> None:
    await h.create(
        linear(
            {
                "id": "hold",
                "type": "wait_for_event",
                "config": {"event": "go", "timeoutSeconds": 60},
            },
            name="child",
        )
    )
    workflow_id = await h.create(
        {
            "name": "parent",
            "steps": [{"id": "call", "type": "subworkflow", "config": {"workflowName": "child"}}],
        }
    )
    parent = await h.start(workflow_id)
    await h.drain(advance=False)
    assert (await h.app.get_execution(parent.id)).status == ExecutionStatus.RUNNING
    await h.app.pause(parent.id)
    assert (await h.app.resume(parent.id)).status == ExecutionStatus.RUNNING


async def test_a_main_flow_park_resumes_as_waiting(h: Harness) -> None:
    workflow_id = await h.create(
        linear({"id": "w", "type": "wait", "config": {"seconds": 600}}, timeoutSeconds=3600)
    )
    execution = await h.start(workflow_id)
    await h.drain(advance=False)
    assert (await h.app.get_execution(execution.id)).status == ExecutionStatus.WAITING
    await h.app.pause(execution.id)
    assert (await h.app.resume(execution.id)).status == ExecutionStatus.WAITING


async def test_a_timed_out_first_step_is_redriven_not_the_deadline_timer(h: Harness) -> None:
    workflow_id = await h.create(
        linear(
            {
                "id": "ask",
                "type": "wait_for_event",
                "config": {"event": "go", "timeoutSeconds": 9999},
            },
            timeoutSeconds=60,
        )
    )
    execution = await h.start(workflow_id)
    await h.drain()
    assert (await h.app.get_execution(execution.id)).status == ExecutionStatus.TIMED_OUT
    assert {r.step_id for r in await h.runs(execution.id)} == {"ask", "$deadline"}
    await h.app.redrive(execution.id)
    await h.drain(advance=False)
    await h.app.send_event(execution.id, "go", True)
    await h.drain(advance=False)
    assert (await h.app.get_execution(execution.id)).status == ExecutionStatus.SUCCEEDED


async def test_the_loop_limit_error_names_its_step(h: Harness) -> None:
    execution = await h.run(
        {
            "name": "loop",
            "steps": [
                {"id": "inc", "type": "transform", "nextSteps": ["again"], "maxIterations": 2},
                {
                    "id": "again",
                    "type": "branch",
                    "nextSteps": ["inc"],
                    "config": {"cases": [{"when": "true", "next": "inc"}]},
                },
            ],
        }
    )
    assert execution.error_info is not None
    assert execution.error_info.code == "LOOP_LIMIT_EXCEEDED"
    assert execution.error_info.step_id == "inc"
    assert "maxIterations=2" in execution.error_info.message


async def test_a_child_execution_id_is_a_uuid(h: Harness) -> None:
    await h.create({"name": "child", "steps": [{"id": "a", "type": "transform"}]})
    parent = await h.run(
        {
            "name": "parent",
            "steps": [{"id": "call", "type": "subworkflow", "config": {"workflowName": "child"}}],
        }
    )
    [call] = await h.runs(parent.id)
    child_id = call.state["childExecutionId"]
    assert str(uuid.UUID(child_id)) == child_id


async def test_deliveries_of_unknown_or_finished_work_say_so(h: Harness) -> None:
    workflow_id = await h.create(linear({"id": "a", "type": "count"}))
    execution = await h.start(workflow_id)
    ghost = StepTask(execution.id, "no-such-run", h.clock.now(), 0)
    assert (await h.engine.handle_task(ghost)).status == "unknown"
    [task] = h.queue.take_due(h.clock.now())
    await h.app.cancel(execution.id)
    assert (await h.engine.handle_task(task)).status == "duplicate"  # its run was cancelled
    assert not h.counter.calls


async def test_a_deadline_timer_delivered_within_the_early_tolerance_waits(h: Harness) -> None:
    """A task may come up to a second early (clock skew); the deadline timer must not
    end the execution before its deadline, nor be run as a step."""
    workflow_id = await h.create(
        linear(
            {
                "id": "ask",
                "type": "wait_for_event",
                "config": {"event": "go", "timeoutSeconds": 600},
            },
            timeoutSeconds=60,
        )
    )
    execution = await h.start(workflow_id)
    await h.drain(advance=False)
    [timer] = [t for t in h.queue.tasks if t.due_at == h.clock.now() + timedelta(seconds=60)]
    h.clock.advance(timedelta(seconds=59.5))
    assert (await h.engine.handle_task(timer)).status == "early"
    assert (await h.app.get_execution(execution.id)).status == ExecutionStatus.WAITING
    h.clock.advance(timedelta(seconds=0.5))
    await h.drain(advance=False)
    timed_out = await h.app.get_execution(execution.id)
    assert timed_out.status == ExecutionStatus.TIMED_OUT
    assert timed_out.error_info is not None
    assert timed_out.error_info.message == "execution deadline passed"


async def test_a_late_branch_does_not_reopen_a_parallel_that_failed_and_continued(
    h: Harness,
) -> None:
    """``onError: continue`` on a parallel: the first failing branch ends the fan-out
    and the flow goes on; a sibling already running, which finishes later, is not
    joined (the fan-out would complete again and the next step run twice)."""
    h.counter.delay = 0.2
    workflow_id = await h.create(
        {
            "name": "p",
            "steps": [
                {
                    "id": "fan",
                    "type": "parallel",
                    "nextSteps": ["after"],
                    "onError": {"strategy": "continue"},
                    "config": {
                        "branches": [
                            {"name": "slow", "start": "slow"},
                            {"name": "ko", "start": "bad"},
                        ]
                    },
                },
                {"id": "slow", "type": "count"},
                {"id": "bad", "type": "transform", "config": {"output": "${vars.none.deeper}"}},
                {"id": "after", "type": "wait", "config": {"seconds": 60}, "nextSteps": ["end"]},
                {"id": "end", "type": "count"},
            ],
        }
    )
    execution = await h.start(workflow_id)
    [fan] = h.queue.take_due(h.clock.now())
    await h.deliver(fan)
    bodies = h.queue.take_due(h.clock.now())
    assert len(bodies) == 2
    # slow is claimed and running when bad fails and the flow continues; then slow ends
    await asyncio.gather(*(h.deliver(task) for task in bodies))
    assert dict(await h.statuses(execution.id))["fan"] == "failed"
    await h.drain()
    done = await h.app.get_execution(execution.id)
    assert done.status == ExecutionStatus.SUCCEEDED
    runs = await h.runs(execution.id)
    assert [r.status for r in runs if r.step_id == "fan"] == [StepRunStatus.FAILED]
    assert sum(h.counter.calls[r.id] for r in runs if r.step_id == "end") == 1
    assert [r.step_id for r in runs].count("after") == 1


async def test_a_branch_failure_keeps_its_code_and_retryability(h: Harness) -> None:
    h.counter.fail_codes["bad"] = ("FLAKY", True)
    execution = await h.run(
        {
            "name": "p",
            "steps": [
                {
                    "id": "fan",
                    "type": "parallel",
                    "config": {"branches": [{"name": "ko", "start": "bad"}]},
                },
                {"id": "bad", "type": "count"},
            ],
        }
    )
    error = execution.error_info
    assert error is not None
    assert (error.code, error.retryable, error.step_id) == ("FLAKY", True, "fan")
    assert error.message == "fan[0] failed at bad: bad told to fail"


async def test_a_child_starts_at_the_engines_time(h: Harness) -> None:
    await h.create({"name": "child", "steps": [{"id": "a", "type": "transform"}]})
    parent = await h.run(
        {
            "name": "parent",
            "steps": [{"id": "call", "type": "subworkflow", "config": {"workflowName": "child"}}],
        }
    )
    [call] = await h.runs(parent.id)
    [started, *_] = await h.store.list_events(call.state["childExecutionId"])
    assert started.type == "execution.started" and started.at == h.clock.now()
    assert started.data == {
        "workflowVersion": 1,
        "trigger": {"type": "subworkflow", "parentExecutionId": parent.id, "depth": 1},
    }


def test_output_size_is_measured_on_compact_json() -> None:
    value = {"k": "x" * 100}
    compact = len('{"k":""}') + 100
    assert policy.cap_output(value, compact) == (value, False)
    cut, truncated = policy.cap_output(value, compact - 1)
    assert truncated and cut["bytes"] == compact


async def test_a_delivery_that_finds_its_run_busy_leaves_one_check_at_the_leases_expiry(
    h: Harness,
) -> None:
    """Issue 11 item 3: the holder of a lease was killed, the queue redelivers (the
    holder's request failed), the delivery finds the run busy. It used to be acked and
    the run left to the sweeper; now one task, named after the lease, comes back when
    the lease expires and takes the run over."""
    workflow_id = await h.create(linear({"id": "a", "type": "count"}))
    execution = await h.start(workflow_id)
    [task] = h.queue.take_due(h.clock.now())
    await h.engine._claim(task, "the-process-that-died")
    [claimed] = await h.runs(execution.id)
    assert claimed.lease_expires_at is not None
    for _ in range(3):  # three redeliveries of the same task while the lease holds
        assert (await h.engine.handle_task(task)).status == "busy"
    checks = h.queue.take_due(claimed.lease_expires_at)
    assert len({c.name for c in checks}) == 1, "one task name per lease"
    check = checks[0]
    assert (check.run_id, check.wake_seq, check.due_at) == (
        claimed.id,
        claimed.wake_seq,
        claimed.lease_expires_at,
    )
    assert check.name != task.name
    assert h.counter.calls[claimed.id] == 0
    h.clock.set(claimed.lease_expires_at)
    assert (await h.engine.handle_task(check)).status == "done"
    assert h.counter.calls[claimed.id] == 1
    assert (await h.app.get_execution(execution.id)).status == ExecutionStatus.SUCCEEDED
    assert (await h.engine.handle_task(check)).status == "duplicate"


async def test_a_busy_delivery_of_a_live_holder_changes_nothing(h: Harness) -> None:
    """The lease check of a holder that finished in time finds its run done."""
    workflow_id = await h.create(linear({"id": "a", "type": "count"}))
    execution = await h.start(workflow_id)
    [task] = h.queue.take_due(h.clock.now())
    h.counter.delay = 0.05
    first = asyncio.create_task(h.engine.handle_task(task))
    await asyncio.sleep(0.01)
    assert (await h.engine.handle_task(task)).status == "busy"
    assert (await first).status == "done"
    [check] = [t for t in h.queue.tasks if t.run_id == task.run_id]
    h.clock.set(check.due_at)
    assert (await h.engine.handle_task(check)).status == "duplicate"
    [run] = await h.runs(execution.id)
    assert h.counter.calls[run.id] == 1


async def test_a_contended_run_does_not_stop_the_sweepers_pass(h: Harness) -> None:
    """On Firestore one bump can fail with lock contention; the pass goes on with the
    other overdue runs (it used to end there, leaving them all to the next pass)."""
    workflow_id = await h.create(linear({"id": "a", "type": "count"}))
    first = await h.start(workflow_id)
    second = await h.start(workflow_id)
    h.queue.take_due(h.clock.now())  # both enqueues were lost
    h.clock.advance(timedelta(seconds=120))
    real = h.store.run_transaction
    calls = 0

    async def contended_once(fn):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        if calls == 1:
            raise Conflict("transaction contention", code="CONTENTION")
        return await real(fn)

    h.store.run_transaction = contended_once  # type: ignore[method-assign]
    assert await h.engine.sweep() == 2
    [task] = h.queue.take_due(h.clock.now())
    h.store.run_transaction = real  # type: ignore[method-assign]
    assert task.execution_id in {first.id, second.id}
    await h.engine.sweep()  # the next pass takes the contended one
    again = {t.execution_id for t in h.queue.take_due(h.clock.now())}
    assert again == {first.id, second.id}


async def test_a_lease_check_that_comes_early_leaves_another_under_a_new_name(
    h: Harness,
) -> None:
    """A queue whose timer is coarse (the Cloud Tasks emulator) can deliver the lease
    check before the lease ends. Re-asking for the same task name is dropped as a repeat
    of the task being delivered, which left the run to the sweeper (a lease plus its 30 s
    grace): the early check asks for one under a new name, which takes the run over."""
    workflow_id = await h.create(linear({"id": "a", "type": "count"}))
    execution = await h.start(workflow_id)
    [task] = h.queue.take_due(h.clock.now())
    await h.engine._claim(task, "the-process-that-died")
    [claimed] = await h.runs(execution.id)
    assert claimed.lease_expires_at is not None
    assert (await h.engine.handle_task(task)).status == "busy"
    [check] = h.queue.take_due(claimed.lease_expires_at)
    h.clock.set(claimed.lease_expires_at - timedelta(seconds=5))
    assert (await h.engine.handle_task(check)).status == "busy"
    [again] = h.queue.take_due(claimed.lease_expires_at)
    assert again.name not in (check.name, task.name)
    assert again.due_at == claimed.lease_expires_at
    h.clock.set(claimed.lease_expires_at - timedelta(seconds=1))  # early once more
    assert (await h.engine.handle_task(again)).status == "busy"
    [third] = h.queue.take_due(claimed.lease_expires_at)
    assert third.name not in (again.name, check.name, task.name)
    h.clock.set(claimed.lease_expires_at)
    assert (await h.engine.handle_task(third)).status == "done"
    assert h.counter.calls[claimed.id] == 1
    assert (await h.app.get_execution(execution.id)).status == ExecutionStatus.SUCCEEDED
