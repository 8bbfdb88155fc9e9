"""Event kinds and task names of the less travelled paths (found by ``make mutation``
with another seed): fan-out and child waits, skips, cancelled in-flight runs, a step
that pauses its execution, a step woken by a signal, timer task names, stale tasks."""

from __future__ import annotations

import asyncio
from typing import Any

from harness import Harness, linear

from shared.engine import policy
from shared.engine.control import _bump
from shared.engine.steps import Outcome, Park, StepContext, StepType
from shared.models import ExecutionStatus
from shared.ports import StepTask


class HoldStep(StepType):
    """Parks until the ``go`` signal; with ``pause``, pauses its execution instead."""

    type_name = "hold"

    def __init__(self, pause: str | None = None) -> None:
        self.pause = pause

    async def execute(self, ctx: StepContext) -> Outcome:
        if self.pause is not None:
            return Park(pause=self.pause)
        return Park(signal="go")


async def events(h: Harness, execution_id: str) -> list[tuple[str, str | None, dict[str, Any]]]:
    return [(e.type, e.step_id, e.data) for e in await h.store.list_events(execution_id)]


async def test_a_fan_out_and_a_child_wait_with_their_own_data(h: Harness) -> None:
    await h.create({"name": "child", "steps": [{"id": "c", "type": "transform"}]})
    execution = await h.run(
        {
            "name": "p",
            "steps": [
                {
                    "id": "fan",
                    "type": "parallel",
                    "config": {
                        "branches": [{"name": "l", "start": "l"}, {"name": "r", "start": "r"}]
                    },
                },
                {"id": "l", "type": "subworkflow", "config": {"workflowName": "child"}},
                {"id": "r", "type": "transform"},
            ],
        }
    )
    assert execution.status == ExecutionStatus.SUCCEEDED
    waiting = [(s, d) for t, s, d in await events(h, execution.id) if t == "step.waiting"]
    [call] = [r for r in await h.runs(execution.id) if r.step_id == "l"]
    assert waiting == [
        ("fan", {"bodies": 2}),
        ("l", {"childExecutionId": call.state["childExecutionId"]}),
    ]


async def test_a_skipped_step_and_an_instant_execution(h: Harness) -> None:
    execution = await h.run(
        linear(
            {"id": "a", "type": "transform", "config": {"output": 1}},
            {"id": "b", "type": "transform", "conditions": [{"expression": "false"}]},
        )
    )
    kinds = [(t, s) for t, s, _ in await events(h, execution.id)]
    assert ("step.skipped", "b") in kinds
    assert execution.duration == 0.0  # the manual clock did not move


async def test_the_outcome_of_a_run_in_flight_when_its_execution_is_cancelled_is_dropped(
    h: Harness,
) -> None:
    h.counter.delay = 0.2
    execution = await h.start(await h.create(linear({"id": "a", "type": "count"})))
    [task] = h.queue.take_due(h.clock.now())

    async def cancel_soon() -> None:
        await asyncio.sleep(0.05)
        await h.app.cancel(execution.id, "stop")

    await asyncio.gather(h.deliver(task), cancel_soon())
    assert h.results[-1].status == "lost_lease"
    assert sum(h.counter.calls.values()) == 1
    kinds = [(t, s) for t, s, _ in await events(h, execution.id)]
    assert kinds[-1] == ("execution.cancelled", None)
    assert ("step.succeeded", "a") not in kinds
    assert await h.statuses(execution.id) == [("a", "cancelled")]


async def test_a_step_that_pauses_its_execution_says_why(h: Harness) -> None:
    h.registry.register(HoldStep(pause="needs review"))
    execution = await h.run(linear({"id": "hold", "type": "hold"}))
    assert execution.status == ExecutionStatus.PAUSED
    kinds = await events(h, execution.id)
    assert kinds[-1] == ("execution.paused", None, {"reason": "needs review", "stepId": "hold"})


async def test_a_signal_wakes_a_step_with_ok_value_and_name(h: Harness) -> None:
    h.registry.register(HoldStep())
    execution = await h.start(await h.create(linear({"id": "hold", "type": "hold"})))
    await h.drain(advance=False)
    await h.app.send_event(execution.id, "go", {"n": 1})
    await h.drain(advance=False)
    done = await h.app.get_execution(execution.id)
    assert done.result == {"ok": True, "value": {"n": 1}, "signal": "go"}


async def test_a_parked_timer_gets_a_task_name_after_the_one_delivering_it(h: Harness) -> None:
    execution = await h.start(
        await h.create(linear({"id": "w", "type": "wait", "config": {"seconds": 60}}))
    )
    await h.app.pause(execution.id)
    await h.app.resume(execution.id)  # the run's task is named again: wake_seq 1
    delivering = [t for t in h.queue.take_due(h.clock.now()) if t.wake_seq == 1]
    assert len(delivering) == 1
    await h.deliver(delivering[0])
    [timer] = h.queue.tasks
    assert timer.wake_seq == 2


