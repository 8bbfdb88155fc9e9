"""Behaviour the fourth mutation sample (seed 29) found untested: idempotency keys per
loop visit and across the redrive of a retryable failure, what ``continue`` and
``fallback`` hand on, the workflow output's environment and its error's step, a failure
deep in nested fan-outs ending the execution, ``index`` along a map body, a branch
dropped after its fan-out ended, and hops or cancels that meet a missing execution.
"""

from __future__ import annotations

from datetime import timedelta

from harness import Harness

from shared.engine.steps import Outcome, StepContext, StepType
from shared.errors import StepFailed
from shared.models import ExecutionStatus, StepRun, StepRunStatus
from shared.ports import ExecutionTx, StepTask

# -- idempotency keys ---------------------------------------------------------------------


async def test_each_loop_visit_sends_its_own_idempotency_key(h: Harness) -> None:
    """A step visited again by a loop is a new request to the service, not a retry of
    the first visit: a key shared by the visits would make the service replay the first
    answer and apply the effect once instead of once per visit."""
    execution = await h.run(
        {
            "name": "loop",
            "variables": {"n": 0},
            "steps": [
                {"id": "work", "type": "count", "nextSteps": ["inc"], "maxIterations": 5},
                {
                    "id": "inc",
                    "type": "transform",
                    "nextSteps": ["again"],
                    "config": {"set": {"n": "${vars.n + 1}"}},
                },
                {
                    "id": "again",
                    "type": "branch",
                    "nextSteps": ["work", "end"],
                    "config": {"cases": [{"when": "vars.n < 3", "next": "work"}], "default": "end"},
                },
                {"id": "end", "type": "transform"},
            ],
        }
    )
    assert execution.status == ExecutionStatus.SUCCEEDED
    works = [r for r in await h.runs(execution.id) if r.step_id == "work"]
    assert [r.iteration for r in works] == [1, 2, 3]
    assert len({r.idempotency_key for r in works}) == 3


async def test_redrive_after_a_retryable_failure_resends_the_same_key(h: Harness) -> None:
    """A retryable failure (a timeout, a 5xx) may have reached the service: the redriven
    call carries the key of the failed one, so the service applies the effect once."""
    h.counter.fail_codes["pay"] = ("UPSTREAM_TIMEOUT", True)
    execution = await h.run(
        {
            "name": "pay",
            "steps": [{"id": "pay", "type": "count", "onError": {"retry": {"maxAttempts": 1}}}],
        }
    )
    assert execution.status == ExecutionStatus.FAILED
    del h.counter.fail_codes["pay"]
    await h.app.redrive(execution.id)
    await h.drain()
    assert (await h.app.get_execution(execution.id)).status == ExecutionStatus.SUCCEEDED
    pays = [r for r in await h.runs(execution.id) if r.step_id == "pay"]
    assert [(r.generation, r.status.value) for r in pays] == [(0, "failed"), (1, "succeeded")]
    assert pays[0].idempotency_key is not None
    assert pays[1].idempotency_key == pays[0].idempotency_key


# -- error strategies ---------------------------------------------------------------------


class FailsWithInput(StepType):
    """Records what it was asked (as the llm step does in ``run.input``), then fails."""

    type_name = "fails_with_input"

    async def execute(self, ctx: StepContext) -> Outcome:
        ctx.run.input = {"asked": ctx.step.id}
        raise StepFailed("no answer", code="NOPE", retryable=False)


async def test_the_fallback_step_receives_the_failed_runs_input(h: Harness) -> None:
    """``prev`` of a fallback step is ``{error, input}``: the input the failed step
    recorded, next to its error."""
    h.registry.register(FailsWithInput())
    execution = await h.run(
        {
            "name": "fb",
            "steps": [
                {
                    "id": "ask",
                    "type": "fails_with_input",
                    "onError": {"strategy": "fallback", "fallbackStep": "rescue"},
                },
                {"id": "rescue", "type": "transform", "config": {"output": "${prev}"}},
            ],
        }
    )
    assert execution.status == ExecutionStatus.SUCCEEDED
    assert isinstance(execution.result, dict)
    assert set(execution.result) == {"error", "input"}
    assert execution.result["input"] == {"asked": "ask"}
    assert execution.result["error"]["code"] == "NOPE"


async def test_continue_goes_on_with_the_first_next_step_only(h: Harness) -> None:
    """A branch step that failed under ``continue`` (no case matched, no default) does
    not take every branch: like a skipped step it goes on with its first next step,
    whose ``prev`` is ``{error, input}``."""
    execution = await h.run(
        {
            "name": "c",
            "steps": [
                {
                    "id": "pick",
                    "type": "branch",
                    "nextSteps": ["first", "second"],
                    "onError": {"strategy": "continue"},
                    "config": {"cases": [{"when": "false", "next": "second"}]},
                },
                {"id": "first", "type": "transform", "config": {"output": "${prev.error.code}"}},
                {"id": "second", "type": "count"},
            ],
        }
    )
    assert execution.status == ExecutionStatus.SUCCEEDED
    assert execution.result == "NO_BRANCH_MATCHED"
    assert await h.statuses(execution.id) == [("pick", "failed"), ("first", "succeeded")]
    assert sum(h.counter.calls.values()) == 0


# -- the workflow output ------------------------------------------------------------------


