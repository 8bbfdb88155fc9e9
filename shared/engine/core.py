"""What every part of the ``Engine`` shares: its ports and the transaction helper."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from shared.engine import step_limits
from shared.engine.definitions import DefinitionCache, NotCached
from shared.engine.steps import StepRegistry, step_config
from shared.models import StepRun, WorkflowDefinition, WorkflowStep
from shared.observability import start_span
from shared.ports import Clock, ExecutionStore, ExecutionTx, TaskQueue

T = TypeVar("T")

INLINE_TIME_LIMIT = 10.0
"""Seconds a run of a step without I/O may take (a chain of them, run in memory)."""


class EngineCore:
    """Ports of the engine (set by ``Engine.__init__``) and its store transactions."""

    executions: ExecutionStore
    definitions: DefinitionCache
    queue: TaskQueue
    registry: StepRegistry
    clock: Clock
    settings: Any

    def time_limit(self, definition: WorkflowDefinition, step: WorkflowStep) -> float:
        """Seconds a run of ``step`` may take: its ``timeoutSeconds``, else the bound of its
        type (an http call's own timeout), else the engine's default."""
        if step.timeout_seconds:
            return float(step.timeout_seconds)
        step_type = self.registry.get(step.type)
        bound = step_type.time_limit(step_config(step_type, definition, step))
        if bound is not None:
            return float(bound)
        if step_type.inline_for(step):
            return INLINE_TIME_LIMIT
        return float(self.settings.default_step_timeout)

    def cheap(self, run: StepRun, definition: WorkflowDefinition) -> bool:
        """Whether ``run`` may be delivered without a claim of its own
        (``Engine._read_cheap``): a step that does no I/O and has no step-level limit,
        outside any branch or item scope."""
        if run.scope or run.step_type.startswith("$"):
            return False
        return self.runs_inline(definition.step(run.step_id))

    def runs_inline(self, step: WorkflowStep) -> bool:
        """Whether ``step`` may run in memory without a task of its own: no I/O and no
        step-level limit (a limited step is a hop: its claim checks the limit)."""
        return self.registry.get(step.type).inline_for(step) and not step_limits.limited(step)

    def lease_until(
        self, now: datetime, definition: WorkflowDefinition, step: WorkflowStep
    ) -> datetime:
        """When a run claimed ``now`` is free for another delivery: its time limit, plus
        the grace its outcome's commit may take."""
        return now + timedelta(
            seconds=self.time_limit(definition, step) + self.settings.lease_seconds
        )

    async def transaction(self, fn: Callable[[ExecutionTx], Awaitable[T]]) -> T:
        """A store transaction whose body may need definitions: they are loaded outside
        the transaction and the body is run again."""
        with start_span("store.transaction"):
            for _ in range(3):
                try:
                    return await self.executions.run_transaction(fn)
                except NotCached as missing:
                    await self.definitions.get(missing.execution)
            return await self.executions.run_transaction(fn)

    async def run_tx(self, fn: Callable[[ExecutionTx], Awaitable[T]]) -> T:
        """One store transaction (a ``store.transaction`` span), no definition loading."""
        with start_span("store.transaction"):
            return await self.executions.run_transaction(fn)
