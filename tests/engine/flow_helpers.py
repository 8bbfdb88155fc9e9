"""Test helpers for flow control: an in-flight probe step, an active-execution counter
fed by the store's committed events, and a driver that delivers tasks concurrently
(redelivering, as Cloud Tasks does, a delivery that failed with a retryable error)."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import timedelta

from harness import Harness

from shared.engine.runtime import HopResult
from shared.engine.steps import Complete, Outcome, StepContext, StepType
from shared.errors import WorkflowError
from shared.models import ExecutionEvent

_ENDS = {"execution.succeeded", "execution.failed", "execution.cancelled", "execution.timed_out"}


class InFlightStep(StepType):
    """A hop (not inline) step that counts how many of its runs execute at once."""

    type_name = "inflight"

    def __init__(self) -> None:
        self.in_flight = 0
        self.max_in_flight = 0
        self.calls = 0
        self.runs: Counter[str] = Counter()
        """Calls per run id."""

    async def execute(self, ctx: StepContext) -> Outcome:
        self.runs[ctx.run.id] += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            for _ in range(5):  # let every other delivery of this round run meanwhile
                await asyncio.sleep(0)
        finally:
            self.in_flight -= 1
        self.calls += 1
        return Complete(output=None)


class ActiveCounter:
    """A store listener: executions started (or dequeued) and not yet ended, at most."""

    def __init__(self) -> None:
        self.active: set[str] = set()
        self.max_active = 0

    def __call__(self, events: list[ExecutionEvent]) -> None:
        for event in events:
            if event.type in ("execution.started", "execution.dequeued"):
                self.active.add(event.execution_id)
            elif event.type in _ENDS:
                self.active.discard(event.execution_id)
            self.max_active = max(self.max_active, len(self.active))


@dataclass
class Deliveries:
    """What ``drive_concurrently`` did."""

    delivered: int = 0
    redelivered: int = 0
    """Deliveries that failed with a retryable error and were put back for later."""
    failed: Counter[str] = field(default_factory=Counter)
    """Failed (and redelivered) deliveries per run id."""
    errors: list[str] = field(default_factory=list)
    done: Counter[str] = field(default_factory=Counter)
    """Deliveries per run id that recorded the run's step (``done`` naming steps)."""


async def drive_concurrently(
    h: Harness,
    duplicates: int = 2,
    max_rounds: int = 10_000,
    redeliver_after: float = 1.0,
) -> Deliveries:
    """Deliver every due task ``duplicates`` times, all at once, until none is left.

    As Cloud Tasks does, a delivery that fails with a retryable error (``Conflict``,
    ``TransientError``: their ``retryable``) is delivered again later: the same task,
    due ``redeliver_after`` seconds on (harness clock). Any other error fails the test.
    A step body may then run again only when the delivery that ran it failed (its
    completing transaction did not commit): check ``failed`` against the step's calls.
    """
    seen = Deliveries()
    for _ in range(max_rounds):
        now = h.clock.now()
        due = h.queue.take_due(now)
        if due:
            batch = [task for task in due for _ in range(duplicates)]
            results = await asyncio.gather(
                *(h.engine.handle_task(task) for task in batch), return_exceptions=True
            )
            seen.delivered += len(batch)
            for task, result in zip(batch, results, strict=True):
                if isinstance(result, HopResult):
                    if result.status == "done" and result.steps:
                        seen.done[task.run_id] += 1
                elif isinstance(result, WorkflowError) and result.retryable:
                    seen.redelivered += 1
                    seen.failed[task.run_id] += 1
                    seen.errors.append(f"{type(result).__name__}: {result.message}")
                    later = now + timedelta(seconds=redeliver_after)
                    h.queue.tasks.append(replace(task, due_at=later))
                else:
                    raise result
            continue
        upcoming = h.queue.next_due()
        if upcoming is None:
            return seen
        h.clock.set(upcoming)
    raise AssertionError("the deliveries did not settle")
