"""Start controls: ``singleton``, ``rateLimit``, ``throttle`` and ``debounce``.

Each is evaluated once at start (its key is CEL over ``input`` and ``trigger``) and
kept in one slot-like document per key value, read and written in the transaction
that creates the execution, so every store enforces it under concurrent starts:

- singleton: a limit-1 slot; its holder is the live (queued or running) execution;
- rateLimit: the times of the latest ``limit`` starts (a sliding window);
- throttle: the GCRA theoretical arrival time;
- debounce: the pending execution, whose input a later start replaces.

An execution held back until a time is stored ``queued`` with ``queue.notBefore`` and
a ``$start`` timer run due then (the engine's durable timers: a task, and the
sweeper's backstop); the timer's delivery (``fire``) starts it, or puts it in its
concurrency queue. ``docs/flow-control-start-controls.md`` has the whole story.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

from shared.engine import flow, policy
from shared.errors import Conflict, InvalidState, NotFound, StartRateLimited
from shared.models import (
    ConcurrencySlot,
    ExecutionEvent,
    ExecutionStatus,
    FlowKey,
    QueueState,
    StepRun,
    StepRunStatus,
    WorkflowDefinition,
    WorkflowExecution,
)
from shared.models.definition import (
    RateLimitMode,
    RateLimitSpec,
    SingletonMode,
    ThrottleSpec,
)
from shared.ports import ExecutionStore, ExecutionTx

__all__ = [
    "CANCEL_ATTEMPTS",
    "TIMER_STEP",
    "Admission",
    "CancelFirst",
    "admit",
    "fire",
    "plan",
    "run_start",
]

T = TypeVar("T")

TIMER_STEP = flow.TIMER_STEP
CANCEL_ATTEMPTS = 5
"""Starts of a ``cancelRunning`` singleton that may each find a new live execution."""


def plan(definition: WorkflowDefinition, execution: WorkflowExecution) -> QueueState | None:
    """``flow.plan`` plus the evaluated keys of the start controls (``None`` if none).

    Raises InputInvalid (``FLOW_KEY_INVALID``) when a key fails: nothing is stored.
    """
    state = flow.plan(definition, execution)
    env = {"input": execution.input, "trigger": execution.trigger}
    specs: dict[str, Any] = {
        "singleton": definition.singleton,
        "rateLimit": definition.rate_limit,
        "throttle": definition.throttle,
        "debounce": definition.debounce,
    }
    keys: dict[str, FlowKey] = {}
    for name, spec in specs.items():
        if spec is None:
            continue
        label = "" if spec.key is None else flow.key_value(spec.key, env, f"/{name}/key", name)
        limit = spec.limit if isinstance(spec, RateLimitSpec | ThrottleSpec) else 1
        keys[name] = FlowKey(
            slot_key=f"{name}:{definition.id}:{label}", label=label, limit=limit, scope=name
        )
    if not keys:
        return state
    if state is None:
        state = QueueState(timeout_seconds=definition.timeout_seconds)
    state.singleton = keys.pop("singleton", None)
    state.gates = list(keys.values())
    return state


class CancelFirst(Exception):
    """A ``cancelRunning`` singleton found a live execution: cancel it, then start again
    (raised out of the start transaction, which writes nothing)."""

    def __init__(self, execution_id: str, key: str) -> None:
        super().__init__(execution_id)
        self.execution_id = execution_id
        self.key = key


@dataclass
class Admission:
    """What the start controls decided in a start transaction."""

    existing: WorkflowExecution | None = None
    """The execution that answers instead of a new one (singleton skip, debounce)."""
    held: bool = False
    """The new execution is queued until ``queue.notBefore`` (its timer is in the runs)."""


def _gate(state: QueueState, name: str) -> FlowKey | None:
    return next((key for key in state.gates if key.scope == name), None)


def _slot(execution: WorkflowExecution, key: FlowKey) -> ConcurrencySlot:
    return ConcurrencySlot(
        id=flow.slot_id(execution.tenant, key.slot_key, 0),
        tenant=execution.tenant,
        slot_key=key.slot_key,
        label=key.label,
        index=0,
    )


async def _read(tx: ExecutionTx, execution: WorkflowExecution, key: FlowKey) -> ConcurrencySlot:
    blank = _slot(execution, key)
    return (await tx.get_slots([blank.id])).get(blank.id) or blank


def _with_key(text: str, key: FlowKey) -> str:
    return f"{text} key={key.label}" if key.label else text


async def admit(
    tx: ExecutionTx,
    execution: WorkflowExecution,
    definition: WorkflowDefinition,
    runs: list[StepRun],
    now: datetime,
) -> Admission:
    """Apply the start controls to a new execution inside its start transaction.

    Returns the execution that answers instead (singleton ``skip``, a pending debounced
    one, now with this start's input), or whether the new one is held until a time: it
    is then ``queued`` and a ``$start`` timer run is appended to ``runs``. Raises
    StartRateLimited (``refuse``) or CancelFirst (``cancelRunning``).
    """
    state = execution.queue
    if state is None or (state.singleton is None and not state.gates):
        return Admission()
    debounce = _gate(state, "debounce")
    if debounce is not None:
        pending = await _debounced(tx, execution, debounce)
        if pending is not None:
            await _merge(tx, pending, execution, definition, now)
            return Admission(existing=pending)
    if state.singleton is not None:
        live = await _live_singleton(tx, execution, state.singleton)
        if live is not None:
            if definition.singleton is None or definition.singleton.mode == SingletonMode.SKIP:
                return Admission(existing=live)
            if _replaced.get() not in (None, live.id):
                # A start newer than this one took the key after this one cancelled
                # the live execution: the newest start wins, this one answers it.
                return Admission(existing=live)
            raise CancelFirst(live.id, state.singleton.label)
    at, reason = now, ""
    rate = _gate(state, "rateLimit")
    if rate is not None and definition.rate_limit is not None:
        at = await _rate_window(tx, execution, rate, definition, now)
        reason = _with_key(f"rate limited until {at.isoformat()}", rate)
    throttle = _gate(state, "throttle")
    if throttle is not None and definition.throttle is not None:
        allowed = await _gcra(tx, execution, throttle, definition, at)
        if allowed > at:
            at, reason = allowed, _with_key(f"throttled until {allowed.isoformat()}", throttle)
    if debounce is not None and definition.debounce is not None:
        at = now + timedelta(seconds=definition.debounce.period)
        reason = _with_key(f"debounced until {at.isoformat()}", debounce)
        slot = _slot(execution, debounce)
        slot.holder, slot.updated_at = execution.id, now
        tx.put_slot(slot)
    if state.singleton is not None:
        slot = _slot(execution, state.singleton)
        slot.holder, slot.updated_at = execution.id, now
        tx.put_slot(slot)
    if at <= now:
        return Admission()
    _hold(execution, runs, at, reason, now)
    return Admission(held=True)


def _hold(
    execution: WorkflowExecution, runs: list[StepRun], at: datetime, reason: str, now: datetime
) -> None:
    """Queue a new execution until ``at``: its runs are parked by the caller, its timer
    run (kept out of parking) starts it."""
    state = execution.queue
    assert state is not None
    execution.status = ExecutionStatus.QUEUED
    state.not_before = at
    state.reason = reason
    state.key = next((key.label for key in state.gates), None)
    state.queued_at = now
    execution.deadline = None  # the time limit starts when it leaves the queue
    runs.append(
        StepRun(
            id=policy.run_id(execution.id, "", TIMER_STEP, 1, 1, 0),
            execution_id=execution.id,
            workflow_id=execution.workflow_id,
            step_id=TIMER_STEP,
            step_type=TIMER_STEP,
            status=StepRunStatus.WAITING,
            due_at=at,
            created_at=now,
        )
    )


async def _live_singleton(
    tx: ExecutionTx, execution: WorkflowExecution, key: FlowKey
) -> WorkflowExecution | None:
    """The execution holding the singleton slot, if it is live (not ended, not us)."""
    slot = await _read(tx, execution, key)
    if slot.holder is None or slot.holder == execution.id:
        return None
    holder = await tx.get_execution(slot.holder)
    if holder is None or holder.status.terminal:
        return None
    return holder


async def _rate_window(
    tx: ExecutionTx,
    execution: WorkflowExecution,
    key: FlowKey,
    definition: WorkflowDefinition,
    now: datetime,
) -> datetime:
    """Reserve a start time in the sliding window: ``now`` if fewer than ``limit``
    starts fall in the last ``period``, else when the oldest of them leaves it."""
    spec = definition.rate_limit
    assert spec is not None
    period = timedelta(seconds=spec.period)
    slot = await _read(tx, execution, key)
    window = sorted(t for t in slot.starts if t > now - period)[-spec.limit :]
    at = now if len(window) < spec.limit else max(now, window[0] + period)
    if at > now and spec.mode == RateLimitMode.REFUSE:
        raise StartRateLimited(
            _with_key(
                f"rate limit of workflow {definition.id}: {spec.limit} starts per "
                f"{spec.period:g} s",
                key,
            ),
            (at - now).total_seconds(),
            key=key.label,
        )
    slot.starts = [*window, at][-spec.limit :]
    slot.updated_at = now
    tx.put_slot(slot)
    return at


async def _gcra(
    tx: ExecutionTx,
    execution: WorkflowExecution,
    key: FlowKey,
    definition: WorkflowDefinition,
    arrival: datetime,
) -> datetime:
    """The throttle's allowed start time (GCRA, delaying instead of refusing).

    Emission interval ``T = period / limit``, tolerance ``(burst - 1) * T``; the stored
    theoretical arrival time only grows, so starts keep their order.
    """
    spec = definition.throttle
    assert spec is not None
    interval = timedelta(seconds=spec.period / spec.limit)
    tolerance = interval * ((spec.burst or spec.limit) - 1)
    slot = await _read(tx, execution, key)
    tat = max(slot.tat or arrival, arrival)
    allowed = max(arrival, tat - tolerance)
    slot.tat = max(tat, allowed) + interval
    slot.updated_at = arrival
    tx.put_slot(slot)
    return allowed


async def _debounced(
    tx: ExecutionTx, execution: WorkflowExecution, key: FlowKey
) -> WorkflowExecution | None:
    """The pending execution of a debounce key: queued, its timer not yet fired."""
    slot = await _read(tx, execution, key)
    if slot.holder is None or slot.holder == execution.id:
        return None
    pending = await tx.get_execution(slot.holder)
    if (
        pending is None
        or pending.status != ExecutionStatus.QUEUED
        or pending.queue is None
        or pending.queue.not_before is None
    ):
        return None
    return pending


async def _merge(
    tx: ExecutionTx,
    pending: WorkflowExecution,
    start: WorkflowExecution,
    definition: WorkflowDefinition,
    now: datetime,
) -> None:
    """A later start of a debounce key: its input and trigger replace the pending one's,
    whose start moves to ``now + period``. Its timer task, delivered at the old time, is
    early and re-queued for the new one (the timer run's due time is moved here)."""
    spec = definition.debounce
    state = pending.queue
    assert spec is not None and state is not None
    timer = await tx.get_run(policy.run_id(pending.id, "", TIMER_STEP, 1, 1, 0))
    at = now + timedelta(seconds=spec.period)
    pending.input = start.input
    pending.trigger = start.trigger
    pending.variables = {**definition.variables, **start.input}
    state.not_before = at
    gate = _gate(state, "debounce")
    text = f"debounced until {at.isoformat()}"
    state.reason = _with_key(text, gate) if gate is not None else text
    pending.updated_at = now
    _event(tx, pending, "execution.debounced", now, {"startsAt": at.isoformat()})
    tx.put_execution(pending)
    if timer is not None and not timer.status.terminal:
        timer.due_at = at
        tx.put_run(timer)


def _event(
    tx: ExecutionTx, execution: WorkflowExecution, kind: str, now: datetime, data: dict[str, Any]
) -> None:
    execution.event_seq += 1
    tx.add_event(
        ExecutionEvent(
            execution_id=execution.id,
            workflow_id=execution.workflow_id,
            seq=execution.event_seq,
            type=kind,
            status=execution.status.value,
            data=data,
            at=now,
        )
    )


async def fire(
    tx: ExecutionTx,
    run: StepRun,
    execution: WorkflowExecution,
    now: datetime,
    early_ok: datetime,
) -> tuple[str, list[StepRun]]:
    """A delivery of a ``$start`` timer: start the held execution, or put it in its
    concurrency queue. Returns the delivery's status and the runs to enqueue."""
    if run.due_at is None or run.due_at > early_ok:
        return "early", []
    run.status = StepRunStatus.SUCCEEDED
    run.finished_at = now
    tx.put_run(run)
    state = execution.queue
    if execution.status != ExecutionStatus.QUEUED or state is None or state.not_before is None:
        return "duplicate", []
    waited = state.queued_at
    state.not_before = None
    state.reason = state.key = None
    if await flow.take_or_queue(tx, execution, now):
        execution.updated_at = now
        _event(tx, execution, "execution.queued", now, {"key": state.key, "reason": state.reason})
        tx.put_execution(execution)
        return "queued", []
    state.queued_at = None
    execution.status = ExecutionStatus.RUNNING
    runs = flow.unpark_runs(await tx.list_runs(execution.id), execution, now)
    for woken in runs:
        tx.put_run(woken)
    waited_ms = (now - waited).total_seconds() * 1000 if waited else 0.0
    _event(tx, execution, "execution.dequeued", now, {"key": None, "queuedMs": waited_ms})
    execution.updated_at = now
    tx.put_execution(execution)
    return "done", [r for r in runs if r.due_at is not None]


_replaced: ContextVar[str | None] = ContextVar("singleton_replaced", default=None)
"""The live execution this start cancelled (a ``cancelRunning`` singleton)."""


class _Starter(Protocol):
    executions: ExecutionStore

    async def cancel(self, execution_id: str, reason: str = "") -> WorkflowExecution: ...


async def run_start(
    engine: _Starter, create: Callable[[ExecutionTx], Awaitable[T]], workflow_id: str
) -> T:
    """Run a start transaction; a ``cancelRunning`` singleton first cancels the live
    execution it found (the engine's own cancel: durable, children too) and tries again."""
    token = _replaced.set(None)
    try:
        for _ in range(CANCEL_ATTEMPTS):
            try:
                return await engine.executions.run_transaction(create)
            except CancelFirst as found:
                _replaced.set(found.execution_id)
                with contextlib.suppress(InvalidState, NotFound):  # it ended meanwhile
                    await engine.cancel(
                        found.execution_id,
                        _with_key(
                            f"replaced by a new start (singleton of {workflow_id})", _key(found)
                        ),
                    )
    finally:
        _replaced.reset(token)
    raise Conflict(
        f"singleton of workflow {workflow_id}: other starts kept replacing the live execution",
        retryable=True,
    )


def _key(found: CancelFirst) -> FlowKey:
    return FlowKey(slot_key="", label=found.key, limit=1)
