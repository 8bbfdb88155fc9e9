"""The one place that picks adapters from settings and wires the app.

Nothing connects at import time: ``build_local`` opens the SQLite store and starts
the in-process dispatcher only when ``LocalRuntime.start`` is awaited. ``build_gcp``
(in ``shared/_bootstrap_gcp.py``, which imports the Google client libraries only when
called) wires Firestore, Cloud Tasks and Pub/Sub; ``build_runtime`` picks by
``settings.backend``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared._bootstrap_gcp import (
    GcpRuntime,
    build_gcp,
    build_scheduler_backend,
    keep_paused_if_inactive,
)
from shared.adapters.clock import SystemClock
from shared.adapters.local_bus import LocalEventBus
from shared.adapters.local_queue import LocalTaskQueue
from shared.adapters.memory_store import MemoryStore
from shared.adapters.sqlite_store import SqliteStore
from shared.app import WorkflowApp
from shared.engine.definitions import DefinitionCache
from shared.engine.runtime import Engine, EngineSettings
from shared.engine.steps import StepRegistry, StepServices
from shared.errors import WorkflowError
from shared.ports import Clock, StepTask
from shared.settings import Settings
from shared.steps import default_registry
from shared.steps.http import HttpGateway

log = logging.getLogger(__name__)


@dataclass
class LocalRuntime:
    """The engine on the embedded store, with its dispatcher, bus and sweeper."""

    settings: Settings
    store: SqliteStore | MemoryStore
    queue: LocalTaskQueue
    bus: LocalEventBus
    engine: Engine
    app: WorkflowApp
    http: HttpGateway
    _sweeper: asyncio.Task[None] | None = field(default=None, repr=False)

    async def start(self, *, recover: bool = True) -> None:
        """Start delivering tasks; re-enqueue what a previous process left unfinished."""
        await self.queue.start()
        if recover:
            count = await self.engine.recover()
            if count:
                log.info("recovered %d unfinished step run(s)", count)
        self._sweeper = asyncio.create_task(self._sweep_forever())

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.sweep_interval_seconds)
            try:
                await self.engine.sweep(self.settings.sweep_grace_seconds)
            except Exception:
                log.exception("sweeper pass failed")

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        await self.queue.stop()
        await self.bus.close()
        await self.http.aclose()
        await self.store.close()

    async def __aenter__(self) -> LocalRuntime:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


def build_registry() -> StepRegistry:
    """Built-in step types, plus ``decision`` and ``llm`` registered by the AI package."""
    from shared.ai import register_ai_steps

    return register_ai_steps(default_registry())


def build_local(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    registry: StepRegistry | None = None,
    memory: bool = False,
) -> LocalRuntime:
    """Wire the local backend: SQLite (or memory) store, local queue, local bus."""
    settings = settings or Settings.from_env()
    clock = clock or SystemClock()
    store: SqliteStore | MemoryStore
    if memory:
        store = MemoryStore()
    else:
        if settings.db_path != ":memory:":
            Path(settings.db_path).parent.mkdir(parents=True, exist_ok=True)
        store = SqliteStore(settings.db_path, synchronous=settings.sqlite_synchronous)
    bus = LocalEventBus()
    http = HttpGateway(allowed_hosts=frozenset(settings.http_allowed_hosts))
    registry = registry or build_registry()
    services = StepServices(event_bus=bus, workflows=store, http=http, settings=settings)
    holder: dict[str, Any] = {}

    async def deliver(task: StepTask) -> None:
        await holder["engine"].handle_task(task)

    queue = LocalTaskQueue(
        deliver, clock=clock, workers=settings.workers, duplicate_rate=settings.duplicate_rate
    )
    engine = Engine(
        executions=store,
        definitions=DefinitionCache(store),
        queue=queue,
        registry=registry,
        services=services,
        clock=clock,
        settings=EngineSettings(
            chain_commit_steps=settings.chain_commit_steps,
            max_chain_steps=settings.max_chain_steps,
            default_step_timeout=settings.default_step_timeout_seconds,
        ),
    )
    holder["engine"] = engine
    app = WorkflowApp(workflows=store, executions=store, engine=engine, tenant=settings.tenant)
    return LocalRuntime(settings, store, queue, bus, engine, app, http)


Runtime = LocalRuntime | GcpRuntime
"""What ``build_runtime`` returns: both have ``app``, ``store``, ``bus``, ``engine``,
``queue``, ``start()`` and ``stop()``."""


def build_runtime(settings: Settings | None = None) -> Runtime:
    """The runtime ``settings.backend`` names: ``build_local`` or ``build_gcp``."""
    settings = settings or Settings.from_env()
    if settings.backend == "gcp":
        return build_gcp(settings)
    return build_local(settings)


__all__ = [
    "GcpRuntime",
    "LocalRuntime",
    "Runtime",
    "WorkflowError",
    "build_gcp",
    "build_local",
    "build_registry",
    "build_runtime",
    "build_scheduler_backend",
    "keep_paused_if_inactive",
]
