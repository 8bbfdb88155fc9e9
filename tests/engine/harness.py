"""A hand-driven engine: tasks are recorded, delivered by the test, time moves by hand.

The queue here is a real ``TaskQueue`` implementation that only records tasks; the
test decides when, how often and how concurrently each one is delivered. This is how
duplicate deliveries, races and durable timers are tested deterministically.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from shared.adapters.clock import ManualClock
from shared.adapters.local_bus import LocalEventBus
from shared.adapters.memory_store import MemoryStore
from shared.adapters.sqlite_store import SqliteStore
from shared.app import WorkflowApp
from shared.app.service import StartRequest
from shared.engine.definitions import DefinitionCache
from shared.engine.runtime import Engine, EngineSettings, HopResult
from shared.engine.steps import Complete, Outcome, StepContext, StepRegistry, StepServices, StepType
from shared.errors import Conflict, StepFailed
from shared.models import StepRun, WorkflowExecution
from shared.ports import StepTask
from shared.steps import register_builtins
from shared.steps.http import HttpGateway

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


class RecordingQueue:
    """A TaskQueue that keeps tasks for the test to deliver."""

    def __init__(self) -> None:
        self.tasks: list[StepTask] = []
        self.enqueued = 0

    async def enqueue(self, task: StepTask) -> None:
        self.enqueued += 1
        self.tasks.append(task)

    def take_due(self, now: datetime) -> list[StepTask]:
        due = [t for t in self.tasks if t.due_at <= now]
        self.tasks = [t for t in self.tasks if t.due_at > now]
        return sorted(due, key=lambda t: t.due_at)

    def next_due(self) -> datetime | None:
        return min((t.due_at for t in self.tasks), default=None)


class CountingStep(StepType):
    """A non-inline step that counts its executions per run id and can fail on demand."""

    type_name = "count"

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.fail_codes: dict[str, tuple[str, bool]] = {}
        self.delay = 0.0

    async def execute(self, ctx: StepContext) -> Outcome:
        self.calls[ctx.run.id] += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        failure = self.fail_codes.get(ctx.step.id)
        if failure is not None:
            raise StepFailed(f"{ctx.step.id} told to fail", code=failure[0], retryable=failure[1])
        return Complete(output={"step": ctx.step.id, "prev": ctx.run.context.get("prev")})


class Harness:
    """Engine + app over a chosen store, with a recording queue and a manual clock."""

    def __init__(
        self,
        store: MemoryStore | SqliteStore,
        *,
        chain_commit_steps: int = 50,
        http: HttpGateway | None = None,
    ) -> None:
        self.store = store
        self.clock = ManualClock(START)
        self.queue = RecordingQueue()
        self.bus = LocalEventBus()
        self.counter = CountingStep()
        registry = register_builtins(StepRegistry())
        registry.register(self.counter)
        self.registry = registry
        services = StepServices(event_bus=self.bus, workflows=store, executions=store, http=http)
        self.engine = Engine(
            executions=store,
            definitions=DefinitionCache(store),
            queue=self.queue,
            registry=registry,
            services=services,
            clock=self.clock,
            settings=EngineSettings(chain_commit_steps=chain_commit_steps),
        )
        self.app = WorkflowApp(workflows=store, executions=store, engine=self.engine)
        self.results: list[HopResult] = []

    async def create(self, raw: dict[str, Any]) -> str:
        """A new workflow; a name already taken here gets a suffix (names are unique in a
        tenant), so running one definition twice still makes two workflows."""
        for attempt in range(1, 100):
            named = raw if attempt == 1 else {**raw, "name": f"{raw['name']}-{attempt}"}
            try:
                return (await self.app.create_workflow(named)).id
            except Conflict as exc:
                if exc.code != "WORKFLOW_NAME_TAKEN":
                    raise
        raise AssertionError(f"too many workflows named {raw['name']!r}")

    async def start(
        self, workflow_id: str, data: dict[str, Any] | None = None, **kwargs: Any
    ) -> WorkflowExecution:
        return await self.app.start_execution(StartRequest(workflow_id, data or {}, **kwargs))

    async def deliver(self, task: StepTask, times: int = 1, concurrent: bool = False) -> None:
        if concurrent:
            results = await asyncio.gather(*(self.engine.handle_task(task) for _ in range(times)))
            self.results.extend(results)
        else:
            for _ in range(times):
                self.results.append(await self.engine.handle_task(task))

    async def drain(
        self,
        *,
        times: int = 1,
        concurrent: bool = False,
        advance: bool = True,
        max_rounds: int = 10_000,
    ) -> None:
        """Deliver due tasks until none is left; move the clock to timers when allowed."""
        for _ in range(max_rounds):
            due = self.queue.take_due(self.clock.now())
            if due:
                for task in due:
                    await self.deliver(task, times, concurrent)
                continue
            upcoming = self.queue.next_due()
            if upcoming is None or not advance:
                return
            self.clock.set(upcoming)
        raise AssertionError("drain did not settle")

    async def run(
        self, raw: dict[str, Any], data: dict[str, Any] | None = None, **drain: Any
    ) -> WorkflowExecution:
        workflow_id = await self.create(raw)
        execution = await self.start(workflow_id, data)
        await self.drain(**drain)
        return await self.app.get_execution(execution.id)

    async def runs(self, execution_id: str) -> list[StepRun]:
        return await self.store.list_runs(execution_id)

    async def statuses(self, execution_id: str) -> list[tuple[str, str]]:
        return [(r.step_id, r.status.value) for r in await self.runs(execution_id)]

    async def event_types(self, execution_id: str) -> list[str]:
        return [e.type for e in await self.store.list_events(execution_id)]


def linear(*steps: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A definition whose steps follow each other in the order given."""
    chained = []
    for index, step in enumerate(steps):
        step = dict(step)
        if index + 1 < len(steps) and "nextSteps" not in step:
            step["nextSteps"] = [steps[index + 1]["id"]]
        chained.append(step)
    return {"name": extra.pop("name", "test"), "steps": chained, **extra}
