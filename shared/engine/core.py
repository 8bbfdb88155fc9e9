"""What every part of the ``Engine`` shares: its ports and the transaction helper."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from shared.engine.definitions import DefinitionCache, NotCached
from shared.engine.steps import StepRegistry
from shared.observability import start_span
from shared.ports import Clock, ExecutionStore, ExecutionTx, TaskQueue

T = TypeVar("T")


class EngineCore:
    """Ports of the engine (set by ``Engine.__init__``) and its store transactions."""

    executions: ExecutionStore
    definitions: DefinitionCache
    queue: TaskQueue
    registry: StepRegistry
    clock: Clock
    settings: Any

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
