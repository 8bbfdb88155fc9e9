"""Behaviour the fifth mutation sample (seed 31) found untested: redrive reopening every
fan-out a nested failure closed, cancelled runs' finish time, the output's ``item``,
a child's started event status, capping outputs JSON refuses, early re-queues and
restart recovery keeping tasks' execution and due time, an execution running again
once its parked step wakes, and executions of another tenant."""

from __future__ import annotations

from datetime import timedelta

from harness import Harness

from shared.engine.steps import Complete, Outcome, StepContext, StepType
from shared.models import ExecutionStatus, StepRunStatus


async def test_redrive_reopens_every_fan_out_a_nested_failure_closed(h: Harness) -> None:
    h.counter.fail_codes["bad"] = ("NOPE", False)
    execution = await h.run(
        {
            "name": "nested",
            "steps": [
                {
                    "id": "outer",
                    "type": "parallel",
                    "config": {"branches": [{"name": "in", "start": "inner"}]},
                },
                {
                    "id": "inner",
                    "type": "parallel",
                    "config": {"branches": [{"name": "ko", "start": "bad"}]},
                },
                {"id": "bad", "type": "count"},
            ],
        }
    )
    assert execution.status == ExecutionStatus.FAILED
    del h.counter.fail_codes["bad"]
    await h.app.redrive(execution.id)
    await h.drain()
    done = await h.app.get_execution(execution.id)
    assert done.status == ExecutionStatus.SUCCEEDED
    assert done.result == {"in": {"ko": {"step": "bad", "prev": None}}}


async def test_cancel_records_when_it_ended_each_live_step(h: Harness) -> None:
    execution = await h.run(
        {
            "name": "w",
            "steps": [
                {
                    "id": "w",
                    "type": "wait_for_event",
                    "config": {"event": "go", "timeoutSeconds": 3600},
                }
            ],
        },
        advance=False,
    )
    h.clock.set(h.clock.now() + timedelta(seconds=30))
    await h.app.cancel(execution.id)
    [run] = await h.runs(execution.id)
    assert run.status == StepRunStatus.CANCELLED
    assert run.finished_at == h.clock.now()


async def test_the_workflow_output_may_name_item_outside_a_map(h: Harness) -> None:
    execution = await h.run(
        {
            "name": "o",
            "output": {"item": "${item}", "index": "${index}"},
            "steps": [{"id": "a", "type": "transform", "config": {"output": 1}}],
        }
    )
    assert execution.status == ExecutionStatus.SUCCEEDED
    assert execution.result == {"item": None, "index": None}


async def test_a_childs_started_event_carries_its_running_status(h: Harness) -> None:
    await h.create({"name": "child", "steps": [{"id": "c", "type": "count"}]})
    execution = await h.run(
        {
            "name": "parent",
            "steps": [
                {"id": "sub", "type": "subworkflow", "config": {"workflowName": "child"}},
            ],
        }
    )
    assert execution.status == ExecutionStatus.SUCCEEDED
    [sub] = [r for r in await h.runs(execution.id) if r.step_id == "sub"]
    child_events = await h.store.list_events(sub.state["childExecutionId"])
    assert child_events[0].type == "execution.started"
    assert child_events[0].status == "running"


class BigTupleKeys(StepType):
    """An output JSON refuses (tuple keys), too big for a run document."""

    type_name = "big_tuple_keys"

    async def execute(self, ctx: StepContext) -> Outcome:
        return Complete(output={(1, 2): "x" * (300 * 1024)})


async def test_an_output_json_refuses_is_capped_by_its_text_size(h: Harness) -> None:
    h.registry.register(BigTupleKeys())
    execution = await h.run(
        {
            "name": "big",
            "steps": [
                {"id": "b", "type": "big_tuple_keys", "nextSteps": ["n"]},
                {"id": "n", "type": "count"},
            ],
        }
    )
    assert execution.status == ExecutionStatus.SUCCEEDED
    [big] = [r for r in await h.runs(execution.id) if r.step_id == "b"]
    assert big.output_truncated is True
    assert big.output["truncated"] is True
    assert big.output["bytes"] > 300 * 1024


async def test_an_early_delivery_is_requeued_for_its_own_execution(h: Harness) -> None:
    workflow_id = await h.create(
        {"name": "w", "steps": [{"id": "w", "type": "wait", "config": {"seconds": 600}}]}
    )
    execution = await h.start(workflow_id)
    await h.drain(advance=False)
    [timer] = h.queue.tasks
    h.queue.tasks.clear()
    await h.deliver(timer)  # ten minutes early
    assert h.results[-1].status == "early"
    [again] = h.queue.tasks
    assert again.execution_id == execution.id
    assert again.due_at == timer.due_at


async def test_restart_recovery_enqueues_each_run_at_its_due_time(h: Harness) -> None:
    workflow_id = await h.create(
        {"name": "w", "steps": [{"id": "w", "type": "wait", "config": {"seconds": 600}}]}
    )
    execution = await h.start(workflow_id)
    await h.drain(advance=False)
    [timer] = h.queue.tasks
    h.queue.tasks.clear()
    assert await h.engine.recover() == 1
    [task] = h.queue.tasks
    assert task.execution_id == execution.id
    assert task.due_at == timer.due_at == h.clock.now() + timedelta(seconds=600)


class SeesStatus(StepType):
    """Records the status its execution has while it runs."""

    type_name = "sees_status"

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def execute(self, ctx: StepContext) -> Outcome:
        self.seen.append(ctx.execution.status.value)
        return Complete(output=None)


async def test_an_execution_runs_again_once_its_parked_step_wakes(h: Harness) -> None:
    probe = SeesStatus()
    h.registry.register(probe)
    workflow_id = await h.create(
        {
            "name": "w",
            "steps": [
                {
                    "id": "w",
                    "type": "wait_for_event",
                    "config": {"event": "go", "timeoutSeconds": 3600},
                    "nextSteps": ["p"],
                },
                {"id": "p", "type": "sees_status"},
            ],
        }
    )
    execution = await h.start(workflow_id)
    await h.drain(advance=False)
    assert (await h.app.get_execution(execution.id)).status == ExecutionStatus.WAITING
    await h.engine.send_signal(execution.id, "go", {"ok": 1})
    [woken] = h.queue.take_due(h.clock.now())
    await h.deliver(woken)
    assert (await h.app.get_execution(execution.id)).status in (
        ExecutionStatus.RUNNING,
        ExecutionStatus.SUCCEEDED,
    )
    await h.drain(advance=False)
    assert probe.seen == ["running"]
    assert (await h.app.get_execution(execution.id)).status == ExecutionStatus.SUCCEEDED


async def test_an_execution_belongs_to_the_tenant_that_started_it(h: Harness) -> None:
    acme = h.app.for_tenant("acme")
    created = await acme.create_workflow(
        {"name": "t", "steps": [{"id": "a", "type": "transform", "config": {"output": 1}}]}
    )
    from shared.app.service import StartRequest

    execution = await acme.start_execution(StartRequest(created.id, {}))
    assert execution.tenant == "acme"
    await h.drain()
    stored = await acme.get_execution(execution.id)
    assert stored.tenant == "acme"
    assert stored.status == ExecutionStatus.SUCCEEDED
