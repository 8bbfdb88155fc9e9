"""Building step runs and executions: ids, visits, timers. Pure functions."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from shared.engine import policy
from shared.models import (
    ErrorInfo,
    ExecutionStatus,
    Signal,
    StepRun,
    StepRunStatus,
    WorkflowDefinition,
    WorkflowExecution,
)


class LoopLimit(Exception):
    """A step was visited more often than its ``maxIterations``."""

    def __init__(self, step_id: str, limit: int) -> None:
        super().__init__(step_id)
        self.error = ErrorInfo(
            code="LOOP_LIMIT_EXCEEDED",
            message=f"step {step_id!r} visited more than maxIterations={limit} times",
            step_id=step_id,
        )


def wake_run(run: StepRun, wake: dict[str, Any], now: datetime) -> None:
    """Turn a parked run back into a scheduled one carrying ``wake`` (signal, child end)."""
    run.state = {**run.state, "wake": wake}
    run.status = StepRunStatus.SCHEDULED
    run.due_at = now
    run.wake_seq += 1


def wake_value(signal: Signal) -> dict[str, Any]:
    """What a run woken by ``signal`` sees: its payload, its name and, when it came
    through the API, who sent it (the authenticated subject, never the payload's word)."""
    wake: dict[str, Any] = {"ok": True, "value": signal.payload, "signal": signal.name}
    if signal.sender is not None:
        wake["sender"] = signal.sender
    return wake


def make_run(
    definition: WorkflowDefinition,
    execution: WorkflowExecution,
    step_id: str,
    *,
    scope: str,
    context: dict[str, Any],
    visits: dict[str, int],
    generation: int,
    predecessor: str | None,
    due_at: datetime,
    attempt: int,
    now: datetime,
) -> StepRun:
    """The run of the next visit of ``step_id``: its id is a pure function of the path."""
    step = definition.step(step_id)
    if step_id in definition.cyclic_steps:
        visits = dict(visits)  # runs share the map until a loop step changes it
        iteration = visits.get(step_id, 0) + (1 if attempt == 1 else 0)
        visits[step_id] = iteration
        if step.max_iterations is not None and iteration > step.max_iterations:
            raise LoopLimit(step_id, step.max_iterations)
    else:
        iteration = 1  # a step on no cycle is visited once per scope
    rid = policy.run_id(execution.id, scope, step_id, iteration, attempt, generation)
    # Validated, not ``model_construct``-ed: with pydantic 2.14 construction is the slower
    # of the two (it resolves each default factory's signature per call). Validation
    # copies the maps.
    return StepRun(
        id=rid,
        execution_id=execution.id,
        workflow_id=execution.workflow_id,
        step_id=step_id,
        step_type=step.type,
        scope=scope,
        iteration=iteration,
        attempt=attempt,
        status=StepRunStatus.SCHEDULED,
        due_at=due_at,
        context=context,
        visits=visits,
        generation=generation,
        predecessor_id=predecessor,
        idempotency_key=policy.idempotency_key(execution.id, scope, step_id, iteration, generation),
        created_at=now,
    )


def deadline_run(
    execution: WorkflowExecution, workflow_id: str, now: datetime, *, generation: int
) -> StepRun:
    """The timer run that ends an execution ``timed_out`` at its deadline."""
    return StepRun(
        id=policy.run_id(execution.id, "", "$deadline", 1, 1, generation),
        execution_id=execution.id,
        workflow_id=workflow_id,
        step_id="$deadline",
        step_type="$deadline",
        status=StepRunStatus.WAITING,
        due_at=execution.deadline,
        generation=generation,
        created_at=now,
    )


def new_execution(
    definition: WorkflowDefinition,
    *,
    input: dict[str, Any],
    trigger: dict[str, Any],
    execution_id: str | None,
    tenant: str,
    now: datetime,
) -> tuple[WorkflowExecution, list[StepRun]]:
    """An execution and its first run(s), not yet stored."""
    execution = WorkflowExecution(
        id=execution_id or str(uuid.uuid4()),
        workflow_id=definition.id,
        workflow_version=definition.version,
        status=ExecutionStatus.RUNNING,
        variables={**definition.variables, **input},
        input=input,
        started_at=now,
        updated_at=now,
        trigger=trigger,
        tenant=tenant,
    )
    if definition.timeout_seconds:
        execution.deadline = now + timedelta(seconds=definition.timeout_seconds)
    first = make_run(
        definition,
        execution,
        definition.first_step(),
        scope="",
        context={"prev": None},
        visits={},
        generation=0,
        predecessor=None,
        due_at=now,
        attempt=1,
        now=now,
    )
    runs = [first]
    if execution.deadline is not None:
        runs.append(deadline_run(execution, definition.id, now, generation=0))
    execution.event_seq = 0
    return execution, runs
