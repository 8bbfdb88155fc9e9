"""Claiming a step run for one task delivery: the exactly-once gate.

A delivery claims its run in a transaction with a lease. A duplicate finds it claimed
or finished and does nothing; a run of a finished, paused or timed-out execution is
not run; a delivery that comes before its run is due is re-queued for the due time.
A delivery that finds its run leased (busy) leaves one task for the lease's expiry, so a
run whose holder died is taken over then, not at the next sweep.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TypeVar

from shared.engine import start_controls, step_limits
from shared.engine.core import EngineCore
from shared.engine.transitions import Commit
from shared.errors import StepFailed
from shared.models import (
    ErrorInfo,
    ExecutionStatus,
    StepRun,
    StepRunStatus,
    WorkflowExecution,
)
from shared.observability import current_traceparent
from shared.ports import ExecutionTx, StepTask

T = TypeVar("T")


@dataclass
class HopResult:
    """What one task delivery did (for logs, tests and the HTTP edge)."""

    status: str
    """done | duplicate | busy | early | paused | queued | cancelled | unknown | lost_lease
    | waiting (a step-level limit: the run stays scheduled for a later time)"""
    steps: list[str] = field(default_factory=list)


class ClaimMixin(EngineCore):
    """The claim step of the ``Engine``."""

    async def _claim(
        self, task: StepTask, token: str
    ) -> HopResult | tuple[StepRun, WorkflowExecution]:
        now = self.clock.now()
        early_ok = now + timedelta(seconds=self.settings.early_tolerance_seconds)
        woken: list[StepRun] = []
        recheck: list[StepTask] = []
        deferred: list[StepTask] = []

        async def claim(tx: ExecutionTx) -> HopResult | tuple[StepRun, WorkflowExecution]:
            run = await tx.get_run(task.run_id)
            if run is None:
                return HopResult("unknown")
            execution = await tx.get_execution(run.execution_id)
            if execution is None:
                return HopResult("unknown")
            if run.status.terminal:
                return HopResult("duplicate")
            if execution.status.terminal:
                return HopResult("cancelled")
            if run.step_type == start_controls.TIMER_STEP:  # a start control's timer
                status, woken[:] = await start_controls.fire(tx, run, execution, now, early_ok)
                return HopResult(status)
            if execution.status == ExecutionStatus.PAUSED:
                return HopResult("paused")
            if execution.status == ExecutionStatus.QUEUED:
                return HopResult("queued")  # its runs get tasks when it leaves the queue
            if run.status == StepRunStatus.RUNNING:
                if run.lease_expires_at and run.lease_expires_at > now:
                    check = _lease_check(run, run.lease_expires_at)
                    if task.tag.startswith(check.tag):
                        # The check itself came early (a queue's timer is coarse): asking
                        # for the same name again would be dropped as a repeat of the task
                        # being delivered, and the run left to the sweeper.
                        check = replace(check, tag=f"{check.tag}-{int(now.timestamp() * 1000)}")
                    recheck[:] = [check]
                    return HopResult("busy")
            elif run.due_at is None or run.due_at > early_ok:
                return HopResult("early")
            if run.scope:
                owner = await tx.get_run(run.scope.rsplit("/", 2)[-2])
                if owner is not None and owner.status != StepRunStatus.WAITING:
                    run.status = StepRunStatus.CANCELLED
                    run.finished_at = now
                    tx.put_run(run)
                    return HopResult("cancelled")
            definition = self.definitions.require(execution)
            commit = Commit(tx, execution, definition, self.registry, now)
            if run.step_type == "$deadline" and (
                execution.deadline is None or now < execution.deadline
            ):
                return HopResult("early")
            if execution.deadline and now >= execution.deadline:
                commit.finish_execution(
                    ExecutionStatus.TIMED_OUT,
                    error=ErrorInfo(code="EXECUTION_TIMEOUT", message="execution deadline passed"),
                )
                await commit.close_execution()
                commit.finalize()
                # Its woken parent, and the executions its freed slots started.
                woken[:] = [*commit.woken_parents, *commit.outbox]
                return HopResult("cancelled")
            step = definition.step(run.step_id)
            if step_limits.limited(step):
                try:
                    wait = await step_limits.acquire(tx, run, execution, step, now, early_ok)
                except StepFailed as exc:  # its key failed: the step fails, not retried
                    error = ErrorInfo(code=exc.code, message=exc.message, retryable=False)
                    commit.failed(run, step, error)
                    await commit.settle_joins()
                    await commit.close_execution()
                    await commit.free_step_slots()
                    commit.finalize()
                    woken[:] = [*commit.woken_parents, *commit.outbox]
                    return HopResult("done", [run.step_id])
                if wait is not None:  # no slot or over the rate: not claimed, due later
                    deferred[:] = [StepTask(run.execution_id, run.id, wait.due_at, run.wake_seq)]
                    return HopResult("waiting")
            run.status = StepRunStatus.RUNNING
            run.lease_owner = token
            run.lease_expires_at = self.lease_until(now, definition, step)
            run.deliveries += 1
            run.started_at = run.started_at or now
            commit.put_run(run)
            if execution.status in (ExecutionStatus.PENDING, ExecutionStatus.WAITING):
                execution.status = ExecutionStatus.RUNNING
            execution.current_step = run.step_id
            commit.event("step.started", run, attempt=run.attempt, delivery=run.deliveries)
            commit.finalize()
            return run, execution

        result = await self.transaction(claim)
        if isinstance(result, HopResult) and result.status == "early":
            await self._requeue_early(task)
        if isinstance(result, HopResult) and result.status == "busy" and recheck:
            # The holder may be dead (its instance killed): the queue redelivered because
            # the holder's request failed. Acking this delivery would leave the run to the
            # sweeper; one task per lease (named after it) checks at the lease's expiry.
            await self.queue.enqueue(replace(recheck[0], trace=task.trace))
        for later in deferred:  # a run waiting for a step-level limit: its next try
            await self.queue.enqueue(replace(later, trace=task.trace))
        for parent in woken:  # a child that timed out wakes its parent's step now
            if parent.due_at is not None:
                await self.queue.enqueue(
                    StepTask(parent.execution_id, parent.id, parent.due_at, parent.wake_seq)
                )
        return result

    async def _requeue_early(self, task: StepTask) -> None:
        """A task delivered before its run is due (waits longer than the queue's horizon):
        enqueue it again under a new name for the run's due time."""

        async def bump(tx: ExecutionTx) -> StepRun | None:
            run = await tx.get_run(task.run_id)
            if run is None or run.due_at is None or run.wake_seq != task.wake_seq:
                return None
            if run.status not in (StepRunStatus.SCHEDULED, StepRunStatus.WAITING):
                return None
            run.wake_seq += 1
            tx.put_run(run)
            return run

        run = await self.run_tx(bump)
        if run is not None and run.due_at is not None:
            trace = current_traceparent() or task.trace
            await self.queue.enqueue(
                StepTask(run.execution_id, run.id, run.due_at, run.wake_seq, trace=trace)
            )


def _lease_check(run: StepRun, expires_at: datetime) -> StepTask:
    """A task for ``run`` at its lease's expiry, named after the lease: every busy
    delivery of one lease asks for the same task, which the queue keeps once."""
    return StepTask(
        run.execution_id,
        run.id,
        expires_at,
        run.wake_seq,
        tag=f"lease{int(expires_at.timestamp() * 1000)}",
    )
