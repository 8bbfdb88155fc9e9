"""What parking, fanning out and starting a child do to the stored state."""

from __future__ import annotations

from typing import Any

from shared.engine.policy import child_execution_id
from shared.engine.runs import new_execution
from shared.engine.steps import FanOut, Park, StartChild, step_config
from shared.engine.transitions import Commit
from shared.models import ExecutionStatus, ParentLink, StepRun, StepRunStatus, WorkflowStep


def park(commit: Commit, run: StepRun, outcome: Park) -> list[StepRun]:
    run.status = StepRunStatus.WAITING
    run.due_at = outcome.until
    run.state = {**{k: v for k, v in run.state.items() if k != "wake"}, **outcome.state}
    if outcome.signal:
        run.state["signal"] = outcome.signal
    run.lease_owner = None
    run.lease_expires_at = None
    if outcome.until is not None:
        run.wake_seq += 1  # a new task name: the current delivery still holds the old one
    commit.put_run(run)
    data: dict[str, Any] = {}
    if outcome.until:
        data["until"] = outcome.until.isoformat()
    if outcome.signal:
        data["signal"] = outcome.signal
    commit.event("step.waiting", run, **data)
    if outcome.pause is not None:
        commit.execution.status = ExecutionStatus.PAUSED
        commit.event("execution.paused", None, reason=outcome.pause, stepId=run.step_id)
    elif not run.scope and commit.execution.status != ExecutionStatus.PAUSED:
        commit.execution.status = ExecutionStatus.WAITING
    if outcome.until is not None:
        commit.outbox.append(run)
    if outcome.signal:
        commit.pending_signal = (run, outcome.signal)
    return []


def fan_out(commit: Commit, run: StepRun, outcome: FanOut, step: WorkflowStep) -> list[StepRun]:
    step_type = commit.registry.get(step.type)
    config = step_config(step_type, commit.definition, step)
    run.status = StepRunStatus.WAITING
    run.due_at = None
    run.state = {**outcome.state, "total": outcome.total, "window": outcome.window}
    run.lease_owner = None
    commit.put_run(run)
    commit.event("step.waiting", run, bodies=outcome.total)
    for index in range(min(outcome.window, outcome.total)):
        commit.start_body(run, step_type, config, index)
    return []


def start_child(commit: Commit, run: StepRun, outcome: StartChild) -> list[StepRun]:
    child_id = child_execution_id(run.id)
    run.status = StepRunStatus.WAITING
    run.due_at = None
    run.state = {**run.state, "childExecutionId": child_id}
    run.lease_owner = None
    commit.put_run(run)
    commit.event("step.waiting", run, childExecutionId=child_id)
    child, first = new_execution(
        outcome.definition,
        input=outcome.input,
        trigger={
            "type": "subworkflow",
            "parentExecutionId": run.execution_id,
            "depth": int(commit.execution.trigger.get("depth", 0)) + 1,
        },
        execution_id=child_id,
        tenant=commit.execution.tenant,
        now=commit.now,
    )
    child.parent = ParentLink(execution_id=run.execution_id, run_id=run.id)
    commit.children.append(child)
    commit.child_runs.extend(first)
    return []
