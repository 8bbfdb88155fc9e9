"""Step-level limits: ``concurrency`` and ``rateLimit`` on a single step.

A step with a limit is checked when a delivery claims one of its runs, in the claim's
own transaction:

- concurrency: ``limit`` slot documents per key value (tenant-wide when the step names a
  key, so every step naming the same value shares them; else the step's own). The run
  takes a free one (holder = the run id) or is not claimed. A slot is freed in the
  transaction that records the run's outcome; a slot whose holder run is not running
  any more, or whose lease has expired, counts as free (a crashed worker's slot comes
  back when its lease runs out);
- rateLimit: a sliding window (the times of the latest ``limit`` starts) per key value;
  a run over the limit reserves the time the window allows and comes back then.

A run that may not start stays ``scheduled``: its due time moves (0.25 s doubling to
5 s with jitter while slots are full; the reserved time for a rate limit), its
``state.waiting`` says why, and its attempt and deliveries are unchanged (a wait is
neither a retry nor a failure). Steps with a limit are never run inline in a chain:
each run is claimed through this check. ``docs/flow-control-start-controls.md``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from shared.engine.flow import MAX_KEY_LENGTH, slot_id
from shared.errors import Issue, StepFailed
from shared.expressions import compile_expression, expression
from shared.models import (
    ConcurrencySlot,
    StepRun,
    StepRunStatus,
    WorkflowDefinition,
    WorkflowExecution,
    WorkflowStep,
)
from shared.ports import ExecutionTx

__all__ = [
    "BACKOFF_CAP_SECONDS",
    "BACKOFF_FIRST_SECONDS",
    "HELD_SLOTS",
    "STEP_LIMIT_ROOTS",
    "WAITING",
    "Deferred",
    "acquire",
    "check_step_limits",
    "free_slots",
    "limited",
]

STEP_LIMIT_ROOTS = frozenset({"input", "vars", "trigger"})
"""What a step-level key expression may read."""
BACKOFF_FIRST_SECONDS = 0.25
BACKOFF_CAP_SECONDS = 5.0
HELD_SLOTS = "stepSlots"
"""``run.state`` key: the concurrency slot documents the running run holds."""
WAITING = "waiting"
"""``run.state`` key: why a scheduled run has not started (a step limit)."""
_WAITS = "slotWaits"
_RATE_AT = "rateLimitedUntil"


def limited(step: WorkflowStep) -> bool:
    """Whether runs of ``step`` must pass a step-level limit at claim."""
    return step.concurrency is not None or step.rate_limit is not None


def check_step_limits(definition: WorkflowDefinition) -> list[Issue]:
    """Save-time checks of step-level keys (CEL over ``input``, ``vars``, ``trigger``).

    The limits' bounds are the model's (``/steps/3/concurrency/limit``)."""
    issues: list[Issue] = []
    for index, step in enumerate(definition.steps):
        for name, spec in (("concurrency", step.concurrency), ("rateLimit", step.rate_limit)):
            if spec is not None and spec.key is not None:
                path = f"/steps/{index}/{name}/key"
                _, found = compile_expression(spec.key, path, STEP_LIMIT_ROOTS)
                issues.extend(found)
    return issues


def _key(source: str | None, execution: WorkflowExecution, what: str) -> str | None:
    """The evaluated key (``None`` without one); raises StepFailed
    (``STEP_LIMIT_KEY_INVALID``, not retryable) when it fails."""
    if source is None:
        return None
    env = {"input": execution.input, "vars": execution.variables, "trigger": execution.trigger}
    code = "STEP_LIMIT_KEY_INVALID"
    try:
        value = expression(source, STEP_LIMIT_ROOTS).evaluate(env)
    except StepFailed as exc:
        raise StepFailed(f"{what} key failed: {exc.message}", code=code) from exc
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise StepFailed(
            f"{what} key must be a string or a number, not {type(value).__name__}", code=code
        )
    text = str(value)
    if len(text) > MAX_KEY_LENGTH:
        raise StepFailed(f"{what} key longer than {MAX_KEY_LENGTH} characters", code=code)
    return text


def _slot_key(kind: str, label: str | None, execution: WorkflowExecution, step_id: str) -> str:
    if label is not None:
        return f"step{kind}:k:{label}"
    return f"step{kind}:w:{execution.workflow_id}:{step_id}"


def _with_key(text: str, label: str | None) -> str:
    return f"{text} key={label}" if label else text


@dataclass
class Deferred:
    """A run that may not start yet: it stays scheduled, due again at ``due_at``."""

    due_at: datetime
    reason: str


async def _holder_gone(tx: ExecutionTx, slot: ConcurrencySlot, now: datetime) -> bool:
    """Whether a held slot is free after all: its holder run is missing, not running,
    does not list it, or its lease has expired (crash healing)."""
    holder = await tx.get_run(slot.holder or "")
    if holder is None or holder.status != StepRunStatus.RUNNING:
        return True
    if holder.lease_expires_at is not None and holder.lease_expires_at <= now:
        return True
    return slot.id not in holder.state.get(HELD_SLOTS, [])


async def _free_slot(
    tx: ExecutionTx, run: StepRun, tenant: str, slot_key: str, limit: int, now: datetime
) -> ConcurrencySlot | None:
    """A slot of the key this run may take (its own first), or ``None`` when all are held.

    One slot is read first: the one the run's state lists (a takeover after its lease
    expired), else one at random; only when it is held are the others read (in one
    batch), and a random free one is taken. On Firestore a read locks its document until
    the commit, and two transactions that both read a document and then write it wait
    for each other (the emulator until a lock timeout of about 2 s, which aborts nearly
    every transaction caught in it): a claim that read every slot collided with every
    concurrent take of any of them, so concurrent claims livelocked. Now claims that
    take different slots do not meet, and a claim that finds every slot held writes
    none of them (a release only waits for its commit)."""
    ids = [slot_id(tenant, slot_key, i) for i in range(limit)]
    listed = [ident for ident in run.state.get(HELD_SLOTS, []) if ident in ids]
    first = listed[0] if listed else random.choice(ids)

    def slot_of(stored: dict[str, ConcurrencySlot], ident: str) -> ConcurrencySlot:
        return stored.get(ident) or ConcurrencySlot(
            id=ident, tenant=tenant, slot_key=slot_key, index=ids.index(ident)
        )

    slot = slot_of(await tx.get_slots([first]), first)
    if slot.holder is None or slot.holder == run.id:
        return slot
    others = [ident for ident in ids if ident != first]
    stored = await tx.get_slots(others) if others else {}
    free: list[ConcurrencySlot] = []
    held: list[ConcurrencySlot] = [slot]
    for ident in others:
        other = slot_of(stored, ident)
        if other.holder == run.id:
            return other
        (free if other.holder is None else held).append(other)
    if not free:
        free = [one for one in held if await _holder_gone(tx, one, now)]
    # A random free slot: concurrent claims on Firestore then rarely aim at one document.
    return random.choice(free) if free else None


async def _rate_time(
    tx: ExecutionTx,
    run: StepRun,
    tenant: str,
    slot_key: str,
    limit: int,
    period: float,
    now: datetime,
    early_ok: datetime,
) -> datetime:
    """Reserve a start in the sliding window: ``now`` if fewer than ``limit`` starts fall
    in the last ``period`` (or this run's reserved time has come), else when the oldest
    of them leaves it (reserved for this run)."""
    reserved = run.state.get(_RATE_AT)
    if isinstance(reserved, str) and datetime.fromisoformat(reserved) <= early_ok:
        return now
    ident = slot_id(tenant, slot_key, 0)
    slot = (await tx.get_slots([ident])).get(ident) or ConcurrencySlot(
        id=ident, tenant=tenant, slot_key=slot_key, index=0
    )
    window = timedelta(seconds=period)
    starts = sorted(t for t in slot.starts if t > now - window)[-limit:]
    at = now if len(starts) < limit else max(now, starts[0] + window)
    slot.starts = [*starts, at][-limit:]
    slot.updated_at = now
    tx.put_slot(slot)
    if at > now:
        run.state[_RATE_AT] = at.isoformat()
    return at


def _backoff(run: StepRun) -> float:
    waits = int(run.state.get(_WAITS, 0))
    run.state[_WAITS] = waits + 1
    delay: float = min(BACKOFF_CAP_SECONDS, BACKOFF_FIRST_SECONDS * 2.0 ** min(waits, 16))
    return delay * random.uniform(0.75, 1.0)


async def acquire(
    tx: ExecutionTx,
    run: StepRun,
    execution: WorkflowExecution,
    step: WorkflowStep,
    now: datetime,
    early_ok: datetime,
) -> Deferred | None:
    """Pass the step's limits for ``run`` (about to be claimed) in the claim transaction.

    ``None``: it may start; the slot it takes is written and listed in its state (the
    caller writes the run). Otherwise the run is written back ``scheduled`` for the time
    returned (a new task name) with the reason in ``state.waiting``. Raises StepFailed
    when a key fails.
    """
    tenant = execution.tenant
    slot: ConcurrencySlot | None = None
    label: str | None = None
    if step.concurrency is not None:
        label = _key(step.concurrency.key, execution, "concurrency")
        slot_key = _slot_key("c", label, execution, step.id)
        slot = await _free_slot(tx, run, tenant, slot_key, step.concurrency.limit, now)
        if slot is None:
            due = now + timedelta(seconds=_backoff(run))
            return _defer(tx, run, due, _with_key("waiting for step concurrency slot", label))
    if step.rate_limit is not None:
        spec = step.rate_limit
        rate_label = _key(spec.key, execution, "rateLimit")
        slot_key = _slot_key("r", rate_label, execution, step.id)
        at = await _rate_time(tx, run, tenant, slot_key, spec.limit, spec.period, now, early_ok)
        if at > now:
            text = f"waiting for step rate limit until {at.isoformat()}"
            return _defer(tx, run, at, _with_key(text, rate_label))
    run.state.pop(WAITING, None)
    run.state.pop(_WAITS, None)
    run.state.pop(_RATE_AT, None)
    if slot is not None:
        slot.holder = run.id
        slot.label = label or ""
        slot.updated_at = now
        tx.put_slot(slot)
        run.state[HELD_SLOTS] = [slot.id]
    return None


def _defer(tx: ExecutionTx, run: StepRun, due: datetime, reason: str) -> Deferred:
    if run.status == StepRunStatus.RUNNING:  # taken over after its lease expired
        run.status = StepRunStatus.SCHEDULED
        run.lease_owner = None
        run.lease_expires_at = None
    run.due_at = due
    run.wake_seq += 1  # a new task name for the new time
    run.state[WAITING] = reason
    tx.put_run(run)
    return Deferred(due, reason)


async def free_slots(tx: ExecutionTx, runs: list[StepRun], now: datetime) -> None:
    """Free the concurrency slots that ``runs`` (just recorded as no longer running) hold,
    in the transaction that records it; a slot another run took meanwhile (after this
    one's lease expired) is left to that run."""
    wanted: dict[str, str] = {}
    for run in runs:
        for ident in run.state.get(HELD_SLOTS, []) if run.status != StepRunStatus.RUNNING else []:
            wanted[ident] = run.id
    if not wanted:
        return
    stored = await tx.get_slots(list(wanted))
    for ident, holder in wanted.items():
        slot = stored.get(ident)
        if slot is not None and slot.holder == holder:
            slot.holder = None
            slot.updated_at = now
            tx.put_slot(slot)


def slot_note(run: StepRun) -> Any:
    """Why a scheduled run waits for a step limit (``None`` when it does not)."""
    return run.state.get(WAITING)
