"""Flow control: per-workflow concurrency keys, their slots and the queue of executions.

At start the definition's ``concurrency`` keys and ``priority`` are evaluated once
(CEL over ``input`` and ``trigger``). An execution then takes one free slot document
of every key in the same transaction that creates it, or is stored ``queued`` with its
first runs parked (no task). An execution that ends frees its slots in the transaction
that ends it, and that transaction promotes the head of each freed key's queue
(priority desc, then FIFO). ``docs/flow-control.md`` has the whole story.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from shared.errors import InputInvalid, Issue, StepFailed
from shared.expressions import compile_expression, expression
from shared.models import (
    ConcurrencyScope,
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
from shared.ports import ExecutionTx

__all__ = [
    "FLOW_ROOTS",
    "MAX_KEY_LENGTH",
    "PRIORITY_RANGE",
    "TIMER_STEP",
    "Promotion",
    "check_flow",
    "key_value",
    "park_runs",
    "plan",
    "promote",
    "release",
    "slot_id",
    "take_or_queue",
    "unpark_runs",
]

FLOW_ROOTS = frozenset({"input", "trigger"})
"""What key and priority expressions may read."""
MAX_KEY_LENGTH = 256
"""Characters of an evaluated key value."""
PRIORITY_RANGE = (-1000, 1000)
"""An evaluated priority is clamped into this range."""
TIMER_STEP = "$start"
"""Step type of the timer run that starts an execution held back by a start control."""
PROMOTE_BATCH = 20
"""Queued executions a release looks at per key (enough to fill the freed slots)."""


def check_flow(definition: WorkflowDefinition) -> list[Issue]:
    """Save-time checks of ``concurrency`` keys and ``priority`` (CEL, allowed roots)."""
    issues: list[Issue] = []
    seen: set[tuple[str, str]] = set()
    for index, spec in enumerate(definition.concurrency):
        if spec.key is not None:
            _, found = compile_expression(spec.key, f"/concurrency/{index}/key", FLOW_ROOTS)
            issues.extend(found)
        marker = (str(spec.scope), spec.key or "")
        if marker in seen:
            issues.append(
                Issue(
                    "DUPLICATE_CONCURRENCY_KEY",
                    "two concurrency entries have the same scope and key",
                    f"/concurrency/{index}",
                )
            )
        seen.add(marker)
    if definition.priority is not None:
        _, found = compile_expression(definition.priority, "/priority", FLOW_ROOTS)
        issues.extend(found)
    issues.extend(_check_start_controls(definition))
    return issues


def _check_start_controls(definition: WorkflowDefinition) -> list[Issue]:
    """Keys of ``singleton``, ``rateLimit``, ``throttle``, ``debounce`` (CEL over input
    and trigger), and the combinations refused (a debounced start has no arrival time
    to rate-limit until its period has passed)."""
    issues: list[Issue] = []
    controls = {
        "singleton": definition.singleton,
        "rateLimit": definition.rate_limit,
        "throttle": definition.throttle,
        "debounce": definition.debounce,
    }
    for name, spec in controls.items():
        if spec is not None and spec.key is not None:
            _, found = compile_expression(spec.key, f"/{name}/key", FLOW_ROOTS)
            issues.extend(found)
    if definition.debounce is not None:
        for name in ("rateLimit", "throttle"):
            if controls[name] is not None:
                issues.append(
                    Issue(
                        "START_CONTROLS_CONFLICT",
                        f"debounce cannot be combined with {name}",
                        f"/{name}",
                    )
                )
    return issues


def slot_id(tenant: str, slot_key: str, index: int) -> str:
    """The document id of slot ``index`` of a key (hashed: key values are user data)."""
    digest = hashlib.sha256(f"{tenant}\x00{slot_key}".encode()).hexdigest()[:40]
    return f"{digest}-{index}"


def plan(definition: WorkflowDefinition, execution: WorkflowExecution) -> QueueState | None:
    """Evaluate the keys and priority of a new execution; ``None`` without flow control.

    Raises InputInvalid (``CONCURRENCY_KEY_INVALID`` / ``PRIORITY_INVALID``) when an
    expression fails or gives a value of the wrong type: nothing is stored then.
    """
    if not definition.concurrency and definition.priority is None:
        return None
    env = {"input": execution.input, "trigger": execution.trigger}
    keys: list[FlowKey] = []
    for index, spec in enumerate(definition.concurrency):
        label = "" if spec.key is None else _key_value(spec.key, env, index)
        if spec.scope == ConcurrencyScope.TENANT:
            slot_key = f"t:{label}"
        else:
            slot_key = f"w:{definition.id}:{label}"
        keys.append(FlowKey(slot_key=slot_key, label=label, limit=spec.limit, scope=spec.scope))
    priority = 0 if definition.priority is None else _priority(definition.priority, env)
    return QueueState(keys=keys, priority=priority, timeout_seconds=definition.timeout_seconds)


def _key_value(source: str, env: dict[str, Any], index: int) -> str:
    return key_value(source, env, f"/concurrency/{index}/key", "concurrency")


def key_value(source: str, env: dict[str, Any], path: str, what: str) -> str:
    """Evaluate a key expression (string or number, at most ``MAX_KEY_LENGTH``).

    Raises InputInvalid (``CONCURRENCY_KEY_INVALID`` for ``concurrency``, else
    ``FLOW_KEY_INVALID``) at ``path``: nothing is stored then.
    """
    code = "CONCURRENCY_KEY_INVALID" if what == "concurrency" else "FLOW_KEY_INVALID"
    try:
        value = expression(source, FLOW_ROOTS).evaluate(env)
    except StepFailed as exc:
        raise InputInvalid(f"{what} key failed: {exc.message}", code=code, path=path) from exc
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise InputInvalid(
            f"{what} key must be a string or a number, not {type(value).__name__}",
            code=code,
            path=path,
        )
    text = str(value)
    if len(text) > MAX_KEY_LENGTH:
        raise InputInvalid(
            f"{what} key longer than {MAX_KEY_LENGTH} characters", code=code, path=path
        )
    return text


def _priority(source: str, env: dict[str, Any]) -> int:
    try:
        value = expression(source, FLOW_ROOTS).evaluate(env)
    except StepFailed as exc:
        raise InputInvalid(
            f"priority failed: {exc.message}", code="PRIORITY_INVALID", path="/priority"
        ) from exc
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputInvalid(
            f"priority must be an integer, not {type(value).__name__}",
            code="PRIORITY_INVALID",
            path="/priority",
        )
    low, high = PRIORITY_RANGE
    return max(low, min(high, int(value)))


# -- slots -------------------------------------------------------------------------


@dataclass
class _Claim:
    """Free slots found for each key of one execution (slot documents to write)."""

    slots: list[ConcurrencySlot]
    full: FlowKey | None
    """The first key with no free slot (the execution queues on it)."""


async def _find_slots(
    tx: ExecutionTx,
    execution: WorkflowExecution,
    *,
    freed_by: str | None = None,
    taken: frozenset[str] = frozenset(),
) -> _Claim:
    """Read every slot document of every key; pick a free one per key.

    A slot counts as free when it has no holder, or its holder is this execution (a
    retried start), or ``freed_by`` (the execution whose release this transaction has
    buffered), or its holder is missing or has ended (a slot a crash or a bug left
    behind comes back). ``taken``: slots this transaction already gave to others.
    Every slot document is read, so a concurrent release (a write to one of them)
    conflicts with this transaction on Firestore instead of stranding it in the queue.
    """
    state = execution.queue
    assert state is not None
    chosen: list[ConcurrencySlot] = []
    for key in state.keys:
        ids = [slot_id(execution.tenant, key.slot_key, i) for i in range(key.limit)]
        stored = await tx.get_slots(ids)
        free: list[ConcurrencySlot] = []
        stale: list[ConcurrencySlot] = []
        for index, ident in enumerate(ids):
            if ident in taken:
                continue
            slot = stored.get(ident) or ConcurrencySlot(
                id=ident, tenant=execution.tenant, slot_key=key.slot_key, index=index
            )
            if slot.holder is None or slot.holder in (execution.id, freed_by):
                free.append(slot)
            else:
                stale.append(slot)
        if not free:
            free = await _stale_slots(tx, stale)
        if not free:
            return _Claim(chosen, key)
        # A random free slot: concurrent starts on Firestore then rarely aim at one doc.
        slot = random.choice(free)
        slot.label = key.label
        chosen.append(slot)
    return _Claim(chosen, None)


async def _stale_slots(tx: ExecutionTx, held: list[ConcurrencySlot]) -> list[ConcurrencySlot]:
    """Slots whose holder is missing or has ended (self-healing)."""
    free = []
    for slot in held:
        holder = await tx.get_execution(slot.holder or "")
        if holder is None or holder.status.terminal or slot.id not in _held_ids(holder):
            free.append(slot)
    return free


def _held_ids(execution: WorkflowExecution) -> list[str]:
    return execution.queue.held if execution.queue is not None else []


async def take_or_queue(tx: ExecutionTx, execution: WorkflowExecution, now: datetime) -> bool:
    """Give ``execution`` a slot of each key (status unchanged) or queue it.

    Returns whether it was queued; the caller then parks its runs (``park_runs``).
    """
    state = execution.queue
    if state is None or not state.keys:
        return False
    claim = await _find_slots(tx, execution)
    if claim.full is None:
        for slot in claim.slots:
            slot.holder = execution.id
            slot.updated_at = now
            tx.put_slot(slot)
        state.held = [slot.id for slot in claim.slots]
        state.key = state.wait_key = state.reason = state.queued_at = None
        return False
    key = claim.full
    execution.status = ExecutionStatus.QUEUED
    state.held = []
    state.key = key.label
    state.wait_key = key.slot_key
    state.reason = (
        f"waiting for concurrency slot key={key.label}"
        if key.label
        else ("waiting for concurrency slot")
    )
    state.queued_at = state.queued_at or now
    execution.deadline = None  # the time limit starts when it leaves the queue
    return True


def park_runs(runs: list[StepRun]) -> None:
    """Park the runs a queued execution would have scheduled: no task until it starts
    (its ``$start`` timer, if a start control holds it back, keeps its due time)."""
    for run in runs:
        if run.step_type == TIMER_STEP:
            continue
        run.state["queuedDueIn"] = (
            None
            if run.due_at is None or run.step_type == "$deadline"
            else max(0.0, (run.due_at - run.created_at).total_seconds())
        )
        if run.status == StepRunStatus.SCHEDULED:
            run.status = StepRunStatus.WAITING
            run.state["queuedStatus"] = "scheduled"
        run.due_at = None


def unpark_runs(runs: list[StepRun], execution: WorkflowExecution, now: datetime) -> list[StepRun]:
    """Schedule the parked runs of an execution leaving the queue; its deadline starts."""
    state = execution.queue
    timeout = state.timeout_seconds if state is not None else None
    if timeout:
        execution.deadline = now + timedelta(seconds=timeout)
    woken: list[StepRun] = []
    for run in runs:
        if "queuedDueIn" not in run.state:
            continue
        delay = run.state.pop("queuedDueIn")
        if run.state.pop("queuedStatus", None) == "scheduled":
            run.status = StepRunStatus.SCHEDULED
        if run.step_type == "$deadline":
            run.due_at = execution.deadline
        else:
            run.due_at = now + timedelta(seconds=float(delay or 0.0))
        woken.append(run)
    return woken


def release(tx: ExecutionTx, execution: WorkflowExecution, now: datetime) -> list[FlowKey]:
    """Free the slots an ended execution holds; returns the keys to promote from."""
    state = execution.queue
    if state is None:
        return []
    state.key = state.wait_key = state.reason = None  # an ended execution waits for nothing
    state.not_before = None
    if state.singleton is not None:
        single = state.singleton
        ident = slot_id(execution.tenant, single.slot_key, 0)
        tx.put_slot(
            ConcurrencySlot(
                id=ident,
                tenant=execution.tenant,
                slot_key=single.slot_key,
                label=single.label,
                index=0,
                holder=None,
                updated_at=now,
            )
        )
    if not state.held:
        return []
    by_id = {
        slot_id(execution.tenant, key.slot_key, i): (key, i)
        for key in state.keys
        for i in range(key.limit)
    }
    freed: list[FlowKey] = []
    for ident in state.held:
        found = by_id.get(ident)
        if found is None:
            continue
        key, index = found
        tx.put_slot(
            ConcurrencySlot(
                id=ident,
                tenant=execution.tenant,
                slot_key=key.slot_key,
                label=key.label,
                index=index,
                holder=None,
                updated_at=now,
            )
        )
        freed.append(key)
    state.held = []
    return freed


@dataclass
class Promotion:
    """An execution taken out of the queue by a transaction, and its runs to enqueue."""

    execution: WorkflowExecution
    runs: list[StepRun]


async def promote(
    tx: ExecutionTx,
    tenant: str,
    keys: list[FlowKey],
    now: datetime,
    *,
    freed_by: str | None = None,
    budget: int = 1,
) -> list[Promotion]:
    """Start the head(s) of the queues of ``keys`` that now get a slot.

    ``budget`` bounds how many executions one transaction starts (a release frees one
    slot per key; the sweeper passes more). ``freed_by`` is the execution that ended:
    its slots count as free although its release is only buffered in ``tx``.
    """
    promoted: list[Promotion] = []
    for key in keys:
        if len(promoted) >= budget:
            break
        queued = await tx.queued_executions(tenant, key.slot_key, PROMOTE_BATCH)
        for candidate in queued:
            if len(promoted) >= budget:
                break
            if candidate.status != ExecutionStatus.QUEUED or candidate.queue is None:
                continue
            taken = frozenset(ident for p in promoted for ident in _held_ids(p.execution))
            claim = await _find_slots(tx, candidate, freed_by=freed_by, taken=taken)
            if claim.full is not None:
                if claim.full.slot_key == key.slot_key:
                    break  # this key is full again: the rest of its queue waits
                continue  # blocked on another of its keys: it stays queued there
            promoted.append(await _start(tx, candidate, claim, now))
    return promoted


async def _start(
    tx: ExecutionTx, execution: WorkflowExecution, claim: _Claim, now: datetime
) -> Promotion:
    """Move a queued execution to running: hold its slots, schedule its parked runs."""
    state = execution.queue
    assert state is not None
    for slot in claim.slots:
        slot.holder = execution.id
        slot.updated_at = now
        tx.put_slot(slot)
    waited = state.key
    state.held = [slot.id for slot in claim.slots]
    queued_at = state.queued_at
    state.key = state.wait_key = state.reason = state.queued_at = None
    execution.status = ExecutionStatus.RUNNING
    runs = unpark_runs(await tx.list_runs(execution.id), execution, now)
    for run in runs:
        tx.put_run(run)
    execution.event_seq += 1
    waited_ms = (now - queued_at).total_seconds() * 1000 if queued_at else 0.0
    tx.add_event(
        ExecutionEvent(
            execution_id=execution.id,
            workflow_id=execution.workflow_id,
            seq=execution.event_seq,
            type="execution.dequeued",
            status=execution.status.value,
            data={"key": waited, "queuedMs": waited_ms},
            at=now,
        )
    )
    execution.updated_at = now
    tx.put_execution(execution)
    return Promotion(execution, [r for r in runs if r.due_at is not None])
