"""The executor: claims a step run, runs it (and a chain of cheap steps after it),
and commits the outcome and the next runs in one transaction.

Delivery is at least once; the recorded effect is exactly once: a run is claimed
under a lease in a transaction, a duplicate delivery finds it claimed or finished
and does nothing, and finishing a run, creating its successors and emitting the
events happen in the same transaction. Tasks for new runs are enqueued after the
commit (outbox); the sweeper re-enqueues any that were lost.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any, TypeVar

from shared.engine.control import ControlMixin
from shared.engine.definitions import DefinitionCache, NotCached
from shared.engine.policy import child_execution_id
from shared.engine.steps import (
    Complete,
    FanOut,
    Outcome,
    Park,
    StartChild,
    StepContext,
    StepRegistry,
    StepServices,
    step_config,
)
from shared.engine.transitions import Commit, LoopLimit, make_run
from shared.errors import WorkflowError
from shared.models import (
    ErrorInfo,
    ExecutionStatus,
    ParentLink,
    StepRun,
    StepRunStatus,
    WorkflowExecution,
)
from shared.ports import Clock, ExecutionStore, ExecutionTx, StepTask, TaskQueue

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class EngineSettings:
    """Tunables of the executor, with the defaults used in production."""

    lease_seconds: float = 60.0
    """Lease on a claimed run beyond its step timeout."""
    default_step_timeout: float = 300.0
    max_chain_steps: int = 500
    """Cheap steps run inline in one invocation before a hop is forced."""
    chain_commit_steps: int = 50
    """Inline steps recorded per transaction (1 = a commit per step)."""
    max_steps_per_execution: int = 10_000
    early_tolerance_seconds: float = 1.0
    """A task this much early (clock skew) is still accepted."""


@dataclass
class _Done:
    """One finished step of a chain, not yet committed."""

    run: StepRun
    outcome: Outcome | None
    error: ErrorInfo | None
    skipped: bool = False


@dataclass
class HopResult:
    """What one task delivery did (for logs, tests and the HTTP edge)."""

    status: str
    """done | duplicate | busy | early | paused | cancelled | unknown | lost_lease"""
    steps: list[str] = field(default_factory=list)


class Engine(ControlMixin):
    """Runs executions over the store and task-queue ports."""

    async def transaction(self, fn: Callable[[ExecutionTx], Awaitable[T]]) -> T:
        """A store transaction whose body may need definitions: they are loaded outside
        the transaction and the body is run again."""
        for _ in range(3):
            try:
                return await self.executions.run_transaction(fn)
            except NotCached as missing:
                await self.definitions.get(missing.execution)
        return await self.executions.run_transaction(fn)

    def __init__(
        self,
        *,
        executions: ExecutionStore,
        definitions: DefinitionCache,
        queue: TaskQueue,
        registry: StepRegistry,
        services: StepServices,
        clock: Clock,
        settings: EngineSettings | None = None,
    ) -> None:
        self.executions = executions
        self.definitions = definitions
        self.queue = queue
        self.registry = registry
        self.services = services
        self.clock = clock
        self.settings = settings or EngineSettings()
        self._reruns = bool(getattr(executions, "reruns_transactions", False))

    # -- delivery --------------------------------------------------------------------

    async def handle_task(self, task: StepTask) -> HopResult:
        """Process one delivery of a step task. Safe to call any number of times."""
        token = uuid.uuid4().hex
        claimed = await self._claim(task, token)
        if isinstance(claimed, HopResult):
            return claimed
        current: StepRun | None = claimed[0]
        execution = claimed[1]
        definition = await self.definitions.get(execution)
        names: list[str] = []
        budget = self.settings.max_chain_steps
        while current is not None:
            current, execution, ran = await self._run_segment(
                current, execution, definition, token, budget
            )
            names.extend(ran)
            budget -= len(ran)
            if not ran:
                return HopResult("lost_lease", names)
        return HopResult("done", names)

    async def _claim(
        self, task: StepTask, token: str
    ) -> HopResult | tuple[StepRun, WorkflowExecution]:
        now = self.clock.now()
        lease = self.settings.lease_seconds
        early_ok = now + timedelta(seconds=self.settings.early_tolerance_seconds)

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
            if execution.status == ExecutionStatus.PAUSED:
                return HopResult("paused")
            if run.status == StepRunStatus.RUNNING:
                if run.lease_expires_at and run.lease_expires_at > now:
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
                return HopResult("cancelled")
            step = definition.step(run.step_id)
            timeout = step.timeout_seconds or self.settings.default_step_timeout
            run.status = StepRunStatus.RUNNING
            run.lease_owner = token
            run.lease_expires_at = now + timedelta(seconds=timeout + lease)
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

        run = await self.executions.run_transaction(bump)
        if run is not None and run.due_at is not None:
            await self.queue.enqueue(StepTask(run.execution_id, run.id, run.due_at, run.wake_seq))

    # -- running steps ---------------------------------------------------------------

    async def _run_segment(
        self,
        run: StepRun,
        execution: WorkflowExecution,
        definition: Any,
        token: str,
        budget: int,
    ) -> tuple[StepRun | None, WorkflowExecution, list[str]]:
        """Run ``run`` and the inline steps after it, then commit them together."""
        variables = dict(execution.variables)
        done: list[_Done] = []
        current: StepRun | None = run
        limit = min(self.settings.chain_commit_steps, budget)
        while current is not None:
            item = await self._execute(current, execution, definition, variables)
            done.append(item)
            current = None
            if len(done) < limit and self._chains(item, definition):
                current = self._inline_successor(item, execution, definition, token)
        return await self._commit(run, done, execution, definition, token, budget - len(done))

    def _chains(self, item: _Done, definition: Any) -> bool:
        """Whether the step after ``item`` can run in memory right away."""
        if item.error is not None or not isinstance(item.outcome, Complete):
            return False
        step = definition.step(item.run.step_id)
        targets = (
            item.outcome.next_steps if item.outcome.next_steps is not None else step.next_steps
        )
        if len(targets) != 1:
            return False
        nxt = definition.step(targets[0])
        return self.registry.get(nxt.type).inline

    def _inline_successor(
        self, item: _Done, execution: WorkflowExecution, definition: Any, token: str
    ) -> StepRun | None:
        """Build the next run in memory (its id and visits as a commit would)."""
        assert isinstance(item.outcome, Complete)
        step = definition.step(item.run.step_id)
        targets = (
            item.outcome.next_steps if item.outcome.next_steps is not None else step.next_steps
        )
        context = {k: v for k, v in item.run.context.items() if k in ("item", "index")}
        context["prev"] = item.outcome.output
        now = self.clock.now()
        try:
            nxt = make_run(
                definition,
                execution,
                targets[0],
                scope=item.run.scope,
                context=context,
                visits=item.run.visits,
                generation=item.run.generation,
                predecessor=item.run.id,
                due_at=now,
                attempt=1,
                now=now,
            )
        except LoopLimit:
            return None
        nxt.status = StepRunStatus.RUNNING
        nxt.lease_owner = token
        nxt.started_at = now
        nxt.deliveries = 1
        return nxt

    async def _execute(
        self,
        run: StepRun,
        execution: WorkflowExecution,
        definition: Any,
        variables: dict[str, Any],
    ) -> _Done:
        step = definition.step(run.step_id)
        step_type = self.registry.get(step.type)
        ctx = StepContext(
            run, step, definition, execution, variables, self.clock.now(), self.services
        )
        try:
            ctx.config = step_config(step_type, definition, step)
            guarded = bool(step.conditions) and "wake" not in run.state
            conditions = step.conditions or []
            if guarded and not all(ctx.evaluate(c.expression) is True for c in conditions):
                prev = run.context.get("prev")
                skip = Complete(output=prev, next_steps=step.next_steps[:1])
                return _Done(run, skip, None, skipped=True)
            timeout = step.timeout_seconds or self.settings.default_step_timeout
            wake = run.state.get("wake")
            if wake is not None:
                outcome = step_type.resume(ctx, wake)
            elif step_type.inline:  # no I/O: nothing to time out, no task to create
                outcome = await step_type.execute(ctx)
            else:
                outcome = await asyncio.wait_for(step_type.execute(ctx), timeout)
        except TimeoutError:
            return _Done(
                run,
                None,
                ErrorInfo(code="STEP_TIMEOUT", retryable=True, message=f"step exceeded {timeout}s"),
            )
        except WorkflowError as exc:
            return _Done(
                run, None, ErrorInfo(code=exc.code, message=exc.message, retryable=exc.retryable)
            )
        except Exception as exc:  # a bug or an unexpected library error in a step
            log.exception("step %s raised", step.id)
            return _Done(
                run,
                None,
                ErrorInfo(
                    code="STEP_ERROR", retryable=True, message=f"{type(exc).__name__}: {exc}"
                ),
            )
        if isinstance(outcome, Complete) and outcome.set_vars:
            variables.update(outcome.set_vars)
        if isinstance(outcome, Complete) and step.output_var:
            variables[step.output_var] = outcome.output
        return _Done(run, outcome, None)

    async def _commit(
        self,
        first: StepRun,
        done: list[_Done],
        snapshot: WorkflowExecution,
        definition: Any,
        token: str,
        budget: int,
    ) -> tuple[StepRun | None, WorkflowExecution, list[str]]:
        now = self.clock.now()
        follow: list[StepRun] = []
        # Stores that may call a transaction body again (Firestore on contention) get
        # fresh copies of the runs each time: recording mutates them.
        pristine = [d.run.model_copy(deep=True) for d in done] if self._reruns else None
        attempts = 0

        async def apply(tx: ExecutionTx) -> Commit | None:
            nonlocal attempts
            attempts += 1
            items = done
            if pristine is not None and attempts > 1:
                items = [
                    replace(d, run=p.model_copy(deep=True))
                    for d, p in zip(done, pristine, strict=True)
                ]
            follow.clear()
            stored = await tx.get_run(first.id)
            if (
                stored is None
                or stored.status != StepRunStatus.RUNNING
                or (stored.lease_owner != token)
            ):
                return None
            execution = await tx.get_execution(first.execution_id)
            assert execution is not None
            commit = Commit(
                tx, execution, definition, self.registry, now, self.settings.max_steps_per_execution
            )
            if execution.status.terminal:
                commit.finish_run(stored, StepRunStatus.CANCELLED)
                commit.finalize()
                return commit
            last = len(items) - 1
            for index, item in enumerate(items):
                created = self._record(commit, item, definition, chained=index < last)
                if execution.status.terminal:
                    break
                if index < last:
                    continue
                follow.extend(self._continue_inline(created, commit, budget, token))
            commit.write_children()
            await commit.settle_signal()
            await commit.settle_joins()
            await commit.close_execution()
            commit.finalize()
            return commit

        commit = await self.executions.run_transaction(apply)
        if commit is None:
            return None, snapshot, []
        await self._flush(commit)
        names = [d.run.step_id for d in done]
        if follow and commit.execution.status == ExecutionStatus.RUNNING:
            return follow[0], commit.execution, names
        return None, commit.execution, names

    def _record(
        self, commit: Commit, item: _Done, definition: Any, chained: bool = False
    ) -> list[StepRun]:
        """Write one finished step; ``chained``: its successor is the next entry."""
        run = item.run
        step = definition.step(run.step_id)
        if item.error is not None:
            return commit.failed(run, step, item.error)
        outcome = item.outcome
        if item.skipped:
            assert isinstance(outcome, Complete)
            commit.finish_run(run, StepRunStatus.SKIPPED, output=outcome.output)
            if chained:
                return []
            return commit.successors(run, list(outcome.next_steps or []), outcome.output)
        if isinstance(outcome, Complete):
            return commit.complete(run, outcome, step, chained=chained)
        if isinstance(outcome, Park):
            return self._park(commit, run, outcome)
        if isinstance(outcome, FanOut):
            return self._fan_out(commit, run, outcome, step)
        if isinstance(outcome, StartChild):
            return self._start_child(commit, run, outcome)
        raise WorkflowError(f"unknown outcome {outcome!r}")

    def _continue_inline(
        self, created: list[StepRun], commit: Commit, budget: int, token: str
    ) -> list[StepRun]:
        """Keep the single next run for this worker when it is cheap and due."""
        if budget <= 0 or len(created) != 1 or commit.ended:
            return []
        nxt = created[0]
        if nxt.status != StepRunStatus.SCHEDULED or (nxt.due_at and nxt.due_at > commit.now):
            return []
        if not self.registry.get(nxt.step_type).inline:
            return []
        nxt.status = StepRunStatus.RUNNING
        nxt.lease_owner = token
        nxt.lease_expires_at = commit.now + timedelta(
            seconds=self.settings.default_step_timeout + self.settings.lease_seconds
        )
        nxt.started_at = commit.now
        nxt.deliveries = 1
        commit.outbox = [r for r in commit.outbox if r.id != nxt.id]
        commit.put_run(nxt)
        commit.event("step.started", nxt, attempt=nxt.attempt, delivery=1)
        return [nxt]

    # -- parking, fan-out, children --------------------------------------------------

    def _park(self, commit: Commit, run: StepRun, outcome: Park) -> list[StepRun]:
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
        if not run.scope:
            commit.execution.status = ExecutionStatus.WAITING
        if outcome.until is not None:
            commit.outbox.append(run)
        if outcome.signal:
            commit.pending_signal = (run, outcome.signal)
        return []

    def _fan_out(self, commit: Commit, run: StepRun, outcome: FanOut, step: Any) -> list[StepRun]:
        step_type = self.registry.get(step.type)
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

    def _start_child(self, commit: Commit, run: StepRun, outcome: StartChild) -> list[StepRun]:
        child_id = child_execution_id(run.id)
        run.status = StepRunStatus.WAITING
        run.due_at = None
        run.state = {**run.state, "childExecutionId": child_id}
        run.lease_owner = None
        commit.put_run(run)
        commit.event("step.waiting", run, childExecutionId=child_id)
        child, first = self._new_execution(
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

    async def _flush(self, commit: Commit) -> None:
        """Enqueue what the commit scheduled (the outbox). Failures are left to the sweeper."""
        for run in [*commit.outbox, *commit.woken_parents, *commit.child_runs]:
            if run.due_at is None:
                continue
            try:
                await self.queue.enqueue(
                    StepTask(run.execution_id, run.id, run.due_at, run.wake_seq)
                )
            except Exception:
                log.warning(
                    "enqueue of run %s failed; the sweeper will retry", run.id, exc_info=True
                )