async def test_a_stale_early_task_is_not_requeued(h: Harness) -> None:
    execution = await h.start(
        await h.create(linear({"id": "w", "type": "wait", "config": {"seconds": 3600}}))
    )
    await h.drain(advance=False)
    [timer] = h.queue.tasks
    h.queue.tasks.clear()
    stale = StepTask(execution.id, timer.run_id, h.clock.now(), timer.wake_seq - 1)
    assert (await h.engine.handle_task(stale)).status == "early"
    assert not h.queue.tasks, "an older task name is dropped, not given a new one"


async def test_the_sweeper_does_not_rename_a_run_someone_renamed_meanwhile(h: Harness) -> None:
    execution = await h.start(await h.create(linear({"id": "a", "type": "count"})))
    [seen] = await h.runs(execution.id)
    renamed = await h.store.run_transaction(_bump(seen, h.clock.now()))
    assert renamed is not None and renamed.wake_seq == seen.wake_seq + 1
    assert await h.store.run_transaction(_bump(seen, h.clock.now())) is None
    [run] = await h.runs(execution.id)
    assert run.wake_seq == seen.wake_seq + 1


def test_an_output_with_keys_json_refuses_is_kept_as_text() -> None:
    assert policy.cap_output({(1, 2): "a"}, 100) == ("{(1, 2): 'a'}", False)


async def test_a_signal_that_came_first_wakes_the_step_with_ok_value_and_name(
    h: Harness,
) -> None:
    h.registry.register(HoldStep())
    workflow_id = await h.create(
        linear(
            {"id": "w", "type": "wait", "config": {"seconds": 5}}, {"id": "hold", "type": "hold"}
        )
    )
    execution = await h.start(workflow_id)
    await h.drain(advance=False)
    answer = await h.app.send_event(execution.id, "go", 7)
    assert answer["delivered"] is False  # kept for the step that waits for it later
    await h.drain()
    done = await h.app.get_execution(execution.id)
    assert done.result == {"ok": True, "value": 7, "signal": "go"}
    woken = [(s, d) for t, s, d in await events(h, execution.id) if t == "step.woken"]
    assert woken == [("hold", {"signal": "go"})]


async def test_records_carry_the_engines_time_ids_and_iterations(h: Harness) -> None:
    execution = await h.run(
        {
            "name": "loop",
            "timeoutSeconds": 60,
            "variables": {"n": 0},
            "steps": [
                {
                    "id": "inc",
                    "type": "transform",
                    "config": {"set": {"n": "${vars.n + 1}"}},
                    "nextSteps": ["again"],
                    "maxIterations": 5,
                },
                {
                    "id": "again",
                    "type": "branch",
                    "nextSteps": ["inc", "end"],
                    "config": {"cases": [{"when": "vars.n < 3", "next": "inc"}], "default": "end"},
                },
                {"id": "end", "type": "transform"},
            ],
        },
        advance=False,
    )
    assert execution.status == ExecutionStatus.SUCCEEDED
    runs = await h.runs(execution.id)
    assert [r.iteration for r in runs if r.step_id == "inc"] == [1, 2, 3]
    assert {r.workflow_id for r in runs} == {execution.workflow_id}
    assert any(r.step_id == "$deadline" for r in runs)
    assert {e.at for e in await h.store.list_events(execution.id)} == {h.clock.now()}


async def test_a_delivery_past_the_deadline_ends_the_execution_and_says_cancelled(
    h: Harness,
) -> None:
    workflow_id = await h.create(linear({"id": "a", "type": "count"}, timeoutSeconds=60))
    execution = await h.start(workflow_id)
    [first] = [t for t in h.queue.take_due(h.clock.now())]
    h.clock.advance(61)
    assert (await h.engine.handle_task(first)).status == "cancelled"
    assert (await h.app.get_execution(execution.id)).status == ExecutionStatus.TIMED_OUT
    assert not h.counter.calls


async def test_each_redrive_counts_and_a_failure_names_its_run(h: Harness) -> None:
    h.counter.fail_codes["a"] = ("BROKEN", False)
    execution = await h.start(await h.create(linear({"id": "a", "type": "count"})))
    await h.drain()
    for expected in (1, 2):
        failed = await h.app.get_execution(execution.id)
        [last] = (await h.runs(execution.id))[-1:]
        assert failed.status == ExecutionStatus.FAILED and failed.failed_run_id == last.id
        assert (await h.app.redrive(execution.id)).redrive_count == expected
        await h.drain()
