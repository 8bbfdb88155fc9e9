"""The executor: claims a step run, runs it (and a chain of cheap steps after it),
and commits the outcome and the next runs in one transaction.

Delivery is at least once; the recorded effect is exactly once: a run is claimed
under a lease in a transaction (a cheap step's, without I/O, by the transaction that
records it, if the run is still as read: ``_read_cheap``), a duplicate delivery finds
it claimed or finished and does nothing, and finishing a run, creating its successors
and emitting the events happen in the same transaction. Tasks for new runs are enqueued after the
commit (outbox); the sweeper re-enqueues any that were lost.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, TypeVar

from opentelemetry.trace import Span

from shared.engine.claim import ClaimMixin, HopResult
from shared.engine.control import ControlMixin
from shared.engine.definitions import DefinitionCache
from shared.engine.migrate_ops import MigrateMixin
from shared.engine.outcomes import fan_out, park, start_child
from shared.engine.runs import LoopLimit, make_run
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
from shared.engine.transitions import Commit
from shared.errors import WorkflowError
from shared.models import (
    ErrorInfo,
    ExecutionStatus,
    StepRun,
    StepRunStatus,
    WorkflowExecution,
)
from shared.observability import (
    bind_log_context,
    current_traceparent,
    reset_log_context,
    start_span,
    traceparent_context,
)
from shared.ports import Clock, ExecutionStore, ExecutionTx, StepTask, TaskQueue

__all__ = ["Engine", "EngineSettings", "HopResult"]

_PROCESS = uuid.uuid4().hex[:16]
_DELIVERIES = itertools.count(1)


def _lease_token() -> str:
    """A token unique to this delivery: a random process id plus a counter (cheaper than
    a fresh uuid4 per delivery, and just as unique)."""
    return f"{_PROCESS}-{next(_DELIVERIES)}"


log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class EngineSettings:
    """Tunables of the executor, with the defaults used in production."""

    lease_seconds: float = 10.0
    """Lease on a claimed run beyond its step's time limit: the time its outcome's commit
    may take. A worker killed mid-step leaves its run to the next delivery this much
    after the step's own deadline (an http call's timeout), not minutes later."""
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


_CLAIMABLE = frozenset({ExecutionStatus.PENDING, ExecutionStatus.RUNNING, ExecutionStatus.WAITING})


def _claimable(execution: WorkflowExecution, now: datetime) -> bool:
    """Whether a run of ``execution`` may be claimed now without the claim's other
    cases (paused, queued, ended, past its deadline: ``ClaimMixin._claim``)."""
    return execution.status in _CLAIMABLE and not (
        execution.deadline is not None and now >= execution.deadline
    )


def _as_read(stored: StepRun, read: StepRun) -> bool:
    """Whether ``stored`` is still the scheduled run ``read`` was read as (``read`` has
    since been claimed in memory: one more delivery)."""
    return (
        stored.status == StepRunStatus.SCHEDULED
        and stored.deliveries == read.deliveries - 1
        and stored.wake_seq == read.wake_seq
        and stored.attempt == read.attempt
        and stored.generation == read.generation
    )


class Engine(ClaimMixin, ControlMixin, MigrateMixin):
    """Runs executions over the store and task-queue ports."""

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
        self._reruns = executions.reruns_transactions

    # -- delivery --------------------------------------------------------------------

    async def handle_task(self, task: StepTask) -> HopResult:
        """Process one delivery of a step task. Safe to call any number of times.

        The delivery is one ``step <stepId>`` span, a child of the context the task
        carries (the hop that enqueued it), and its log lines carry the execution,
        run, step and tenant.
        """
        with start_span("step", parent=traceparent_context(task.trace)) as span:
            fields = bind_log_context(execution_id=task.execution_id, run_id=task.run_id)
            try:
                result = await self._deliver(task, span)
            finally:
                reset_log_context(fields)
            if span.is_recording():
                span.set_attributes(
                    {"wfe.hop.status": result.status, "wfe.steps": len(result.steps)}
                )
            return result

    async def _deliver(self, task: StepTask, span: Span) -> HopResult:
        token = _lease_token()
        read = await self._read_cheap(task, token)
        if read is not None:
            # A cheap step: run it on what was read and claim it in the commit that
            # records it; if the run or the execution changed meanwhile, nothing was
            # written and the delivery goes through the claim below.
            result = await self._run_claimed(*read, token, span, unclaimed=read[0].id)
            if result is not None:
                return result
        claimed = await self._claim(task, token)
        if isinstance(claimed, HopResult):
            return claimed
        result = await self._run_claimed(*claimed, token, span)
        assert result is not None
        return result

    async def _run_claimed(
        self,
        first: StepRun,
        execution: WorkflowExecution,
        token: str,
        span: Span,
        unclaimed: str | None = None,
    ) -> HopResult | None:
        """Run ``first`` (claimed by this delivery, or ``unclaimed``: read only, its claim
        made by the commit that records it) and what follows it inline. None: the
        unclaimed run's commit found it changed since it was read; nothing was written."""
        span.update_name(f"step {first.step_id}")
        if span.is_recording():
            span.set_attributes(
                {
                    "wfe.execution.id": execution.id,
                    "wfe.workflow.id": execution.workflow_id,
                    "wfe.step.id": first.step_id,
                    "wfe.run.id": first.id,
                    "wfe.attempt": first.attempt,
                    "wfe.tenant": execution.tenant,
                }
            )
        bind_log_context(tenant=execution.tenant, workflow_id=execution.workflow_id)
        pending: list[StepRun] = [first]
        definition = await self.definitions.get(execution)
        names: list[str] = []
        budget = self.settings.max_chain_steps
        while pending:
            running = pending
            try:
                pending, execution, ran = await self._run_segment(
                    running, execution, definition, token, budget, unclaimed
                )
            except Exception:
                # The outcome was not recorded (a store fault): free the runs for the
                # redelivery this failure causes (the sweeper's, for runs claimed
                # inline), instead of leaving them leased until their lease runs out.
                # Best effort: the store may still be failing.
                for run in running:
                    await self._release(run, token)
                raise
            if not ran and unclaimed is not None:
                return None
            unclaimed = None  # recorded: later segments hold what they run
            names.extend(ran)
            budget -= len(ran)
            if not ran:
                for run in running:  # claimed with the lost one: free them for the sweeper
                    await self._release(run, token)
                return HopResult("lost_lease", names)
        return HopResult("done", names)

    async def _read_cheap(
        self, task: StepTask, token: str
    ) -> tuple[StepRun, WorkflowExecution] | None:
        """The task's run and execution, read outside a transaction, if the task says
        the run is cheap (``StepTask.cheap``) and it is (``_cheap``), scheduled and due,
        of a running execution: then it runs without a claim of its own (its commit
        claims it), one transaction instead of two. None: anything else, for the claim
        (``ClaimMixin._claim``) to decide; a task without the hint reads nothing here."""
        if not task.cheap:
            return None
        run = await self.executions.get_run(task.run_id)
        if run is None or run.status != StepRunStatus.SCHEDULED:
            return None
        execution = await self.executions.get_execution(run.execution_id)
        now = self.clock.now()
        if execution is None or not _claimable(execution, now):
            return None
        if run.due_at is None or run.due_at > now + timedelta(
            seconds=self.settings.early_tolerance_seconds
        ):
            return None
        definition = await self.definitions.get(execution)
        if not self.cheap(run, definition):
            return None
        step = definition.step(run.step_id)
        run.status = StepRunStatus.RUNNING
        run.lease_owner = token
        run.lease_expires_at = self.lease_until(now, definition, step)
        run.deliveries += 1
        run.started_at = run.started_at or now
        return run, execution

    async def _release(self, run: StepRun, token: str) -> None:
        """End this delivery's lease on ``run`` now, if it still holds it."""
        now = self.clock.now()

        async def release(tx: ExecutionTx) -> None:
            stored = await tx.get_run(run.id)
            if (
                stored is not None
                and stored.status == StepRunStatus.RUNNING
                and stored.lease_owner == token
            ):
                stored.lease_expires_at = now
                tx.put_run(stored)

        try:
            await self.run_tx(release)
        except Exception:
            log.warning("could not release the lease of run %s; it expires", run.id)

    # -- running steps ---------------------------------------------------------------

    async def _run_segment(
        self,
        runs: list[StepRun],
        execution: WorkflowExecution,
        definition: Any,
        token: str,
        budget: int,
        unclaimed: str | None = None,
    ) -> tuple[list[StepRun], WorkflowExecution, list[str]]:
        """Run the claimed ``runs`` (each with the inline steps after it, one chain after
        another) and commit them together; runs past the commit's step limit are
        carried to the next segment, still claimed. ``unclaimed``: the id of the first
        run when it was read, not claimed (``_read_cheap``)."""
        limit = max(1, min(self.settings.chain_commit_steps, budget))
        done, starts, queue = await self._run_chains(runs, execution, definition, token, limit)
        return await self._commit(
            done,
            starts,
            queue,
            execution,
            definition,
            token,
            budget - len(done),
            limit,
            unclaimed,
        )

    async def _run_chains(
        self,
        runs: list[StepRun],
        execution: WorkflowExecution,
        definition: Any,
        token: str,
        limit: int,
    ) -> tuple[list[_Done], list[int], list[StepRun]]:
        """Run ``runs`` one after another, each with the inline steps after it, up to
        ``limit`` steps: the finished steps, the indexes where each chain starts in them,
        and the runs not started."""
        variables = dict(execution.variables)
        done: list[_Done] = []
        starts: list[int] = []
        queue = list(runs)
        while queue and len(done) < limit:
            current: StepRun | None = queue.pop(0)
            starts.append(len(done))
            while current is not None:
                item = await self._execute(current, execution, definition, variables)
                done.append(item)
                current = None
                if len(done) < limit and self._chains(item, definition):
                    current = self._inline_successor(item, execution, definition, token)
        return done, starts, queue

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
        return self.runs_inline(definition.step(targets[0]))

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
        fields = bind_log_context(step_id=run.step_id, run_id=run.id)
        try:
            return await self._run_step(run, execution, definition, variables)
        finally:
            reset_log_context(fields)

    async def _run_step(
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
            timeout = 0.0
            wake = run.state.get("wake")
            if wake is not None:
                outcome = step_type.resume(ctx, wake)
            elif step_type.inline_for(step):  # no I/O: nothing to time out, no task to create
                outcome = await step_type.execute(ctx)
            else:
                timeout = self.time_limit(definition, step)
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
        done: list[_Done],
        starts: list[int],
        carried: list[StepRun],
        snapshot: WorkflowExecution,
        definition: Any,
        token: str,
        budget: int,
        limit: int,
        unclaimed: str | None = None,
    ) -> tuple[list[StepRun], WorkflowExecution, list[str]]:
        """Record ``done`` (chains starting at the indexes ``starts``) in one transaction
        and claim the cheap runs it schedules for this delivery. ``carried``: runs this
        delivery holds that the next segment runs. ``unclaimed``: the id of a run this
        delivery read but did not claim; the transaction claims it (its ``step.started``
        event, its delivery count) if it is still as read and its execution still runs,
        and records nothing otherwise.

        While the transaction has room (``limit`` steps), the cheap runs it schedules
        (branches, map items, the step after a join) are run in it and recorded by it
        too: their steps do no I/O, so running them again if the store runs the body
        again is harmless."""
        now = self.clock.now()
        follow: list[StepRun] = []
        extra: list[_Done] = []
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
            extra.clear()
            held: list[StepRun] = []
            for start in starts:
                stored = await tx.get_run(items[start].run.id)
                if stored is not None and stored.id == unclaimed:
                    if not _as_read(stored, items[start].run):
                        return None
                    continue
                if (
                    stored is None
                    or stored.status != StepRunStatus.RUNNING
                    or (stored.lease_owner != token)
                ):
                    return None
                # A resume or the sweeper may have given the run a new task name
                # meanwhile; writing the older one back would let a later wake-up reuse
                # a spent name.
                items[start].run.wake_seq = max(items[start].run.wake_seq, stored.wake_seq)
                held.append(stored)
            execution = await tx.get_execution(done[0].run.execution_id)
            assert execution is not None
            commit = Commit(
                tx,
                execution,
                definition,
                self.registry,
                now,
                self.settings.max_steps_per_execution,
                defer_runs=True,  # every path below ends with ``finalize``
            )
            if unclaimed is not None:
                if not _claimable(execution, now):
                    return None  # paused, cancelled, timed out meanwhile: the claim says
                # Claimed and recorded in one commit, the step gets no ``step.started``
                # (as a chained step has none): its ``step.succeeded`` says it ran. Only
                # a claim that makes a pending or waiting execution run says so, for the
                # streams that follow the execution's status from its events.
                if execution.status in (ExecutionStatus.PENDING, ExecutionStatus.WAITING):
                    execution.status = ExecutionStatus.RUNNING
                    head = next(d.run for d in items if d.run.id == unclaimed)
                    commit.event(
                        "step.started", head, attempt=head.attempt, delivery=head.deliveries
                    )
            if execution.status.terminal:
                for stored in held:
                    commit.finish_run(stored, StepRunStatus.CANCELLED)
                await commit.free_step_slots()
                commit.finalize()
                return commit
            batch, heads = items, set(starts)
            while True:
                last = len(batch) - 1
                for index, item in enumerate(batch):
                    chained = index < last and index + 1 not in heads
                    self._record(commit, item, definition, chained=chained)
                    if execution.status.terminal:
                        break
                commit.write_children()
                await commit.settle_signal()
                await commit.settle_joins()
                if execution.status.terminal:
                    break
                # After the joins: the step after a join, or a map's next items, too.
                left = budget - len(carried) - len(extra)
                claimed = self._continue_inline(commit, left, token)
                room = limit - len(items) - len(extra)
                if not claimed or room <= 0 or carried:
                    follow.extend(claimed)
                    break
                batch, begins, rest = await self._run_chains(
                    claimed, commit.execution, definition, token, room
                )
                follow.extend(rest)
                heads = set(begins)
                extra.extend(batch)
            await commit.close_execution()
            await commit.free_step_slots()
            commit.finalize()
            return commit

        commit = await self.run_tx(apply)
        if commit is None:
            return carried, snapshot, []
        await self._flush(commit)
        await self.promote_freed(commit.freed_keys)
        names = [d.run.step_id for d in (*done, *extra)]
        if commit.execution.status == ExecutionStatus.RUNNING:
            return [*carried, *follow], commit.execution, names
        if carried and not commit.execution.status.terminal:
            # Paused (or parked) meanwhile: the runs this delivery still holds go back
            # to the queue, through the claim that checks the execution's status. (An
            # ended execution cancelled them in its closing commit.)
            await self._unclaim(carried, token)
        return [], commit.execution, names

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
            return park(commit, run, outcome)
        if isinstance(outcome, FanOut):
            return fan_out(commit, run, outcome, step)
        if isinstance(outcome, StartChild):
            return start_child(commit, run, outcome)
        raise WorkflowError(f"unknown outcome {outcome!r}")

    def _continue_inline(self, commit: Commit, budget: int, token: str) -> list[StepRun]:
        """Claim for this worker, in this commit, the cheap and due runs of this
        execution that the commit schedules (a successor, the branches of a parallel
        step, the items of a map, the step after a join), instead of a task for each."""
        # Only a running execution continues here: the caller stops at any other status
        # (paused while this step ran, or a parallel main-flow step parked), and a run
        # claimed for this delivery would then be left RUNNING under a lease nobody holds.
        status = commit.execution.status
        if budget <= 0 or commit.ended or status != ExecutionStatus.RUNNING:
            return []
        taken: list[StepRun] = []
        for nxt in commit.outbox:
            if len(taken) >= budget:
                break
            if nxt.execution_id != commit.execution.id or nxt.status != StepRunStatus.SCHEDULED:
                continue
            if nxt.due_at and nxt.due_at > commit.now:
                continue
            if nxt.scope and not commit.owner_waiting(nxt.scope):
                continue  # its owner ended in this commit: its claim cancels it
            nxt_step = commit.definition.step(nxt.step_id)
            if not self.runs_inline(nxt_step):
                continue  # I/O, or claimed through its step-level limit by its own task
            nxt.status = StepRunStatus.RUNNING
            nxt.lease_owner = token
            nxt.lease_expires_at = self.lease_until(commit.now, commit.definition, nxt_step)
            nxt.started_at = commit.now
            nxt.deliveries = 1
            commit.put_run(nxt)  # no ``step.started``: see ``_commit``
            taken.append(nxt)
        if taken:
            ids = {r.id for r in taken}
            commit.outbox = [r for r in commit.outbox if r.id not in ids]
        return taken

    async def _unclaim(self, runs: list[StepRun], token: str) -> None:
        """Give runs this delivery claimed inline, and has not run, back to the queue."""
        now = self.clock.now()
        back: list[StepRun] = []

        async def unclaim(tx: ExecutionTx) -> None:
            back.clear()
            for run in runs:
                stored = await tx.get_run(run.id)
                if (
                    stored is None
                    or stored.status != StepRunStatus.RUNNING
                    or stored.lease_owner != token
                ):
                    continue
                stored.status = StepRunStatus.SCHEDULED
                stored.lease_owner = None
                stored.lease_expires_at = None
                stored.due_at = now
                tx.put_run(stored)
                back.append(stored)

        try:
            await self.run_tx(unclaim)
        except Exception:
            log.warning("could not give back %d claimed runs; their leases expire", len(runs))
            return
        trace = current_traceparent()
        for run in back:
            try:
                await self.queue.enqueue(
                    StepTask(run.execution_id, run.id, now, run.wake_seq, trace=trace)
                )
            except Exception:
                log.warning("enqueue of run %s failed; the sweeper will retry", run.id)

    async def _flush(self, commit: Commit) -> None:
        """Enqueue what the commit scheduled (the outbox). Failures are left to the sweeper.

        Each task carries the current span (this delivery's), so the next hop continues
        the trace."""
        trace = current_traceparent()
        for run in [*commit.outbox, *commit.woken_parents, *commit.child_runs]:
            if run.due_at is None:
                continue
            own = run.execution_id == commit.execution.id
            cheap = own and self.cheap(run, commit.definition)
            try:
                await self.queue.enqueue(
                    StepTask(
                        run.execution_id,
                        run.id,
                        run.due_at,
                        run.wake_seq,
                        trace=trace,
                        cheap=cheap,
                        tenant=commit.execution.tenant if own else "",
                    )
                )
            except Exception:
                log.warning(
                    "enqueue of run %s failed; the sweeper will retry", run.id, exc_info=True
                )