async def test_the_workflow_output_sees_the_execution_id(h: Harness) -> None:
    execution = await h.run(
        {
            "name": "o",
            "output": {"id": "${execution.id}"},
            "steps": [{"id": "a", "type": "transform", "config": {"output": 1}}],
        }
    )
    assert execution.status == ExecutionStatus.SUCCEEDED
    assert execution.result == {"id": execution.id}


async def test_a_failing_workflow_output_names_the_last_step(h: Harness) -> None:
    execution = await h.run(
        {
            "name": "o",
            "output": "${vars.missing.field}",
            "steps": [
                {"id": "a", "type": "transform", "nextSteps": ["last"]},
                {"id": "last", "type": "transform"},
            ],
        }
    )
    assert execution.status == ExecutionStatus.FAILED
    assert execution.error_info is not None
    assert execution.error_info.code == "OUTPUT_ERROR"
    assert execution.error_info.step_id == "last"
    events = await h.store.list_events(execution.id)
    assert events[-1].data["error"]["stepId"] == "last"


# -- fan-outs -----------------------------------------------------------------------------


async def test_a_failure_inside_nested_parallels_fails_the_execution(h: Harness) -> None:
    """The failure travels up through every fan-out in the commit that records it."""
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
    assert execution.error_info is not None
    assert (execution.error_info.code, execution.error_info.step_id) == ("NOPE", "outer")
    runs = await h.runs(execution.id)
    assert {r.step_id: r.status for r in runs} == {
        "outer": StepRunStatus.FAILED,
        "inner": StepRunStatus.FAILED,
        "bad": StepRunStatus.FAILED,
    }
    assert execution.failed_run_id == next(r.id for r in runs if r.step_id == "bad")


async def test_every_step_of_a_map_body_sees_its_index(h: Harness) -> None:
    """``item`` and ``index`` follow a body from step to step, hop by hop and inline."""
    execution = await h.run(
        {
            "name": "m",
            "steps": [
                {"id": "each", "type": "map", "config": {"items": "input.xs", "start": "a"}},
                {"id": "a", "type": "count", "nextSteps": ["b"]},
                {"id": "b", "type": "count", "nextSteps": ["c"]},
                {"id": "c", "type": "transform", "config": {"output": "${index}:${item}"}},
            ],
        },
        {"xs": ["x", "y", "z"]},
    )
    assert execution.status == ExecutionStatus.SUCCEEDED
    assert execution.result == ["0:x", "1:y", "2:z"]


async def test_a_branch_dropped_after_its_fan_out_ended_records_when(h: Harness) -> None:
    """A branch delivered after its parallel failed and the flow continued is cancelled,
    with the time it was dropped."""
    h.counter.fail_codes["bad"] = ("NOPE", False)
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
                            {"name": "ko", "start": "bad"},
                            {"name": "late", "start": "late"},
                        ]
                    },
                },
                {"id": "bad", "type": "count"},
                {"id": "late", "type": "count"},
                {"id": "after", "type": "wait", "config": {"seconds": 60}},
            ],
        }
    )
    execution = await h.start(workflow_id)
    [fan] = h.queue.take_due(h.clock.now())
    await h.deliver(fan)
    runs = {r.id: r.step_id for r in await h.runs(execution.id)}
    bodies = {runs[t.run_id]: t for t in h.queue.take_due(h.clock.now())}
    await h.deliver(bodies["bad"])
    h.clock.set(h.clock.now() + timedelta(seconds=5))
    await h.deliver(bodies["late"])
    assert h.results[-1].status == "cancelled"
    [late] = [r for r in await h.runs(execution.id) if r.step_id == "late"]
    assert late.status == StepRunStatus.CANCELLED
    assert late.finished_at == h.clock.now()
    assert h.counter.calls[late.id] == 0


# -- a missing execution ------------------------------------------------------------------


async def test_a_task_for_a_run_without_its_execution_is_unknown(h: Harness) -> None:
    """A run whose execution is gone (a store restored in part): the hop answers
    ``unknown`` and runs nothing."""
    now = h.clock.now()
    orphan = StepRun(
        id="0" * 32,
        execution_id="gone",
        workflow_id="w",
        step_id="s",
        step_type="count",
        status=StepRunStatus.SCHEDULED,
        due_at=now,
        created_at=now,
    )

    async def put(tx: ExecutionTx) -> None:
        tx.put_run(orphan)

    await h.store.run_transaction(put)
    await h.deliver(StepTask("gone", orphan.id, now, 0))
    assert h.results[-1].status == "unknown"
    assert sum(h.counter.calls.values()) == 0


async def test_cancel_ends_a_parent_whose_child_execution_is_missing(h: Harness) -> None:
    """Cancel passes on to children; a child that does not exist is nothing to cancel."""
    execution = await h.run(
        {
            "name": "parent",
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
    assert execution.status == ExecutionStatus.WAITING
    [waiting] = await h.runs(execution.id)

    async def point_at_nothing(tx: ExecutionTx) -> None:
        run = await tx.get_run(waiting.id)
        assert run is not None
        run.state = {**run.state, "childExecutionId": "no-such-child"}
        tx.put_run(run)

    await h.store.run_transaction(point_at_nothing)
    cancelled = await h.app.cancel(execution.id)
    assert cancelled.status == ExecutionStatus.CANCELLED
    assert (await h.app.get_execution(execution.id)).status == ExecutionStatus.CANCELLED
