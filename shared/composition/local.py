"""Local mode: the engine on SQLite (or memory), the in-process dispatcher and bus.

Nothing connects at import time: ``build_local`` opens the store, and the dispatcher
starts delivering only when ``LocalRuntime.start`` is awaited.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from shared.adapters.clock import SystemClock
from shared.adapters.local_bus import LocalEventBus
from shared.adapters.local_queue import LocalTaskQueue
from shared.adapters.memory_limits import MemoryAuditLog, MemoryRateLimiter
from shared.adapters.memory_store import MemoryStore
from shared.adapters.sqlite_audit import SqliteAuditLog
from shared.adapters.sqlite_checkpoints import SqliteCheckpointStore
from shared.adapters.sqlite_limits import SqliteRateLimiter
from shared.adapters.sqlite_store import SqliteStore
from shared.adapters.store_feed import StoreFeed
from shared.app import WorkflowApp
from shared.composition.registry import build_registry
from shared.composition.runtime import Runtime, wire_engine
from shared.engine.steps import StepRegistry
from shared.ports import AuditLog, Clock, EventFeed, RateLimiter, StepTask
from shared.ports.checkpoints import CheckpointStore
from shared.settings import Settings
from shared.steps.http import HttpGateway

__all__ = ["LocalRuntime", "build_local"]

log = logging.getLogger(__name__)


@dataclass
class LocalRuntime(Runtime):
    """The engine on the embedded store, with its dispatcher, bus and sweeper."""

    store: SqliteStore | MemoryStore
    queue: LocalTaskQueue
    bus: LocalEventBus

    sweeps_by_default: ClassVar[bool] = True

    async def start(
        self, *, sweep: bool | None = None, recover: bool = True, retention: bool = False
    ) -> None:
        """Start delivering tasks; with ``recover``, re-enqueue what a previous process
        left unfinished (no other worker exists in local mode); ``retention`` as in
        ``Runtime.start``."""
        await self.queue.start()
        if recover:
            count = await self.engine.recover()
            if count:
                log.info("recovered %d unfinished step run(s)", count)
        await super().start(sweep=sweep, retention=retention)

    async def _stop_backend(self) -> None:
        await self.queue.stop()

    def event_feed(self) -> EventFeed:
        """The store's own notifications: every commit happens in this process."""
        return StoreFeed(self.store)


def build_local(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    registry: StepRegistry | None = None,
    memory: bool = False,
    fair_dispatch: bool = True,
) -> LocalRuntime:
    """Wire the local backend: SQLite (or memory) store, local queue, local bus; the
    rate limits' buckets, the audit log and the agent steps' checkpoints in the same
    SQLite file (or in memory).

    The queue shares its workers fairly between tenants (the execution's tenant, read
    from the store); ``fair_dispatch=False`` is plain due-time order (bench/fairness.py).
    """
    settings = settings or Settings.from_env()
    local = settings.local
    clock = clock or SystemClock()
    store: SqliteStore | MemoryStore
    limiter: RateLimiter
    idle_buckets: SqliteRateLimiter | None = None
    audit_log: AuditLog
    checkpoints: CheckpointStore
    if memory:
        from shared.adapters.memory_checkpoints import MemoryCheckpointStore

        store = MemoryStore()
        limiter, audit_log = MemoryRateLimiter(), MemoryAuditLog()
        checkpoints = MemoryCheckpointStore()
    else:
        if local.db_path != ":memory:":
            Path(local.db_path).parent.mkdir(parents=True, exist_ok=True)
        store = SqliteStore(local.db_path, synchronous=local.sqlite_synchronous)
        idle_buckets = SqliteRateLimiter(local.db_path)
        limiter, audit_log = idle_buckets, SqliteAuditLog(local.db_path)
        checkpoints = SqliteCheckpointStore(local.db_path)
    bus = LocalEventBus()
    http = HttpGateway(allowed_hosts=frozenset(settings.engine.http_allowed_hosts))
    apps: list[WorkflowApp] = []  # the dispatcher delivers to the app built after it

    async def deliver(task: StepTask) -> None:
        # Through the app, as execute-step does: the tenant's step throughput applies.
        await apps[0].execute_step(task)

    async def tenant_of(execution_id: str) -> str | None:
        execution = await store.get_execution(execution_id)
        return execution.tenant if execution is not None else None

    queue = LocalTaskQueue(
        deliver,
        clock=clock,
        workers=local.workers,
        duplicate_rate=local.duplicate_rate,
        tenant_of=tenant_of,
        fair=fair_dispatch,
    )
    engine, app = wire_engine(
        settings,
        store=store,
        queue=queue,
        bus=bus,
        http=http,
        clock=clock,
        registry=registry or build_registry(),
        limiter=limiter,
        audit_log=audit_log,
        checkpoints=checkpoints,
    )
    apps.append(app)
    return LocalRuntime(
        settings,
        store,
        queue,
        bus,
        engine,
        app,
        http,
        limiter=limiter,
        audit_log=audit_log,
        checkpoints=checkpoints,
        idle_buckets=idle_buckets,
    )
