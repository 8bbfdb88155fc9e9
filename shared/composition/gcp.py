"""Cloud mode: the engine on Firestore, Cloud Tasks and Pub/Sub; Cloud Scheduler jobs.

Local mode never imports this module's Google client libraries: they are imported
inside ``build_gcp`` and ``build_scheduler_backend``. Nothing connects here either:
every adapter builds its client on first use.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Protocol

from shared.adapters.clock import SystemClock
from shared.adapters.firestore_feed import FirestoreWatchFeed, Watchable
from shared.app import WorkflowApp
from shared.composition.registry import build_registry
from shared.composition.runtime import Runtime, wire_engine
from shared.engine.steps import StepRegistry
from shared.errors import InputInvalid, NotFound
from shared.models import ScheduleTrigger
from shared.ports import AuditLog, Clock, EventFeed, RateLimiter, Store
from shared.ports.checkpoints import CheckpointStore
from shared.ports.tenants import TenantStore, TenantUsage
from shared.settings import Settings
from shared.steps.http import HttpGateway

if TYPE_CHECKING:
    from grpc import aio

    from shared.adapters.cloud_scheduler import CloudSchedulerBackend, KeepPaused
    from shared.adapters.cloud_tasks_queue import CloudTasksConfig, CloudTasksQueue
    from shared.adapters.pubsub_bus import LifecyclePublisher, PubSubEventBus

__all__ = [
    "GcpRuntime",
    "GcpStore",
    "build_gcp",
    "build_scheduler_backend",
    "keep_paused_if_inactive",
]

log = logging.getLogger(__name__)


class GcpStore(Store, Watchable, Protocol):
    """A store other processes commit to, with listeners on their events (Firestore)."""


@dataclass
class GcpRuntime(Runtime):
    """The engine on Firestore, Cloud Tasks and Pub/Sub. There is no dispatcher here:
    Cloud Tasks delivers each task to execute-step, which calls ``app.execute_step``."""

    store: GcpStore
    queue: CloudTasksQueue
    bus: PubSubEventBus
    lifecycle: LifecyclePublisher | None = None
    """Publishes execution lifecycle events (``gcp.lifecycle_topic``), if set."""

    sweeps_by_default: ClassVar[bool] = False
    """A function instance does not sweep: a Cloud Scheduler job calls execute-step's
    ``/sweep``. A long-lived process (the dev server) asks for ``start(sweep=True)``."""

    async def _stop_backend(self) -> None:
        """Flush lifecycle events, close the Cloud Tasks client."""
        if self.lifecycle is not None:
            self.store.remove_listener(self.lifecycle)
            await self.lifecycle.drain(timeout=5.0)
        await self.queue.close()

    def event_feed(self) -> EventFeed:
        """Firestore listeners: other processes (execute-step instances) commit."""
        return FirestoreWatchFeed(self.store)


def _project(settings: Settings) -> str:
    project = settings.gcp.project or os.environ.get("GOOGLE_CLOUD_PROJECT", "")
    if not project:
        raise InputInvalid(
            "backend=gcp needs WFE_PROJECT (or GOOGLE_CLOUD_PROJECT)", code="INVALID_SETTINGS"
        )
    return project


def _tasks_config(settings: Settings, project: str) -> CloudTasksConfig:
    """The queue's config; on the emulator with the dev verifier, tasks carry a dev
    token (the emulator sends none), so execute-step checks them as in the cloud."""
    from shared.adapters.cloud_tasks_queue import CloudTasksConfig
    from shared.api.identity import identity_from_settings, verifier_mode

    config = CloudTasksConfig.from_settings(settings, project)
    if not settings.gcp.tasks_emulator_host or verifier_mode(settings) != "dev":
        return config
    identity = identity_from_settings(settings)
    return dataclasses.replace(config, emulator_token=lambda: identity.token_for("tasks"))


def build_gcp(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    registry: StepRegistry | None = None,
    store: GcpStore | None = None,
    interceptors: Sequence[aio.ClientInterceptor] = (),
) -> GcpRuntime:
    """Wire the cloud backend from settings (see ``docs/gcp.md``).

    Args:
        store: use this store instead of a ``FirestoreStore`` (tests, benchmarks).
        interceptors: gRPC client interceptors for the Cloud Tasks and Pub/Sub clients
            (the benchmarks count their calls).
    """
    from shared.adapters.cloud_tasks_queue import CloudTasksQueue
    from shared.adapters.pubsub_bus import LifecyclePublisher, PubSubEventBus

    settings = settings or Settings.from_env()
    gcp = settings.gcp
    project = _project(settings)
    if not gcp.execute_step_url:
        raise InputInvalid("backend=gcp needs WFE_EXECUTE_STEP_URL", code="INVALID_SETTINGS")
    clock = clock or SystemClock()
    if store is None:
        from shared.adapters.firestore_store import FirestoreStore

        store = FirestoreStore(project=project, database=gcp.firestore_database, clock=clock)
    limiter, audit_log = _limits_and_audit(settings, project, store)
    checkpoints = _checkpoints(settings, project, store)
    tenant_store, usage = _tenant_registry(settings, project, store)
    gcp_store = store  # the queue's tenant lookup, for its shards

    async def tenant_of(execution_id: str) -> str | None:
        execution = await gcp_store.get_execution(execution_id)
        return execution.tenant if execution is not None else None

    queue = CloudTasksQueue(
        _tasks_config(settings, project),
        clock=clock,
        interceptors=interceptors,
        tenant_of=tenant_of,
    )
    bus = PubSubEventBus(project, interceptors=interceptors)
    http = HttpGateway(allowed_hosts=frozenset(settings.engine.http_allowed_hosts))
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
        tenant_store=tenant_store,
        usage=usage,
        checkpoints=checkpoints,
    )
    lifecycle = None
    if gcp.lifecycle_topic:
        lifecycle = LifecyclePublisher(bus, gcp.lifecycle_topic)
        store.add_listener(lifecycle)
    return GcpRuntime(
        settings,
        store,
        queue,
        bus,
        engine,
        app,
        http,
        lifecycle,
        limiter=limiter,
        audit_log=audit_log,
        checkpoints=checkpoints,
    )


def _limits_and_audit(
    settings: Settings, project: str, store: GcpStore
) -> tuple[RateLimiter, AuditLog]:
    """Rate-limit buckets and the audit log where the store is: Firestore (sharded
    buckets, collection ``audit``), or memory beside a store that is not Firestore
    (tests and benchmarks)."""
    from shared.adapters.firestore_store import FirestoreStore

    if not isinstance(store, FirestoreStore):
        from shared.adapters.memory_limits import MemoryAuditLog, MemoryRateLimiter

        return MemoryRateLimiter(), MemoryAuditLog()
    from google.cloud.firestore import AsyncClient

    from shared.adapters.firestore_audit import FirestoreAuditLog
    from shared.adapters.firestore_limits import FirestoreRateLimiter

    database = settings.gcp.firestore_database

    def client() -> AsyncClient:
        return AsyncClient(project=project, database=database)

    limiter = FirestoreRateLimiter(client, max_shards=settings.limits.limit_shards)
    return limiter, FirestoreAuditLog(client)


def _checkpoints(settings: Settings, project: str, store: GcpStore) -> CheckpointStore:
    """Agent steps' LangGraph checkpoints where the store is: Firestore (collection
    ``checkpoints``), or memory beside a store that is not Firestore (tests)."""
    from shared.adapters.firestore_store import FirestoreStore

    if not isinstance(store, FirestoreStore):
        from shared.adapters.memory_checkpoints import MemoryCheckpointStore

        return MemoryCheckpointStore()
    from google.cloud.firestore import AsyncClient

    from shared.adapters.firestore_checkpoints import FirestoreCheckpointStore

    database = settings.gcp.firestore_database
    return FirestoreCheckpointStore(lambda: AsyncClient(project=project, database=database))


def _tenant_registry(
    settings: Settings, project: str, store: GcpStore
) -> tuple[TenantStore | None, TenantUsage | None]:
    """The tenant registry in Firestore (``tenants``, ``tenantKeys``) beside a Firestore
    store; None beside any other store (``wire_engine`` then keeps it in memory)."""
    from shared.adapters.firestore_store import FirestoreStore

    if not isinstance(store, FirestoreStore):
        return None, None
    from google.cloud.firestore import AsyncClient

    from shared.adapters.firestore_tenants import FirestoreTenantStore, FirestoreUsage

    database = settings.gcp.firestore_database

    def client() -> AsyncClient:
        return AsyncClient(project=project, database=database)

    return FirestoreTenantStore(client), FirestoreUsage(client)


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
    runtime: Runtime, *, interceptors: Sequence[aio.ClientInterceptor] = ()
) -> CloudSchedulerBackend:
    """The Cloud Scheduler ``TriggerBackend`` for ``TriggerManager(runtime.app, ...)``."""
    from shared.adapters.cloud_scheduler import CloudSchedulerBackend, SchedulerConfig

    settings = runtime.settings
    gcp = settings.gcp
    if not gcp.trigger_handler_url:
        raise InputInvalid(
            "Cloud Scheduler jobs need WFE_TRIGGER_HANDLER_URL", code="INVALID_SETTINGS"
        )
    config = SchedulerConfig(
        parent=f"projects/{_project(settings)}/locations/{gcp.location}",
        target_url=gcp.trigger_handler_url,
        service_account=gcp.scheduler_service_account,
        audience=gcp.scheduler_audience,
        binding_key=settings.trigger_binding_key,
    )
    return CloudSchedulerBackend(
        config, keep_paused=keep_paused_if_inactive(runtime.app), interceptors=interceptors
    )
