"""Starting executions and operating them: signals, cancel, pause, resume, redrive,
and the sweeper that re-enqueues runs whose task was lost."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from shared.engine import flow, policy, rollup, start_controls
from shared.engine.core import EngineCore
from shared.engine.runs import deadline_run, new_execution, wake_run, wake_value
from shared.engine.transitions import ACTIVE_RUN, Commit
from shared.errors import Conflict, InvalidState, NotFound, TransientError
from shared.models import (
    ErrorInfo,
    ExecutionStatus,
    FlowKey,
    Signal,
    StepRun,
    StepRunStatus,
    WorkflowDefinition,
    WorkflowExecution,
)
from shared.ports import ExecutionTx, StepTask

T = TypeVar("T")

log = logging.getLogger(__name__)

FAR_FUTURE = datetime(9999, 1, 1).astimezone()


class ControlMixin(EngineCore):
    """Execution lifecycle operations of the ``Engine``."""

    async def start_execution(
        self,
        definition: WorkflowDefinition,
        *,
        input: dict[str, Any] | None = None,
        trigger: dict[str, Any] | None = None,
        execution_id: str | None = None,
        tenant: str = "default",
    ) -> tuple[WorkflowExecution, bool]:
        """Create and enqueue an execution. With a given id, a second call returns the
        first execution and ``False`` (the dedup of triggers relies on this)."""
        now = self.clock.now()
        definition = self.definitions.put(definition, tenant)
        execution, runs = new_execution(
            definition,
            input=dict(input or {}),
            trigger=trigger or {"type": "manual"},
            execution_id=execution_id,
            tenant=tenant,
            now=now,
        )
        execution.queue = start_controls.plan(definition, execution)  # a bad key: no write

        written: list[StepRun] = []
        queued = False

        async def create(tx: ExecutionTx) -> tuple[WorkflowExecution, bool]:
            existing = await tx.get_execution(execution.id)
            if existing is not None:
                return existing, False
            # Fresh copies per attempt: a store may run this body again on contention,
            # and the commit advances the execution's event seq.
            reruns = self.executions.reruns_transactions
            fresh = execution.model_copy(deep=True) if reruns else execution
            written[:] = [run.model_copy(deep=True) for run in runs] if reruns else runs
            admission = await start_controls.admit(tx, fresh, definition, written, now)
            if admission.existing is not None:  # singleton skip, debounce: it answers
                return admission.existing, False
            commit = Commit(tx, fresh, definition, self.registry, now)
            nonlocal queued
            queued = admission.held or await flow.take_or_queue(tx, fresh, now)
            if queued:
                flow.park_runs(written)
            for run in written:
                commit.put_run(run)
            if queued:
                commit.event(
                    "execution.queued",
                    None,
                    workflowVersion=definition.version,
                    trigger=fresh.trigger,
                    **_queue_data(fresh),
                )
            else:
                commit.event(
                    "execution.started",
                    None,
                    workflowVersion=definition.version,
                    trigger=fresh.trigger,
                )
            tx.add_rollup(rollup.started(fresh))  # analytics: the start, in this commit
            commit.finalize()
            return fresh, True

        stored, created = await start_controls.run_start(self, create, definition.id)
        if created:  # a queued one's parked runs have no due time (a held one's timer has)
            for run in written:
                await self._enqueue(run, cheap=self.cheap(run, definition), tenant=stored.tenant)
        return stored, created

    async def _enqueue(self, run: StepRun, cheap: bool = False, tenant: str = "") -> None:
        if run.due_at is None:
            return
        try:
            await self.queue.enqueue(
                StepTask(
                    run.execution_id, run.id, run.due_at, run.wake_seq, cheap=cheap, tenant=tenant
                )
            )
        except Exception:
            log.warning("enqueue of run %s failed; the sweeper will retry", run.id, exc_info=True)

    async def _operate(self, execution_id: str, fn: Any) -> tuple[WorkflowExecution, list[StepRun]]:
        """Run ``fn(commit)`` on an execution in a transaction; enqueue what it returns."""
        now = self.clock.now()
        freed: list[tuple[str, FlowKey]] = []

        async def operate(tx: ExecutionTx) -> tuple[WorkflowExecution, list[StepRun]]:
            execution = await tx.get_execution(execution_id)
            if execution is None:
                raise NotFound(f"execution {execution_id} not found")
            definition = self.definitions.require(execution)
            commit = Commit(tx, execution, definition, self.registry, now)
            extra: list[StepRun] = await fn(commit) or []
            await commit.close_execution()
            commit.finalize()
            freed[:] = commit.freed_keys
            return execution, [*commit.outbox, *commit.woken_parents, *extra]

        execution, runs = await self.transaction(operate)
        for run in runs:
            await self._enqueue(run)
        await self.promote_freed(freed)
        return execution, runs

    async def send_signal(
        self,
        execution_id: str,
        name: str,
        payload: Any = None,
        signal_id: str | None = None,
        sender: str | None = None,
    ) -> tuple[Signal, bool]:
        """Deliver an event to an execution; returns the signal and whether a waiting step
        took it now (else it is kept for the step that waits for it later). The woken
        step sees ``sender``, the authenticated principal, beside the payload."""
        signal = Signal(
            id=signal_id or uuid.uuid4().hex,
            execution_id=execution_id,
            name=name,
            payload=payload,
            sender=sender,
            created_at=self.clock.now(),
        )
        delivered = False

        async def deliver(commit: Commit) -> list[StepRun]:
            nonlocal delivered
            delivered = False
            signal.consumed_by = None
            if commit.execution.status.terminal:
                raise InvalidState(f"execution is {commit.execution.status.value}")
            for run in await commit.tx.list_runs(
                commit.execution.id, frozenset({StepRunStatus.WAITING})
            ):
                if run.state.get("signal") == name:
                    signal.consumed_by = run.id
                    wake_run(run, wake_value(signal), commit.now)
                    commit.schedule(run)
                    commit.event("step.woken", run, signal=name)
                    delivered = True
                    break
            commit.tx.put_signal(signal)
            commit.event("execution.signal", None, name=name, delivered=delivered)
            return []

        await self._operate(execution_id, deliver)
        return signal, delivered

    async def cancel(self, execution_id: str, reason: str = "") -> WorkflowExecution:
        """End an execution ``cancelled``; its live child executions (those of any of
        its runs) end ``cancelled`` in the same transaction (``Commit.close_execution``)."""

        async def do(commit: Commit) -> list[StepRun]:
            if commit.execution.status.terminal:
                raise InvalidState(f"execution is {commit.execution.status.value}")
            commit.finish_execution(
                ExecutionStatus.CANCELLED,
                error=ErrorInfo(code="CANCELLED", message=reason or "cancelled by an operator"),
            )
            return []

        execution, _ = await self._operate(execution_id, do)
        return execution

    async def pause(self, execution_id: str) -> WorkflowExecution:
        async def do(commit: Commit) -> list[StepRun]:
            if commit.execution.status.terminal or commit.execution.status in (
                ExecutionStatus.PAUSED,
                ExecutionStatus.QUEUED,  # it holds no slot and runs nothing: cancel it
            ):
                raise InvalidState(f"execution is {commit.execution.status.value}")
            commit.execution.status = ExecutionStatus.PAUSED
            commit.event("execution.paused", None)
            return []

        execution, _ = await self._operate(execution_id, do)
        return execution

    async def resume(self, execution_id: str) -> WorkflowExecution:
        """Undo a pause: the status it interrupted, and a task for every run that has one.

        A delivery during the pause answered ``paused`` and its task is gone, so each
        run with a due time is enqueued again under a new task name (``wake_seq`` + 1):
        Cloud Tasks refuses a name it has seen in the last hour. A run still leased to a
        live delivery is left to it (that delivery commits; the sweeper covers its death).
        """

        async def do(commit: Commit) -> list[StepRun]:
            if commit.execution.status != ExecutionStatus.PAUSED:
                raise InvalidState(f"execution is {commit.execution.status.value}, not paused")
            runs = await commit.tx.list_runs(commit.execution.id, ACTIVE_RUN)
            commit.execution.status = _resumed_status(runs, commit.now)
            commit.event("execution.resumed", None)
            woken: list[StepRun] = []
            for run in runs:
                leased = run.lease_expires_at is not None and run.lease_expires_at > commit.now
                if run.due_at is None or (run.status == StepRunStatus.RUNNING and leased):
                    continue
                run.wake_seq += 1
                commit.put_run(run)
                woken.append(run)
            return woken

        execution, _ = await self._operate(execution_id, do)
        return execution

    async def redrive(self, execution_id: str) -> WorkflowExecution:
        """Re-run a failed execution from its failed step, on its pinned version."""

        async def do(commit: Commit) -> list[StepRun]:
            execution = commit.execution
            if execution.status not in (ExecutionStatus.FAILED, ExecutionStatus.TIMED_OUT):
                raise InvalidState(
                    f"execution is {execution.status.value}; only failed or "
                    "timed-out executions can be redriven"
                )
            runs = await commit.tx.list_runs(execution.id)
            by_id = {r.id: r for r in runs}
            failed = by_id.get(execution.failed_run_id or "")
            if failed is None:
                candidates = [
                    r
                    for r in runs
                    if r.status in (StepRunStatus.FAILED, StepRunStatus.CANCELLED)
                    and r.step_type != "$deadline"
                ]
                if not candidates:
                    raise InvalidState("no failed step to redrive from")
                failed = candidates[-1]
            commit.tx.add_rollup(rollup.redriven(execution))  # analytics: undo its end
            execution.redrive_count += 1
            generation = execution.redrive_count
            execution.status = ExecutionStatus.RUNNING
            execution.error = execution.error_info = execution.failed_run_id = None
            execution.completed_at = execution.duration = None
            if commit.definition.timeout_seconds:
                execution.deadline = commit.now + timedelta(
                    seconds=commit.definition.timeout_seconds
                )
                commit.schedule(
                    deadline_run(
                        execution, execution.workflow_id, commit.now, generation=generation
                    )
                )
            # Children its end left running (engines before issue 11 did not cancel
            # them): the runs that started them are replaced below, by new runs that
            # start new children, so the old ones would never report to anything.
            await commit.end_children(runs, f"parent execution {execution.id} redriven")
            revived = _revive_owners(commit, failed, by_id)
            restart = [failed]
            for cut in _cut_off(runs, failed, revived):
                if "total" in cut.state:  # a fan-out the end cut off: reopen it as it stood
                    _reopen(commit, cut)
                else:
                    restart.append(cut)
            commit.event("execution.redriven", None, fromStep=failed.step_id, generation=generation)
            for old in restart:
                run = commit.new_run(
                    old.step_id,
                    scope=old.scope,
                    context=old.context,
                    visits={k: v - (1 if k == old.step_id else 0) for k, v in old.visits.items()},
                    generation=generation,
                    predecessor=old.predecessor_id,
                )
                if _effect_unknown(old):
                    run.idempotency_key = old.idempotency_key or run.idempotency_key
                commit.schedule(run)
            await _requeue_redriven(commit)
            return []

        execution, _ = await self._operate(execution_id, do)
        return execution

    async def promote_queued(self, limit: int = 500) -> int:
        """Start queued executions whose key has a free slot (the sweeper's backstop for
        a promotion lost between a commit and its enqueue, or a slot freed by healing)."""
        heads: dict[tuple[str, str], FlowKey] = {}
        for execution in await self.executions.list_queued(None, limit):
            state = execution.queue
            if state is None or state.wait_key is None:
                continue
            for key in state.keys:
                if key.slot_key == state.wait_key:
                    heads.setdefault((execution.tenant, key.slot_key), key)
        return await self.promote_freed([(tenant, key) for (tenant, _), key in heads.items()])

    async def promote_freed(self, keys: list[tuple[str, FlowKey]]) -> int:
        """Start the heads of the queues of ``keys`` (tenant, key) that have a free slot,
        one transaction per key (slots a cascade freed, after its commit)."""
        now = self.clock.now()
        heads = {(tenant, key.slot_key): key for tenant, key in keys}
        started = 0
        for (tenant, _), key in heads.items():

            async def fn(
                tx: ExecutionTx, tenant: str = tenant, key: FlowKey = key
            ) -> list[flow.Promotion]:
                return await flow.promote(tx, tenant, [key], now, budget=key.limit)

            try:
                promoted = await self.executions.run_transaction(fn)
            except (Conflict, TransientError):
                log.warning("sweep: queue %s left to the next pass", key.slot_key, exc_info=True)
                continue
            for promotion in promoted:
                started += 1
                for run in promotion.runs:
                    await self._enqueue(run)
        return started

    async def sweep(self, grace_seconds: float = 60.0, limit: int = 500) -> int:
        """Re-enqueue runs whose task should have run by now (lost enqueue, dead worker).

        Each gets a new task name (``wake_seq`` + 1, in a transaction): a queue that
        remembers finished task names (Cloud Tasks, about an hour) would refuse the old one.
        """
        now = self.clock.now()
        due = await self.executions.due_runs(now, grace_seconds, limit)
        for run in due:
            try:
                bumped = await self.executions.run_transaction(_bump(run, now))
            except (Conflict, TransientError):
                # One contended run must not stop the pass: the others are due too.
                log.warning("sweep: run %s left to the next pass", run.id, exc_info=True)
                continue
            if bumped is not None:
                await self._enqueue(bumped)
        await self.promote_queued(limit)
        return len(due)

    async def recover(self) -> int:
        """Local mode after a restart: no other worker exists, so every live run is ours
        to re-enqueue (leases held by the dead process are released)."""
        now = self.clock.now()
        runs = await self.executions.due_runs(FAR_FUTURE, 0.0, 1_000_000)

        def release(run_id: str) -> Callable[[ExecutionTx], Awaitable[None]]:
            async def fn(tx: ExecutionTx) -> None:
                stored = await tx.get_run(run_id)
                if stored is not None and stored.status == StepRunStatus.RUNNING:
                    stored.lease_expires_at = now
                    tx.put_run(stored)

            return fn

        for run in runs:
            if run.status == StepRunStatus.RUNNING:
                await self.executions.run_transaction(release(run.id))
            await self.queue.enqueue(
                StepTask(run.execution_id, run.id, run.due_at or now, run.wake_seq)
            )
        return len(runs)


def _queue_data(execution: WorkflowExecution) -> dict[str, Any]:
    """What an ``execution.queued`` event says about the queue it entered."""
    state = execution.queue
    assert state is not None
    return {"key": state.key, "reason": state.reason, "priority": state.priority}


async def _requeue_redriven(commit: Commit) -> None:
    """A redriven execution takes its slots again, or goes back to the queue with the
    runs the redrive scheduled parked (they are scheduled when it leaves the queue)."""
    execution = commit.execution
    if not await flow.take_or_queue(commit.tx, execution, commit.now):
        return
    mine = [r for r in commit.outbox if r.execution_id == execution.id]
    flow.park_runs(mine)
    for run in mine:
        commit.put_run(run)
    commit.outbox = [r for r in commit.outbox if r.execution_id != execution.id]
    commit.event("execution.queued", None, **_queue_data(execution))


def _cut_off(runs: list[StepRun], failed: StepRun, revived: list[str]) -> list[StepRun]:
    """The step visits inside the reopened fan-outs that the failure cut off: those
    whose latest run (any generation) is cancelled, nested fan-outs included. A visit a
    former redrive already completed is not run again."""
    latest: dict[tuple[str, str, int], StepRun] = {}
    for run in runs:
        if not any(run.scope.startswith(owner) for owner in revived):
            continue
        visit = (run.scope, run.step_id, run.iteration)
        seen = latest.get(visit)
        if seen is None or (run.generation, run.attempt) >= (seen.generation, seen.attempt):
            latest[visit] = run
    return [
        run
        for run in latest.values()
        if run.status == StepRunStatus.CANCELLED and run.id != failed.id
    ]


def _reopen(commit: Commit, owner: StepRun) -> None:
    """Put a cut-off parallel or map back to waiting for its bodies: its cut-off bodies
    run again in their own scope (same visits, same keys), its finished ones count."""
    owner.status = StepRunStatus.WAITING
    owner.finished_at = None
    owner.error = None
    commit.put_run(owner)


def _effect_unknown(run: StepRun) -> bool:
    """Whether a run's call may have reached the service without an answer recorded:
    cut off by the execution's end (its call may still have landed) or failed with a
    retryable error (a timeout, a 5xx, a dropped connection). Its redrive sends the same
    idempotency key, so the service applies the effect once. A definite refusal (a
    non-retryable error) gets a new key: the service may have stored that answer."""
    if run.status == StepRunStatus.CANCELLED:
        return True
    return run.status == StepRunStatus.FAILED and run.error is not None and run.error.retryable


def _resumed_status(runs: list[StepRun], now: datetime) -> ExecutionStatus:
    """The status a pause interrupted, read from the live runs: ``waiting`` when the
    only work left is a main-flow step parked until a later time or an event (as
    ``park`` sets it), else ``running``. Fan-out and subworkflow owners do not make an
    execution wait; a park that fell due during the pause is about to run."""
    parked = False
    for run in runs:
        if run.step_type == "$deadline":
            continue
        if run.status != StepRunStatus.WAITING:
            return ExecutionStatus.RUNNING
        if run.due_at is not None and run.due_at <= now:
            return ExecutionStatus.RUNNING
        owner = "total" in run.state or "childExecutionId" in run.state
        parked = parked or (not run.scope and not owner)
    return ExecutionStatus.WAITING if parked else ExecutionStatus.RUNNING


def _revive_owners(commit: Commit, failed: StepRun, by_id: dict[str, StepRun]) -> list[str]:
    """Reopen the fan-out owners a failed body closed, innermost first."""
    revived: list[str] = []
    scope = failed.scope
    while scope:
        outer, owner_id, index = policy.parse_scope(scope)
        owner = by_id.get(owner_id)
        if owner is None:
            break
        if owner.status == StepRunStatus.FAILED:
            owner.status = StepRunStatus.WAITING
            owner.error = None
            owner.finished_at = None
            commit.put_run(owner)
        commit.tx.delete_join(owner_id, index)
        revived.append(owner_id)
        scope = outer
    return revived


def _bump(seen: StepRun, now: datetime) -> Callable[[ExecutionTx], Awaitable[StepRun | None]]:
    """A transaction giving a run a new task name, if nobody moved it since ``seen``."""

    async def bump(tx: ExecutionTx) -> StepRun | None:
        run = await tx.get_run(seen.id)
        if run is None or run.status != seen.status or run.wake_seq != seen.wake_seq:
            return None
        run.wake_seq += 1
        if run.due_at is None or run.status == StepRunStatus.RUNNING:
            run.due_at = run.due_at or now
        tx.put_run(run)
        return run

    return bump
