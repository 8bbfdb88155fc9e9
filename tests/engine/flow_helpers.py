"""Test helpers for flow control: an in-flight probe step, an active-execution counter
fed by the store's committed events, and a driver that delivers tasks concurrently."""

from __future__ import annotations

import asyncio

from harness import Harness

from shared.engine.steps import Complete, Outcome, StepContext, StepType
from shared.models import ExecutionEvent

_ENDS = {"execution.succeeded", "execution.failed", "execution.cancelled", "execution.timed_out"}


class InFlightStep(StepType):
    """A hop (not inline) step that counts how many of its runs execute at once."""

    type_name = "inflight"

    def __init__(self) -> None:
        self.in_flight = 0
        self.max_in_flight = 0
        self.calls = 0

    async def execute(self, ctx: StepContext) -> Outcome:
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


async def drive_concurrently(h: Harness, duplicates: int = 2, max_rounds: int = 10_000) -> None:
    """Deliver every due task ``duplicates`` times, all at once, until none is left."""
    for _ in range(max_rounds):
        due = h.queue.take_due(h.clock.now())
        if due:
            await asyncio.gather(
                *(h.engine.handle_task(task) for task in due for _ in range(duplicates))
            )
            continue
        upcoming = h.queue.next_due()
        if upcoming is None:
            return
        h.clock.set(upcoming)
    raise AssertionError("the deliveries did not settle")
