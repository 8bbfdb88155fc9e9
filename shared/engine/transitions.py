"""What a step's outcome does to the stored state, inside one transaction.

A ``Commit`` wraps one store transaction for one execution: it holds the fresh
execution document, buffers run writes and events (with gap-free sequence
numbers), and collects the runs to enqueue once the transaction has committed
(the outbox). Scope ends and failures propagate from parallel branches and map
items up to their owner run, and from the main flow to the execution.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from shared.engine import flow, policy, rollup, step_limits
from shared.engine.runs import LoopLimit, make_run, wake_run, wake_value
from shared.engine.steps import Complete, StepRegistry, step_config
from shared.errors import StepFailed
from shared.expressions import render
from shared.models import (
    ErrorInfo,
    ErrorStrategy,
    ExecutionEvent,
    ExecutionStatus,
    FlowKey,
    JoinMark,
    StepRun,
    StepRunStatus,
    WorkflowDefinition,
    WorkflowExecution,
    WorkflowStep,
)
from shared.ports import ExecutionTx

ACTIVE_RUN = frozenset({StepRunStatus.SCHEDULED, StepRunStatus.RUNNING, StepRunStatus.WAITING})
EXECUTION_EVENT = {
    ExecutionStatus.SUCCEEDED: "execution.succeeded",
    ExecutionStatus.FAILED: "execution.failed",
    ExecutionStatus.CANCELLED: "execution.cancelled",
    ExecutionStatus.TIMED_OUT: "execution.timed_out",
}


@dataclass
class Commit:
    """One transaction's worth of changes to one execution."""

    tx: ExecutionTx
    execution: WorkflowExecution
    definition: WorkflowDefinition
    registry: StepRegistry
    now: datetime
    max_steps: int = 10_000
    outbox: list[StepRun] = field(default_factory=list)
    woken_parents: list[StepRun] = field(default_factory=list)
    children: list[WorkflowExecution] = field(default_factory=list)
    child_runs: list[StepRun] = field(default_factory=list)
    pending_signal: tuple[StepRun, str] | None = None
    """A run parked on a signal: a signal that arrived earlier completes it at once."""
    _runs: dict[str, StepRun] = field(default_factory=dict)
    _pending_joins: list[tuple[str, int, Any, tuple[ErrorInfo, StepRun] | None]] = field(
        default_factory=list
    )
    _marks: dict[str, dict[int, JoinMark]] = field(default_factory=dict)
    """Join marks per owner run: those stored before this transaction (read once per
    owner), then the ones this commit writes (its own reads do not see them), so many
    branch ends recorded by one commit settle their join once, in this commit."""
    defer_runs: bool = False
    """Write runs at ``finalize`` only, once each in its last state (a branch scheduled,
    claimed and finished in one transaction is one write, not three); for a caller that
    always finalizes."""
    _local_marks: dict[str, dict[int, JoinMark]] = field(default_factory=dict)
    _failed_owners: set[str] = field(default_factory=set)
    """Owners a body of which failed in this commit (stored marks never fail a waiting
    owner: a failure fails its owner in the commit that writes it)."""
    _children_written: int = 0
    """How many of ``children`` (and of ``child_runs``, below) are written already."""
    _child_runs_written: int = 0
    _origin: StepRun | None = None
    """The innermost failed run when a body failure ends the execution."""
    ended: bool = False
    """Whether this commit ended the execution."""
    closing_parent: bool = False
    """This commit ends a child because its parent ends (or is redriven) in the same
    transaction: the parent's runs are settled there, so this end wakes none of them."""
    written: dict[str, WorkflowExecution] = field(default_factory=dict)
    """Other executions this transaction writes (children it creates, queued ones it
    starts), as written: a cascade reads them here, since the store's reads in a
    transaction do not see its own writes. Shared with the commits of a cascade."""
    freed_keys: list[tuple[str, FlowKey]] = field(default_factory=list)
    """(tenant, key) of slots that executions ended by a cascade freed: their queues are
    promoted after the commit (the sweeper's ``promote_queued`` is the backstop).
    Shared with the commits of a cascade."""

    # -- buffering -------------------------------------------------------------------

    def event(self, kind: str, run: StepRun | None = None, **data: Any) -> None:
        self.execution.event_seq += 1
        self.tx.add_event(
            ExecutionEvent(
                execution_id=self.execution.id,
                workflow_id=self.execution.workflow_id,
                seq=self.execution.event_seq,
                type=kind,
                step_id=run.step_id if run else None,
                run_id=run.id if run else None,
                status=run.status.value if run else self.execution.status.value,
                data=data,
                at=self.now,
            )
        )

    def put_run(self, run: StepRun) -> None:
        self._runs[run.id] = run
        if not self.defer_runs:
            self.tx.put_run(run)

    def owner_waiting(self, scope: str) -> bool:
        """Whether the owner run of a branch or item ``scope`` is still waiting for its
        bodies, as far as this commit knows (one it did not write is as it was read)."""
        owner = self._runs.get(scope.rsplit("/", 2)[-2])
        return owner is None or owner.status == StepRunStatus.WAITING

    def schedule(self, run: StepRun) -> None:
        """Write a new or woken run and enqueue it after the commit."""
        self.put_run(run)
        self.outbox.append(run)

    async def free_step_slots(self) -> None:
        """Free the step-level concurrency slots of the runs this commit recorded as no
        longer running (an outcome, a retry, a park, a cancel): in this transaction."""
        await step_limits.free_slots(self.tx, list(self._runs.values()), self.now)

    def finalize(self) -> None:
        """Write the execution document (and, with ``defer_runs``, every run this commit
        put, each once as it ends up); call once, last."""
        if self.defer_runs:
            for run in self._runs.values():
                self.tx.put_run(run)
        self.execution.updated_at = self.now
        self.tx.put_execution(self.execution)

    # -- new runs --------------------------------------------------------------------

    def new_run(
        self,
        step_id: str,
        *,
        scope: str,
        context: dict[str, Any],
        visits: dict[str, int],
        generation: int,
        predecessor: str | None,
        due_at: datetime | None = None,
        attempt: int = 1,
    ) -> StepRun:
        """A scheduled run for the next visit of ``step_id`` (raises on a loop overrun)."""
        return make_run(
            self.definition,
            self.execution,
            step_id,
            scope=scope,
            context=context,
            visits=visits,
            generation=generation,
            predecessor=predecessor,
            due_at=due_at or self.now,
            attempt=attempt,
            now=self.now,
        )

    # -- outcomes --------------------------------------------------------------------

    def successors(self, run: StepRun, targets: list[str], prev: Any) -> list[StepRun]:
        """Schedule the next steps of ``run`` in its scope, or end the scope."""
        if not targets:
            self.scope_succeeded(run, prev)
            return []
        context = {k: v for k, v in run.context.items() if k in ("item", "index")}
        context["prev"] = prev
        created: list[StepRun] = []
        for target in targets:
            try:
                nxt = self.new_run(
                    target,
                    scope=run.scope,
                    context=context,
                    visits=run.visits,
                    generation=run.generation,
                    predecessor=run.id,
                )
            except LoopLimit as exc:
                self.scope_failed(run, exc.error)
                return created
            self.schedule(nxt)
            created.append(nxt)
        return created

    def complete(
        self, run: StepRun, outcome: Complete, step: WorkflowStep, *, chained: bool = False
    ) -> list[StepRun]:
        """Record a successful run and schedule what follows it.

        ``chained``: the successor already ran inline in this commit and is recorded
        by its own entry, so nothing is scheduled here.
        """
        if outcome.set_vars:
            self.execution.variables.update(outcome.set_vars)
        if step.output_var:
            self.execution.variables[step.output_var] = outcome.output
        self.finish_run(run, StepRunStatus.SUCCEEDED, output=outcome.output)
        if chained:
            return []
        targets = outcome.next_steps if outcome.next_steps is not None else step.next_steps
        return self.successors(run, list(targets), outcome.output)

    def finish_run(
        self,
        run: StepRun,
        status: StepRunStatus,
        *,
        output: Any = None,
        error: ErrorInfo | None = None,
    ) -> None:
        run.status = status
        run.output, run.output_truncated = policy.cap_output(output, 256 * 1024)
        run.error = error
        run.finished_at = self.now
        run.lease_owner = None
        run.lease_expires_at = None
        started = run.started_at or run.created_at
        run.duration_ms = max(0.0, (self.now - started).total_seconds() * 1000)
        self.execution.steps_run += 1
        self.execution.current_step = run.step_id
        self.put_run(run)
        kind = {
            StepRunStatus.SUCCEEDED: "step.succeeded",
            StepRunStatus.FAILED: "step.failed",
            StepRunStatus.SKIPPED: "step.skipped",
            StepRunStatus.CANCELLED: "step.cancelled",
        }[status]
        data: dict[str, Any] = {"attempt": run.attempt, "durationMs": run.duration_ms}
        if error is not None:
            data["error"] = error.to_json_dict()
        self.event(kind, run, **data)
        if self.execution.steps_run > self.max_steps and not self.execution.status.terminal:
            self.finish_execution(
                ExecutionStatus.FAILED,
                error=ErrorInfo(
                    code="MAX_STEPS_EXCEEDED",
                    message=f"execution ran more than {self.max_steps} steps",
                    step_id=run.step_id,
                ),
                failed_run=run,
            )

    def failed(self, run: StepRun, step: WorkflowStep, error: ErrorInfo) -> list[StepRun]:
        """Record a failed attempt and apply the step's retry policy and error strategy."""
        error.step_id = error.step_id or step.id
        retry = step.on_error.effective_retry()
        if policy.should_retry(retry, run.attempt, error):
            assert retry is not None
            delay = policy.backoff_seconds(retry, run.attempt, run.id)
            self.finish_run(run, StepRunStatus.FAILED, error=error)
            nxt = self.new_run(
                step.id,
                scope=run.scope,
                context=run.context,
                visits=run.visits,
                generation=run.generation,
                predecessor=run.predecessor_id,
                due_at=self.now + timedelta(seconds=delay),
                attempt=run.attempt + 1,
            )
            # Every attempt of a visit sends one key (a redriven visit may carry its
            # previous generation's key: see ``redrive``).
            nxt.idempotency_key = run.idempotency_key or nxt.idempotency_key
            self.schedule(nxt)
            self.event("step.retrying", nxt, delaySeconds=delay, attempt=nxt.attempt)
            return [nxt]
        self.finish_run(run, StepRunStatus.FAILED, error=error)
        strategy = step.on_error.strategy
        prev = {"error": error.to_json_dict(), "input": run.input}
        if strategy == ErrorStrategy.CONTINUE:
            return self.successors(run, step.next_steps[:1], prev)
        if strategy == ErrorStrategy.FALLBACK and step.on_error.fallback_step:
            return self.successors(run, [step.on_error.fallback_step], prev)
        self.scope_failed(run, error)
        return []

    # -- scopes ----------------------------------------------------------------------

    def scope_succeeded(self, run: StepRun, output: Any) -> None:
        if not run.scope:
            result = output
            if self.definition.output is not None:
                env = {
                    "vars": self.execution.variables,
                    "input": self.execution.input,
                    "prev": output,
                    "item": None,
                    "index": None,
                    "execution": {"id": self.execution.id},
                }
                try:
                    result = render(self.definition.output, env)
                except StepFailed as exc:
                    self.finish_execution(
                        ExecutionStatus.FAILED,
                        failed_run=run,
                        error=ErrorInfo(
                            code="OUTPUT_ERROR",
                            step_id=run.step_id,
                            message=f"the workflow output failed: {exc.message}",
                        ),
                    )
                    return
            self.finish_execution(ExecutionStatus.SUCCEEDED, result=result)
            return
        _, owner_id, index = policy.parse_scope(run.scope)
        self._put_join(
            JoinMark(
                owner_run_id=owner_id, index=index, status=StepRunStatus.SUCCEEDED, output=output
            )
        )
        self._pending_joins.append((owner_id, index, output, None))

    def scope_failed(self, run: StepRun, error: ErrorInfo) -> None:
        if not run.scope:
            self.finish_execution(ExecutionStatus.FAILED, error=error, failed_run=run)
            return
        _, owner_id, index = policy.parse_scope(run.scope)
        self._put_join(
            JoinMark(owner_run_id=owner_id, index=index, status=StepRunStatus.FAILED, error=error)
        )
        self._pending_joins.append((owner_id, index, None, (error, run)))

    def _put_join(self, mark: JoinMark) -> None:
        self.tx.put_join(mark)
        self._local_marks.setdefault(mark.owner_run_id, {})[mark.index] = mark
        if mark.owner_run_id in self._marks:
            self._marks[mark.owner_run_id][mark.index] = mark
        if mark.status != StepRunStatus.SUCCEEDED:
            self._failed_owners.add(mark.owner_run_id)

    async def _join_marks(self, owner_id: str) -> dict[int, JoinMark]:
        """Every mark of ``owner_id``: stored ones, overridden by this commit's."""
        marks = self._marks.get(owner_id)
        if marks is None:
            marks = self._marks[owner_id] = {m.index: m for m in await self.tx.list_joins(owner_id)}
            marks.update(self._local_marks.get(owner_id, {}))  # later ones: ``_put_join``
        return marks

    async def settle_joins(self) -> None:
        """Resolve branch/item ends recorded by this commit against their owners (reads)."""
        while self._pending_joins:
            owner_id, index, _output, failure = self._pending_joins.pop(0)
            owner = self._runs.get(owner_id) or await self.tx.get_run(owner_id)
            if owner is None or owner.status != StepRunStatus.WAITING:
                continue  # the owner already ended (a sibling failed, or cancelled)
            step = self.definition.step(owner.step_id)
            step_type = self.registry.get(step.type)
            config = step_config(step_type, self.definition, step)
            if failure is not None:
                error, origin = failure
                wrapped = ErrorInfo(
                    code=error.code,
                    message=f"{step.id}[{index}] failed at {error.step_id}: {error.message}",
                    retryable=error.retryable,
                    step_id=step.id,
                )
                self._origin = self._origin or origin
                self.failed(owner, step, wrapped)
                continue
            if owner_id in self._failed_owners:
                continue  # a sibling failed in this commit: its own entry fails the owner
            marks = await self._join_marks(owner_id)
            total = int(owner.state.get("total", 0))
            window = int(owner.state.get("window", total))
            if len(marks) >= total:
                ordered = sorted(marks.values(), key=lambda m: m.index)
                outcome = step_type.join(owner, config, ordered)
                self.complete(owner, outcome, step)
            elif index + window < total:
                self.start_body(owner, step_type, config, index + window)

    def start_body(self, owner: StepRun, step_type: Any, config: Any, index: int) -> None:
        body = step_type.body(owner, config, index)
        scope = f"{owner.scope}/{owner.id}/{index}" if owner.scope else f"{owner.id}/{index}"
        try:
            run = self.new_run(
                body.start_step,
                scope=scope,
                context=body.context,
                visits={},
                generation=owner.generation,
                predecessor=owner.id,
            )
        except LoopLimit as exc:  # pragma: no cover - a body start is visited once
            self.scope_failed(owner, exc.error)
            return
        self.schedule(run)

    async def settle_signal(self) -> None:
        """Consume a signal that arrived before its ``wait_for_event`` step parked."""
        if self.pending_signal is None:
            return
        run, name = self.pending_signal
        self.pending_signal = None  # settled once, however often this is called
        signal = await self.tx.find_signal(self.execution.id, name)
        if signal is None:
            return
        signal.consumed_by = run.id
        self.tx.put_signal(signal)
        wake_run(run, wake_value(signal), self.now)
        self.outbox = [r for r in self.outbox if r.id != run.id]
        self.schedule(run)
        self.event("step.woken", run, signal=name)

    def write_children(self) -> None:
        """Create child executions (subworkflows) started by this commit (those not
        written yet: this may be called again after more steps are recorded)."""
        children, self._children_written = (
            self.children[self._children_written :],
            len(self.children),
        )
        runs, self._child_runs_written = (
            self.child_runs[self._child_runs_written :],
            len(self.child_runs),
        )
        for child in children:
            child.event_seq = 1
            self.tx.add_event(
                ExecutionEvent(
                    execution_id=child.id,
                    workflow_id=child.workflow_id,
                    seq=1,
                    type="execution.started",
                    status=child.status.value,
                    at=self.now,
                    data={"workflowVersion": child.workflow_version, "trigger": child.trigger},
                )
            )
            self.tx.put_execution(child)
            self.tx.add_rollup(rollup.started(child))  # analytics: the child's start
            self.written[child.id] = child
        for run in runs:
            self.tx.put_run(run)

    # -- execution end ---------------------------------------------------------------

    def finish_execution(
        self,
        status: ExecutionStatus,
        *,
        result: Any = None,
        error: ErrorInfo | None = None,
        failed_run: StepRun | None = None,
        cause: dict[str, Any] | None = None,
    ) -> None:
        """End the execution with ``status``; ``cause`` adds to the end event's data."""
        exe = self.execution
        if exe.status.terminal:
            return
        exe.status = status
        exe.completed_at = self.now
        exe.duration = max(0.0, (self.now - exe.started_at).total_seconds() * 1000)
        if status == ExecutionStatus.SUCCEEDED:
            exe.result, _ = policy.cap_output(result, 512 * 1024)
        if error is not None:
            exe.error = f"{error.code}: {error.message}"
            exe.error_info = error
        origin = self._origin or failed_run
        if origin is not None and status == ExecutionStatus.FAILED:
            exe.failed_run_id = origin.id
        data: dict[str, Any] = {"durationMs": exe.duration}
        if error is not None:
            data["error"] = error.to_json_dict()
        data.update(cause or {})
        self.event(EXECUTION_EVENT[status], None, **data)
        self.ended = True

    async def close_execution(self) -> None:
        """After an execution ended in this commit: cancel its live runs and the child
        executions they started, free its slots, wake its parent."""
        if not self.ended:
            return
        exe = self.execution
        # Every run, not only the live ones: the analytics rollup below counts the
        # step figures of this execution from them (one read at the end, none per step).
        listed = await self.tx.list_runs(exe.id)
        for run in listed:
            if run.status not in ACTIVE_RUN:
                continue
            if run.id in self._runs and self._runs[run.id].status not in ACTIVE_RUN:
                continue
            run = self._runs.get(run.id, run)
            run.status = StepRunStatus.CANCELLED
            run.finished_at = self.now
            run.lease_owner = None
            self.put_run(run)
        await self.free_step_slots()
        # Analytics: the end, in this same transaction (exactly-once with the commit).
        seen = {run.id for run in listed}
        runs = [self._runs.get(r.id, r) for r in listed]
        runs += [r for r in self._runs.values() if r.id not in seen]
        self.tx.add_rollup(rollup.ended(exe, runs))
        self.outbox = [
            r
            for r in self.outbox
            if r.status == StepRunStatus.SCHEDULED and r.execution_id != exe.id
        ]
        # Flow control: free its slots and start the head of each freed key's queue, in
        # this same transaction (their runs are enqueued after the commit, as the outbox).
        freed = flow.release(self.tx, exe, self.now)
        if freed and self.closing_parent:
            # A second promotion in one transaction would read the queue as the first
            # left it in the store (its writes are unseen) and start the same one twice.
            self.freed_keys.extend((exe.tenant, key) for key in freed)
        elif freed:
            promoted = await flow.promote(
                self.tx, exe.tenant, freed, self.now, freed_by=exe.id, budget=len(freed)
            )
            for promotion in promoted:
                self.outbox.extend(promotion.runs)
                self.written[promotion.execution.id] = promotion.execution
        # After the promotion: a child it started is ended from the document it wrote.
        await self.end_children(runs, f"parent execution {exe.id} ended {exe.status.value}")
        if exe.parent is None or self.closing_parent:
            return
        parent_run = await self.tx.get_run(exe.parent.run_id)
        if parent_run is None or parent_run.status != StepRunStatus.WAITING:
            return
        if exe.status == ExecutionStatus.SUCCEEDED:
            wake: dict[str, Any] = {"ok": True, "value": exe.result}
        else:
            wake = {
                "ok": False,
                "error": {
                    "code": "CHILD_" + exe.status.value.upper(),
                    "message": f"child execution {exe.id} ended {exe.status.value}: {exe.error}",
                },
            }
        wake_run(parent_run, wake, self.now)
        self.tx.put_run(parent_run)
        self.woken_parents.append(parent_run)

    # -- child executions ------------------------------------------------------------

    async def end_children(self, runs: list[StepRun], message: str) -> None:
        """Cancel, in this transaction, the live child executions that ``runs`` started
        and that can no longer report to them: a run that is live, or was cancelled (by
        this end or an earlier one; a redrive replaces such a run with a new one and a
        new child). A child that ended woke its run, which then succeeded or failed."""
        parent = self.execution
        for run in runs:
            child_id = run.state.get("childExecutionId")
            if not isinstance(child_id, str) or not (
                run.status in ACTIVE_RUN or run.status == StepRunStatus.CANCELLED
            ):
                continue
            child = self.written.get(child_id) or await self.tx.get_execution(child_id)
            if child is None or child.status.terminal:
                continue
            if child.parent is None or child.parent.execution_id != parent.id:
                continue  # not this execution's child: leave it alone
            await self._cancel_child(child, message)

    async def _cancel_child(self, child: WorkflowExecution, message: str) -> None:
        # Ending an execution and closing it read no step of its definition: the
        # parent's stands in for the child's, which this transaction need not load.
        commit = Commit(
            self.tx,
            child,
            self.definition,
            self.registry,
            self.now,
            self.max_steps,
            closing_parent=True,
            written=self.written,
            freed_keys=self.freed_keys,
        )
        commit.finish_execution(
            ExecutionStatus.CANCELLED,
            error=ErrorInfo(code="CANCELLED", message=message),
            cause={
                "parentExecutionId": self.execution.id,
                "parentStatus": self.execution.status.value,
            },
        )
        self.written[child.id] = child
        if child.id in {c.id for c in self.children}:
            # Created by this very commit: its first runs are only buffered, so the
            # close below (a store read) cannot see them.
            for run in self.child_runs:
                if run.execution_id == child.id and run.status in ACTIVE_RUN:
                    run.status = StepRunStatus.CANCELLED
                    run.finished_at = self.now
                    commit.put_run(run)
        await commit.close_execution()
        commit.finalize()
        # Runs this commit would enqueue for the child (a promotion's) are void now.
        self.outbox = [r for r in self.outbox if r.execution_id != child.id]
