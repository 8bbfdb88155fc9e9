"""Property-based test of the execution state machine (hypothesis, stateful).

Random interleavings of starts, deliveries (duplicated, concurrent), lost tasks,
sweeps, clock moves, signals, cancels, pauses and resumes. Invariants: no step visit
is recorded twice, no step executes twice, event sequences have no gaps, a finished
execution has no live runs, no run stays leased once its delivery has returned, and in
the end (time passing, as it would for the sweeper) every execution finishes.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from harness import Harness
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from shared.adapters.memory_store import MemoryStore
from shared.errors import InvalidState
from shared.models import ExecutionStatus, StepRunStatus

WORKFLOW = {
    "name": "sm",
    "steps": [
        {"id": "a", "type": "count", "nextSteps": ["fan"]},
        {
            "id": "fan",
            "type": "parallel",
            "nextSteps": ["ask"],
            "config": {"branches": [{"name": "l", "start": "l1"}, {"name": "r", "start": "r1"}]},
        },
        {"id": "l1", "type": "count", "nextSteps": ["l2"]},
        {"id": "l2", "type": "transform", "config": {"set": {"l": True}}},
        {"id": "r1", "type": "wait", "config": {"seconds": 5}, "nextSteps": ["r2"]},
        {"id": "r2", "type": "count"},
        {
            "id": "ask",
            "type": "wait_for_event",
            "nextSteps": ["each"],
            "config": {"event": "go", "timeoutSeconds": 30},
            "onError": {"strategy": "continue"},
        },
        {
            "id": "each",
            "type": "map",
            "nextSteps": ["end"],
            "config": {"items": "[1, 2, 3]", "start": "item", "concurrency": 2},
        },
        {"id": "item", "type": "count"},
        {"id": "end", "type": "count"},
    ],
}
LIVE = {StepRunStatus.SCHEDULED, StepRunStatus.RUNNING, StepRunStatus.WAITING}


class ExecutionMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.h = Harness(MemoryStore())
        self.workflow_id = self.run(self.h.create(WORKFLOW))
        self.executions: list[str] = []
        self.cancelled: set[str] = set()

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        try:
            self.finish_everything()
        finally:
            self.run(self.h.bus.close())
            self.loop.close()

    def finish_everything(self) -> None:
        for execution_id in self.executions:
            execution = self.run(self.h.app.get_execution(execution_id))
            if execution.status == ExecutionStatus.PAUSED:
                self.run(self.h.app.resume(execution_id))
        for _ in range(50):
            self.run(self.h.drain())
            self.run(self.h.engine.sweep(grace_seconds=0))
            if not self.h.queue.tasks and not self.let_lost_timers_fall_due():
                break
        for execution_id in self.executions:
            execution = self.run(self.h.app.get_execution(execution_id))
            assert execution.status.terminal, (execution_id, execution.status)
            if execution_id not in self.cancelled:
                assert execution.status == ExecutionStatus.SUCCEEDED, execution.error
        self.check_records()

    def let_lost_timers_fall_due(self) -> bool:
        """Move the clock to the earliest timer of a live run, as real time would.

        A timer whose task was lost (``lose_a_task``) is found by the sweeper once it
        is overdue; with no task left, ``drain`` has no reason to move the clock there.
        Leases are not waited out: every delivery here has finished, so a RUNNING run
        is a bug (``check_records`` says so), not a dead worker.
        """
        due = [
            r.due_at
            for execution_id in self.executions
            for r in self.run(self.h.store.list_runs(execution_id))
            if r.status in (StepRunStatus.SCHEDULED, StepRunStatus.WAITING)
            and r.due_at is not None
            and r.due_at > self.h.clock.now()
        ]
        if not due:
            return False
        self.h.clock.set(min(due))
        return True

    @precondition(lambda self: len(self.executions) < 4)
    @rule()
    def start(self) -> None:
        self.executions.append(self.run(self.h.start(self.workflow_id)).id)

    @precondition(lambda self: bool(self.h.queue.tasks))
    @rule(pick=st.integers(0, 1000), times=st.integers(1, 3), concurrent=st.booleans())
    def deliver(self, pick: int, times: int, concurrent: bool) -> None:
        due = [t for t in self.h.queue.tasks if t.due_at <= self.h.clock.now()]
        if not due:
            return
        task = due[pick % len(due)]
        self.h.queue.tasks.remove(task)
        self.run(self.h.deliver(task, times, concurrent))

    @precondition(lambda self: bool(self.h.queue.tasks))
    @rule(pick=st.integers(0, 1000))
    def lose_a_task(self, pick: int) -> None:
        self.h.queue.tasks.pop(pick % len(self.h.queue.tasks))

    @rule()
    def sweep(self) -> None:
        self.run(self.h.engine.sweep(grace_seconds=0))

    @rule(seconds=st.sampled_from([0.5, 3, 10, 40]))
    def advance(self, seconds: float) -> None:
        self.h.clock.advance(seconds)

    @precondition(lambda self: bool(self.executions))
    @rule(pick=st.integers(0, 3), action=st.sampled_from(["go", "cancel", "pause", "resume"]))
    def operate(self, pick: int, action: str) -> None:
        execution_id = self.executions[pick % len(self.executions)]
        try:
            if action == "go":
                self.run(self.h.app.send_event(execution_id, "go", {"n": pick}))
            elif action == "cancel":
                self.run(self.h.app.cancel(execution_id))
                self.cancelled.add(execution_id)
            elif action == "pause":
                self.run(self.h.app.pause(execution_id))
            else:
                self.run(self.h.app.resume(execution_id))
        except InvalidState:
            pass

    @invariant()
    def check_records(self) -> None:
        assert all(n == 1 for n in self.h.counter.calls.values()), self.h.counter.calls
        for execution_id in self.executions:
            runs = self.run(self.h.store.list_runs(execution_id))
            keys = Counter((r.scope, r.step_id, r.iteration, r.attempt) for r in runs)
            assert max(keys.values(), default=1) == 1
            events = self.run(self.h.store.list_events(execution_id))
            assert [e.seq for e in events] == list(range(1, len(events) + 1))
            running = [r.step_id for r in runs if r.status == StepRunStatus.RUNNING]
            assert not running, f"no delivery is in flight, yet {running} are leased"
            execution = self.run(self.h.app.get_execution(execution_id))
            if execution.status.terminal:
                assert not [r for r in runs if r.status in LIVE and r.step_type != "$deadline"]


ExecutionMachine.TestCase.settings = settings(
    max_examples=40,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestExecutionStateMachine = ExecutionMachine.TestCase
