"""The runtime both backends share: the wired ports, the engine, the app, one lifecycle.

``LocalRuntime`` (``shared.composition.local``) and ``GcpRuntime``
(``shared.composition.gcp``) differ in their adapters, in what they open and close,
and in their event feed; callers hold a ``Runtime`` and never ask which one it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import ClassVar

from shared.app import WorkflowApp
from shared.app.audit import Auditor
from shared.app.quotas import Quotas
from shared.app.retention import RetentionPolicy, RetentionSweeper, SweepReport
from shared.app.secrets import default_secret_resolver
from shared.app.tenants import TenantAdmin, TenantDirectory, TenantQuotaGuard
from shared.engine.definitions import DefinitionCache
from shared.engine.runtime import Engine, EngineSettings
from shared.engine.steps import StepRegistry, StepServices
from shared.ports import AuditLog, Clock, EventBus, EventFeed, RateLimiter, Store, TaskQueue
from shared.ports.checkpoints import CheckpointStore
from shared.ports.retention import IdleBuckets
from shared.ports.tenants import TenantStore, TenantUsage
from shared.settings import Settings
from shared.steps.http import HttpGateway

__all__ = ["Runtime", "wire_engine"]

log = logging.getLogger(__name__)


@dataclass
class Runtime(ABC):
    """The engine wired to one backend's adapters, started and stopped as one."""

    settings: Settings
    store: Store
    """The workflow and execution store (one database)."""
    queue: TaskQueue
    bus: EventBus
    engine: Engine
    app: WorkflowApp
    """The use cases: the only entry to the core."""
    http: HttpGateway
    """The egress policy and client of http steps."""
    limiter: RateLimiter | None = field(default=None, kw_only=True)
    """The rate limits' buckets (beside the store: same database)."""
    audit_log: AuditLog | None = field(default=None, kw_only=True)
    """The audit log (beside the store: same database)."""
    checkpoints: CheckpointStore | None = field(default=None, kw_only=True)
    """The LangGraph checkpoints of agent steps (beside the store: same database)."""
    idle_buckets: IdleBuckets | None = field(default=None, kw_only=True)
    """Rate-limit buckets the retention sweep purges when idle (SQLite; Firestore's
    expire by a TTL policy, memory's with the process)."""
    _sweeper: asyncio.Task[None] | None = field(default=None, init=False, repr=False)
    _retainer: asyncio.Task[None] | None = field(default=None, init=False, repr=False)

    sweeps_by_default: ClassVar[bool] = True
    """Whether ``start()`` runs the sweeper in this process unless told otherwise."""

    @property
    def tenant_guard(self) -> TenantQuotaGuard | None:
        """The tenant registry's quotas and directory (None: no registry is wired)."""
        quotas = self.app.quotas
        return quotas.tenants if quotas is not None else None

    @property
    def tenants(self) -> TenantAdmin | None:
        """The tenant admin use cases over the registry (None: no registry is wired)."""
        guard = self.tenant_guard
        return TenantAdmin(guard.directory, self.engine.clock) if guard is not None else None

    def retention(self) -> RetentionSweeper:
        """The retention sweep over this runtime's store and its companions, with the
        policy of ``settings.engine`` (``WFE_EXECUTION_RETENTION_DAYS``, ...)."""
        tuning = self.settings.engine
        guard = self.tenant_guard
        return RetentionSweeper(
            self.store,
            self.engine.clock,
            RetentionPolicy(
                execution_days=tuning.execution_retention_days,
                audit_days=tuning.audit_retention_days,
            ),
            checkpoints=self.checkpoints,
            audit_log=self.audit_log,
            buckets=self.idle_buckets,
            tenants=guard.directory.store if guard is not None else None,
            auditor=self.app.auditor,
        )

    @abstractmethod
    def event_feed(self) -> EventFeed:
        """What feeds this process's stream broker with committed events."""

    async def start(self, *, sweep: bool | None = None, retention: bool = False) -> None:
        """Start the backend's workers; with ``sweep`` (default: ``sweeps_by_default``),
        also re-enqueue overdue step runs every ``engine.sweep_interval_seconds``; with
        ``retention`` (a long-lived server: ``wfe dev``), run the retention sweep now and
        every ``engine.retention_interval_seconds``."""
        if sweep is None:
            sweep = self.sweeps_by_default
        if sweep and self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep_forever(), name="wfe-sweeper")
        if retention and self._retainer is None:
            self._retainer = asyncio.create_task(self._retain_forever(), name="wfe-retention")

    async def stop(self) -> None:
        """Stop the sweeper and the backend's workers, then close every client."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        if self._retainer is not None:
            self._retainer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retainer
            self._retainer = None
        await self._stop_backend()
        await self.bus.close()
        await self.http.aclose()
        await self.store.close()
        if self.limiter is not None:
            await self.limiter.close()
        if self.audit_log is not None:
            await self.audit_log.close()
        if self.checkpoints is not None:
            await self.checkpoints.close()
        guard = self.tenant_guard
        if guard is not None:
            await guard.directory.store.close()
            close = getattr(guard.usage, "close", None)
            if close is not None:
                await close()

    @abstractmethod
    async def _stop_backend(self) -> None:
        """Stop what only this backend has (its queue's workers or client), before the
        shared clients close."""

    async def sweep_once(self) -> int:
        """Re-enqueue step runs whose task is overdue (a lost enqueue, a dead worker)."""
        return await self.engine.sweep(self.settings.engine.sweep_grace_seconds)

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.engine.sweep_interval_seconds)
            try:
                await self.sweep_once()
            except Exception:
                log.exception("sweeper pass failed")

    async def _retain_forever(self) -> None:
        while True:
            try:
                report: SweepReport = await self.retention().sweep()
                if report.more:  # a backlog: go on soon, in bounded passes
                    await asyncio.sleep(1.0)
                    continue
            except Exception:
                log.exception("retention sweep failed")
            await asyncio.sleep(self.settings.engine.retention_interval_seconds)

    async def __aenter__(self) -> Runtime:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


def wire_engine(
    settings: Settings,
    *,
    store: Store,
    queue: TaskQueue,
    bus: EventBus,
    http: HttpGateway,
    clock: Clock,
    registry: StepRegistry,
    limiter: RateLimiter | None = None,
    audit_log: AuditLog | None = None,
    tenant_store: TenantStore | None = None,
    usage: TenantUsage | None = None,
    checkpoints: CheckpointStore | None = None,
) -> tuple[Engine, WorkflowApp]:
    """The engine over the given adapters, and the app over the engine (with the rate
    limits of ``settings.limits`` over ``limiter``, and the audit log, when given).

    The tenant registry (``tenant_store``, ``usage``) defaults to the store's side: a
    SQLite store gets the tables beside it in ``settings.local.db_path``, any other
    store the registry in memory with counts through its listings. ``checkpoints`` is
    where agent steps keep their LangGraph checkpoints (``StepServices.checkpoints``)."""
    services = StepServices(
        event_bus=bus,
        workflows=store,
        executions=store,
        http=http,
        settings=settings,
        secrets=default_secret_resolver(),
        checkpoints=checkpoints,
    )
    tuning = settings.engine
    engine = Engine(
        executions=store,
        definitions=DefinitionCache(store),
        queue=queue,
        registry=registry,
        services=services,
        clock=clock,
        settings=EngineSettings(
            chain_commit_steps=tuning.chain_commit_steps,
            max_chain_steps=tuning.max_chain_steps,
            default_step_timeout=tuning.default_step_timeout_seconds,
        ),
    )
    quotas = None
    if limiter is not None:
        if tenant_store is None or usage is None:
            tenant_store, usage = _local_registry(settings, store)
        directory = TenantDirectory(tenant_store, ttl=settings.limits.tenant_cache_seconds)
        guard = TenantQuotaGuard(
            directory, usage, limiter, tenant_of_execution=_tenant_lookup(store)
        )
        quotas = Quotas(limiter, settings.limits, guard)
    app = WorkflowApp(
        workflows=store,
        executions=store,
        engine=engine,
        tenant=settings.tenant,
        quotas=quotas,
        auditor=Auditor(audit_log, clock) if audit_log is not None else None,
    )
    return engine, app


def _tenant_lookup(store: Store) -> Callable[[str], Awaitable[str | None]]:
    async def tenant_of(execution_id: str) -> str | None:
        execution = await store.get_execution(execution_id)
        return execution.tenant if execution is not None else None

    return tenant_of


def _local_registry(settings: Settings, store: Store) -> tuple[TenantStore, TenantUsage]:
    """The registry beside a local store: SQLite tables in its file, or memory."""
    from shared.adapters.memory_tenants import MemoryTenantStore, StoreUsage
    from shared.adapters.sqlite_store import SqliteStore
    from shared.adapters.sqlite_tenants import SqliteTenantStore, SqliteUsage

    path = settings.local.db_path
    if isinstance(store, SqliteStore) and path != ":memory:":
        return SqliteTenantStore(path), SqliteUsage(path)
    return MemoryTenantStore(), StoreUsage(store, store)
