"""Boundaries and control paths the engine's other tests left open (issue 11,
"tests that can fail where it matters"): the step limit, ``fallbackStep`` under
``strategy: fail``, children's real failure codes, cancel reaching a child, redrive
re-running only what did not succeed, redrive of a timed-out execution, output
capping and the subworkflow depth limit.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from harness import Harness, linear

from shared.engine.runtime import EngineSettings
from shared.engine.steps import Complete, Outcome, StepContext, StepType
from shared.models import ExecutionStatus, StepRunStatus
from shared.steps.messaging import MAX_DEPTH

STEP_OUTPUT_CAP = 256 * 1024
RESULT_CAP = 512 * 1024


def calls_of(h: Harness, runs: list[Any], step_id: str) -> int:
    """How often the counting step ran for ``step_id``, over every run of it."""
    return sum(h.counter.calls[r.id] for r in runs if r.step_id == step_id)


# -- the step limit ---------------------------------------------------------------------


@pytest.mark.parametrize("step_type", ["count", "transform"])
@pytest.mark.parametrize(("steps", "limit"), [(3, 3), (4, 3)])
async def test_an_execution_may_run_exactly_its_step_limit(
    h: Harness, step_type: str, steps: int, limit: int
) -> None:
    """``max_steps_per_execution`` finished runs pass; one more fails the execution
    with ``MAX_STEPS_EXCEEDED`` at the step that went over (hop by hop and inline)."""
    h.engine.settings = EngineSettings(max_steps_per_execution=limit)
    execution = await h.run(linear(*({"id": f"s{i}", "type": step_type} for i in range(steps))))
    runs = await h.runs(execution.id)
    assert execution.steps_run == steps
    if steps <= limit:
        assert execution.status == ExecutionStatus.SUCCEEDED
        assert execution.error_info is None
        return
    assert execution.status == ExecutionStatus.FAILED
    assert execution.error_info is not None
    assert execution.error_info.code == "MAX_STEPS_EXCEEDED"
    assert execution.error_info.step_id == f"s{limit}"
    assert f"more than {limit} steps" in execution.error_info.message
    assert execution.failed_run_id == runs[-1].id
    assert [r.step_id for r in runs] == [f"s{i}" for i in range(steps)]
    events = await h.store.list_events(execution.id)
    assert events[-1].type == "execution.failed"
    assert events[-1].data["error"]["code"] == "MAX_STEPS_EXCEEDED"


async def test_the_step_limit_counts_retries_and_stops_a_loop(h: Harness) -> None:
    """Every finished run counts, failed attempts included: a retried step exhausts the
    budget before its retries do."""
    h.engine.settings = EngineSettings(max_steps_per_execution=2)
    h.counter.fail_codes["flaky"] = ("UPSTREAM", True)
    retry = {"maxAttempts": 5, "initialDelaySeconds": 1, "jitter": 0}
    execution = await h.run(linear({"id": "flaky", "type": "count", "onError": {"retry": retry}}))
    assert execution.status == ExecutionStatus.FAILED
    assert execution.error_info is not None
    assert execution.error_info.code == "MAX_STEPS_EXCEEDED"
    assert sum(h.counter.calls.values()) == 3
    assert execution.steps_run == 3


# -- error strategies -------------------------------------------------------------------


async def test_a_fallback_step_under_strategy_fail_is_not_run(h: Harness) -> None:
    h.counter.fail_codes["s"] = ("NOPE", False)
    execution = await h.run(
        {
            "name": "f",
            "steps": [
                {
                    "id": "s",
                    "type": "count",
                    "nextSteps": ["normal"],
                    "onError": {"strategy": "fail", "fallbackStep": "rescue"},
                },
                {"id": "normal", "type": "count"},
                {"id": "rescue", "type": "count"},
            ],
        }
    )
    assert execution.status == ExecutionStatus.FAILED
    assert execution.error_info is not None and execution.error_info.code == "NOPE"
    assert execution.error_info.step_id == "s"
    assert await h.statuses(execution.id) == [("s", "failed")]


async def test_the_fallback_step_receives_the_error_and_the_input(h: Harness) -> None:
    h.counter.fail_codes["s"] = ("NOPE", False)
    execution = await h.run(
        {
            "name": "f",
            "steps": [
                {
                    "id": "s",
                    "type": "count",
                    "onError": {"strategy": "fallback", "fallbackStep": "rescue"},
                },
                {
                    "id": "rescue",
                    "type": "transform",
                    "config": {
                        "output": {"code": "${prev.error.code}", "at": "${prev.error.stepId}"}
                    },
                },
            ],
        }
    )
    assert execution.status == ExecutionStatus.SUCCEEDED
    assert execution.result == {"code": "NOPE", "at": "s"}


# -- children ---------------------------------------------------------------------------


WAITING_CHILD = {
    "name": "child",
    "timeoutSeconds": 60,
    "steps": [
        {"id": "hold", "type": "wait_for_event", "config": {"event": "go", "timeoutSeconds": 9999}}
    ],
}
PARENT = {
    "name": "parent",
    "steps": [{"id": "call", "type": "subworkflow", "config": {"workflowName": "child"}}],
}


async def _parent_and_child(h: Harness, child: dict[str, Any]) -> tuple[str, str]:
    await h.create(child)
    parent_id = await h.create(PARENT)
    parent = await h.start(parent_id)
    await h.drain(advance=False)
    [call] = await h.runs(parent.id)
    return parent.id, call.state["childExecutionId"]


async def test_a_timed_out_child_fails_its_parent_with_child_timed_out(h: Harness) -> None:
    parent_id, child_id = await _parent_and_child(h, WAITING_CHILD)
    await h.drain()  # the child's deadline passes
    child = await h.app.get_execution(child_id)
    assert child.status == ExecutionStatus.TIMED_OUT
    parent = await h.app.get_execution(parent_id)
    assert parent.status == ExecutionStatus.FAILED
    assert parent.error_info is not None
    assert parent.error_info.code == "CHILD_TIMED_OUT"
    assert child_id in parent.error_info.message and "timed_out" in parent.error_info.message
    assert "EXECUTION_TIMEOUT" in parent.error_info.message


async def test_a_cancelled_child_fails_its_parent_with_child_cancelled(h: Harness) -> None:
    parent_id, child_id = await _parent_and_child(h, WAITING_CHILD)
    await h.app.cancel(child_id, "operator stopped the child")
    await h.drain(advance=False)
    parent = await h.app.get_execution(parent_id)
    assert parent.status == ExecutionStatus.FAILED
    assert parent.error_info is not None and parent.error_info.code == "CHILD_CANCELLED"
    assert "operator stopped the child" in parent.error_info.message


async def test_cancelling_a_parent_cancels_its_running_child(h: Harness) -> None:
    """The child's first step is scheduled, not yet run, when the parent is cancelled:
    the child ends ``cancelled`` and its step never runs."""
    await h.create({"name": "child", "steps": [{"id": "work", "type": "count"}]})
    parent = await h.start(await h.create(PARENT))
    [task] = h.queue.take_due(h.clock.now())
    await h.deliver(task)  # the parent's call step starts the child
    [call] = await h.runs(parent.id)
    child_id = call.state["childExecutionId"]
    assert (await h.app.get_execution(child_id)).status == ExecutionStatus.RUNNING
    await h.app.cancel(parent.id, "customer left")
    await h.drain()
    child = await h.app.get_execution(child_id)
    assert child.status == ExecutionStatus.CANCELLED
    assert child.error_info is not None and child.error_info.code == "CANCELLED"
    assert parent.id in child.error_info.message
    assert not h.counter.calls
    assert await h.statuses(child_id) == [("work", "cancelled")]
    assert (await h.app.get_execution(parent.id)).status == ExecutionStatus.CANCELLED
    assert await h.statuses(parent.id) == [("call", "cancelled")]


async def test_subworkflows_nest_at_most_max_depth_levels(h: Harness) -> None:
    """A workflow that calls itself: executions at depths 0..MAX_DEPTH exist, the one at
    MAX_DEPTH fails with ``SUBWORKFLOW_TOO_DEEP`` and every ancestor with CHILD_FAILED."""
    top = await h.run(
        {
            "name": "rec",
            "steps": [{"id": "call", "type": "subworkflow", "config": {"workflowName": "rec"}}],
        }
    )
    chain = [top]
    while True:
        [call] = await h.runs(chain[-1].id)
        child_id = call.state.get("childExecutionId")
        if child_id is None:
            break
        chain.append(await h.app.get_execution(child_id))
    assert len(chain) == MAX_DEPTH + 1
    assert [e.trigger.get("depth", 0) for e in chain] == list(range(MAX_DEPTH + 1))
    deepest = chain[-1]
    assert deepest.error_info is not None
    assert deepest.error_info.code == "SUBWORKFLOW_TOO_DEEP"
    for execution in chain[:-1]:
        assert execution.status == ExecutionStatus.FAILED
        assert execution.error_info is not None
        assert execution.error_info.code == "CHILD_FAILED"


# -- redrive ----------------------------------------------------------------------------


async def test_redrive_reruns_only_what_did_not_succeed(h: Harness) -> None:
    """A succeeded branch is not run again; the failed one and the one the failure cut
    off run once more; each redrive adds nothing for what already succeeded."""
    h.counter.fail_codes["bad"] = ("BROKEN", False)
    workflow_id = await h.create(
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
                            {"name": "late", "start": "pause"},
                        ]
                    },
                },
                {"id": "good", "type": "count"},
                {"id": "bad", "type": "count"},
                {"id": "pause", "type": "wait", "config": {"seconds": 60}, "nextSteps": ["slow"]},
                {"id": "slow", "type": "count"},
                {"id": "after", "type": "count"},
            ],
        }
    )
    execution = await h.start(workflow_id)
    await h.drain(advance=False)
    failed = await h.app.get_execution(execution.id)
    assert failed.status == ExecutionStatus.FAILED
    runs = await h.runs(execution.id)
    assert dict((r.step_id, r.status) for r in runs)["pause"] == StepRunStatus.CANCELLED
    del h.counter.fail_codes["bad"]
    await h.app.redrive(execution.id)
    await h.drain()
    done = await h.app.get_execution(execution.id)
    assert done.status == ExecutionStatus.SUCCEEDED
    runs = await h.runs(execution.id)
    assert calls_of(h, runs, "good") == 1
    assert calls_of(h, runs, "bad") == 2
    assert calls_of(h, runs, "slow") == 1
    assert calls_of(h, runs, "after") == 1
    assert [r.generation for r in runs if r.step_id == "pause"] == [0, 1]
    assert [r.generation for r in runs if r.step_id == "good"] == [0]


async def test_a_timed_out_execution_can_be_redriven(h: Harness) -> None:
    workflow_id = await h.create(
        linear(
            {"id": "a", "type": "count"},
            {
                "id": "ask",
                "type": "wait_for_event",
                "config": {"event": "go", "timeoutSeconds": 9999},
            },
            {"id": "b", "type": "count"},
            timeoutSeconds=60,
        )
    )
    execution = await h.start(workflow_id)
    await h.drain()
    timed_out = await h.app.get_execution(execution.id)
    assert timed_out.status == ExecutionStatus.TIMED_OUT
    redriven = await h.app.redrive(execution.id)
    assert redriven.status == ExecutionStatus.RUNNING and redriven.redrive_count == 1
    assert redriven.error_info is None and redriven.completed_at is None
    assert redriven.deadline == h.clock.now() + timedelta(seconds=60)
    await h.drain(advance=False)
    answer = await h.app.send_event(execution.id, "go", {"ok": 1})
    assert answer["delivered"] is True
    await h.drain(advance=False)
    done = await h.app.get_execution(execution.id)
    assert done.status == ExecutionStatus.SUCCEEDED
    runs = await h.runs(execution.id)
    assert calls_of(h, runs, "a") == 1, "the step before the wait is not run again"
    assert calls_of(h, runs, "b") == 1
    redrive = [e for e in await h.store.list_events(execution.id) if e.type == "execution.redriven"]
    assert [e.data for e in redrive] == [{"fromStep": "ask", "generation": 1}]


# -- output capping ---------------------------------------------------------------------


class SizedStep(StepType):
    """Returns a string whose JSON form has exactly ``input.size`` bytes."""

    type_name = "sized"

    async def execute(self, ctx: StepContext) -> Outcome:
        size = int(ctx.execution.input["size"])
        return Complete(output="x" * (size - 2))  # the two quotes make up the rest


@pytest.mark.parametrize(
    ("size", "step_cut", "result_cut"),
    [
        (STEP_OUTPUT_CAP, False, False),
        (STEP_OUTPUT_CAP + 1, True, False),
        (RESULT_CAP, True, False),
        (RESULT_CAP + 1, True, True),
    ],
)
async def test_outputs_are_capped_at_their_documented_sizes(
    h: Harness, size: int, step_cut: bool, result_cut: bool
) -> None:
    h.registry.register(SizedStep())
    execution = await h.run(linear({"id": "big", "type": "sized"}), {"size": size})
    assert execution.status == ExecutionStatus.SUCCEEDED
    [run] = await h.runs(execution.id)
    assert run.output_truncated is step_cut
    if step_cut:
        assert run.output["truncated"] is True and run.output["bytes"] == size
        preview = run.output["preview"]
        assert '"' + "x" * (len(preview) - 1) == preview
        assert len(preview.encode()) == STEP_OUTPUT_CAP - 200
    else:
        assert run.output == "x" * (size - 2)
    if result_cut:
        assert execution.result["truncated"] is True and execution.result["bytes"] == size
    else:
        assert execution.result == "x" * (size - 2)
