"""The cloud wiring of ``shared.bootstrap``: Firestore, Cloud Tasks, Pub/Sub, Scheduler.

Kept apart so that local mode never imports the Google client libraries. Nothing
connects here either: every adapter builds its client on first use.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shared.adapters.clock import SystemClock
from shared.app import WorkflowApp
from shared.engine.definitions import DefinitionCache
from shared.engine.runtime import Engine, EngineSettings
from shared.engine.steps import StepRegistry, StepServices
from shared.errors import InputInvalid, NotFound
from shared.models import ScheduleTrigger
from shared.ports import Clock
from shared.settings import Settings
from shared.steps.http import HttpGateway

if TYPE_CHECKING:
    from grpc import aio

    from shared.adapters.cloud_scheduler import CloudSchedulerBackend, KeepPaused
    from shared.adapters.cloud_tasks_queue import CloudTasksQueue
    from shared.adapters.pubsub_bus import LifecyclePublisher, PubSubEventBus

__all__ = ["GcpRuntime", "build_gcp", "build_scheduler_backend", "keep_paused_if_inactive"]

log = logging.getLogger(__name__)


@dataclass
class GcpRuntime:
    """The engine on Firestore, Cloud Tasks and Pub/Sub. There is no dispatcher here:
    Cloud Tasks delivers each task to execute-step, which calls ``app.execute_step``."""

    settings: Settings
    store: Any
    """A ``WorkflowStore`` and ``ExecutionStore`` (``FirestoreStore``)."""
    queue: CloudTasksQueue
    bus: PubSubEventBus
    engine: Engine
    app: WorkflowApp
    http: HttpGateway
    lifecycle: LifecyclePublisher | None = None
    _sweeper: asyncio.Task[None] | None = field(default=None, repr=False)

    async def start(self, *, sweep: bool = False) -> None:
        """Nothing to connect. ``sweep``: also run the sweeper in this process, which
        suits a long-lived process (the dev server), not a function instance."""
        if sweep and self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep_forever(), name="gcp-sweeper")

    async def sweep_once(self) -> int:
        """Re-enqueue step runs whose task is overdue (a lost enqueue, a dead worker)."""
        return await self.engine.sweep(self.settings.sweep_grace_seconds)

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.sweep_interval_seconds)
            try:
                await self.sweep_once()
            except Exception:
                log.exception("sweeper pass failed")

    async def stop(self) -> None:
        """Stop the sweeper, flush lifecycle events, close every client."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        if self.lifecycle is not None:
            self.store.remove_listener(self.lifecycle)
            await self.lifecycle.drain(timeout=5.0)
        await self.queue.close()
        await self.bus.close()
        await self.http.aclose()
        await self.store.close()

    async def __aenter__(self) -> GcpRuntime:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


def _project(settings: Settings) -> str:
    project = settings.project or os.environ.get("GOOGLE_CLOUD_PROJECT", "")
    if not project:
        raise InputInvalid(
            "backend=gcp needs WFE_PROJECT (or GOOGLE_CLOUD_PROJECT)", code="INVALID_SETTINGS"
        )
    return project


def build_gcp(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    registry: StepRegistry | None = None,
    store: Any = None,
    interceptors: Sequence[aio.ClientInterceptor] = (),
) -> GcpRuntime:
    """Wire the cloud backend from settings (see ``docs/gcp.md``).

    Args:
        store: use this store instead of a ``FirestoreStore`` (tests, benchmarks).
        interceptors: gRPC client interceptors for the Cloud Tasks and Pub/Sub clients
            (``RpcCounter.aio_interceptors()`` counts their calls).
    """
    from shared.adapters.cloud_tasks_queue import CloudTasksConfig, CloudTasksQueue
    from shared.adapters.pubsub_bus import LifecyclePublisher, PubSubEventBus
    from shared.bootstrap import build_registry

    settings = settings or Settings.from_env()
    project = _project(settings)
    if not settings.execute_step_url:
        raise InputInvalid("backend=gcp needs WFE_EXECUTE_STEP_URL", code="INVALID_SETTINGS")
    clock = clock or SystemClock()
    if store is None:
        from shared.adapters.firestore_store import FirestoreStore

        store = FirestoreStore(project=project, database=settings.firestore_database, clock=clock)
    queue = CloudTasksQueue(
        CloudTasksConfig.from_settings(settings, project), clock=clock, interceptors=interceptors
    )
    bus = PubSubEventBus(project, interceptors=interceptors)
    http = HttpGateway(allowed_hosts=frozenset(settings.http_allowed_hosts))
    services = StepServices(event_bus=bus, workflows=store, http=http, settings=settings)
    engine = Engine(
        executions=store,
        definitions=DefinitionCache(store),
        queue=queue,
        registry=registry or build_registry(),
        services=services,
        clock=clock,
        settings=EngineSettings(
            chain_commit_steps=settings.chain_commit_steps,
            max_chain_steps=settings.max_chain_steps,
            default_step_timeout=settings.default_step_timeout_seconds,
        ),
    )
    app = WorkflowApp(workflows=store, executions=store, engine=engine, tenant=settings.tenant)
    lifecycle = None
    if settings.lifecycle_topic:
        lifecycle = LifecyclePublisher(bus, settings.lifecycle_topic)
        store.add_listener(lifecycle)
    return GcpRuntime(settings, store, queue, bus, engine, app, http, lifecycle)


def keep_paused_if_inactive(app: WorkflowApp) -> KeepPaused:
    """Scheduler jobs of workflows that exist, inactive, with a schedule trigger are
    paused; the jobs of deleted workflows (or of other triggers) are deleted."""

    async def keep(workflow_id: str, tenant: str) -> bool:
        try:
            definition = await app.for_tenant(tenant).get_workflow(workflow_id)
        except NotFound:
            return False
        return not definition.is_active and isinstance(definition.trigger, ScheduleTrigger)

    return keep


def build_scheduler_backend(
    runtime: GcpRuntime, *, interceptors: Sequence[aio.ClientInterceptor] = ()
) -> CloudSchedulerBackend:
    """The Cloud Scheduler ``TriggerBackend`` for ``TriggerManager(runtime.app, ...)``."""
    from shared.adapters.cloud_scheduler import CloudSchedulerBackend, SchedulerConfig

    settings = runtime.settings
    if not settings.trigger_handler_url:
        raise InputInvalid(
            "Cloud Scheduler jobs need WFE_TRIGGER_HANDLER_URL", code="INVALID_SETTINGS"
        )
    config = SchedulerConfig(
        parent=f"projects/{_project(settings)}/locations/{settings.location}",
        target_url=settings.trigger_handler_url,
        service_account=settings.scheduler_service_account,
        audience=settings.scheduler_audience,
    )
    return CloudSchedulerBackend(
        config, keep_paused=keep_paused_if_inactive(runtime.app), interceptors=interceptors
    )
