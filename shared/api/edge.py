"""What every HTTP edge app is built with: the runtime, the authenticator, the broker.

The composition root (``shared.composition.edge.build_edge``) builds one ``Edge`` from
the settings before any app exists, and each app factory (``create_management_app``,
``create_stream_app``, ``create_tasks_app``, ``create_trigger_app``) takes it as an
argument. There is no module-global runtime and no default authenticator: an app
cannot be built without the authenticator its settings ask for, so no request is
ever served by a stand-in (a lazily swapped one once let the first request after a
cold start through unauthenticated).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from starlette.requests import HTTPConnection

from shared.api.auth import Authenticator
from shared.api.broker import EventBroker
from shared.api.identity import InternalIdentity
from shared.api.stream_tokens import StreamTokens
from shared.app import WorkflowApp
from shared.app.retention import RetentionSweeper
from shared.app.secrets import SecretResolver
from shared.app.tenants import TenantAdmin
from shared.app.trigger_manager import TriggerManager
from shared.engine.runtime import Engine
from shared.observability import flush_tracing
from shared.ports import EventFeed
from shared.settings import Settings

__all__ = ["Edge", "EdgeRuntime", "edge_of"]

log = logging.getLogger(__name__)


class EdgeRuntime(Protocol):
    """What the edges use of a runtime (``LocalRuntime`` and ``GcpRuntime`` both)."""

    settings: Settings
    app: WorkflowApp
    engine: Engine

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def sweep_once(self) -> int: ...

    def event_feed(self) -> EventFeed: ...

    @property
    def tenants(self) -> TenantAdmin | None:
        """The tenant admin use cases (None: no tenant registry is wired)."""
        ...

    def retention(self) -> RetentionSweeper:
        """The retention sweep over the runtime's store (``shared.app.retention``)."""
        ...


@dataclass
class Edge:
    """The services one process's HTTP apps share, started once by the ASGI lifespan."""

    runtime: EdgeRuntime
    authenticator: Authenticator
    secrets: SecretResolver
    identity: InternalIdentity
    """The token check of the internal endpoints (execute-step, sweep, triggers)."""
    stream_tokens: StreamTokens = field(default_factory=lambda: StreamTokens(os.urandom(32)))
    """Mints and checks the tokens browsers open streams with (one key per deployment)."""
    triggers: TriggerManager | None = None
    """Reconciles schedules and subscriptions after workflow changes (None: nobody does)."""
    start_triggers: bool = True
    """Reconcile everything and start the trigger backend with the edge (a long-lived
    process with local cron). False: only follow workflow changes (a function instance
    reconciling Cloud Scheduler jobs, which would otherwise redo them all per cold start)."""
    owns_runtime: bool = True
    """Start and stop the runtime with the edge (False: the caller already started it)."""
    sweep_at_start: bool = False
    """Re-enqueue overdue step runs once when the edge starts (execute-step in the cloud:
    runs a killed instance held are retried at once, not at the next scheduled sweep)."""
    broker: EventBroker = field(init=False)
    _started: bool = field(default=False, init=False, repr=False)
    _startup_sweep: asyncio.Task[None] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.broker = EventBroker(self.runtime.app)

    @property
    def app(self) -> WorkflowApp:
        return self.runtime.app

    @property
    def settings(self) -> Settings:
        return self.runtime.settings

    async def start(self) -> None:
        """Start the runtime, feed the broker, start the trigger manager; idempotent."""
        if self._started:
            return
        if self.owns_runtime:
            await self.runtime.start()
        self.broker.attach_feed(self.runtime.event_feed())
        if self.sweep_at_start:
            self._startup_sweep = asyncio.create_task(self._sweep(), name="wfe-startup-sweep")
        if self.triggers is not None:
            if self.start_triggers:
                await self.triggers.start()
            self.runtime.app.change_hooks.append(self.triggers.on_workflow_changed)
        self._started = True

    async def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        if self._startup_sweep is not None:
            self._startup_sweep.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._startup_sweep
            self._startup_sweep = None
        if self.triggers is not None:
            with contextlib.suppress(ValueError):
                self.runtime.app.change_hooks.remove(self.triggers.on_workflow_changed)
            if self.start_triggers:
                await self.triggers.stop()
        self.broker.detach()
        if self.owns_runtime:
            await self.runtime.stop()
        flush_tracing()  # spans still buffered by a batching exporter

    async def _sweep(self) -> None:
        try:
            count = await self.runtime.sweep_once()
        except Exception:
            log.exception("the sweep at start failed; the scheduled sweep will retry")
            return
        if count:
            log.info("re-enqueued %d overdue step run(s) at start", count)

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: Any = None) -> AsyncIterator[None]:
        """An ASGI lifespan: the edge runs while the app serves."""
        await self.start()
        try:
            yield
        finally:
            await self.stop()


def edge_of(connection: HTTPConnection) -> Edge:
    """The edge of the app serving this request (set by the app factory)."""
    edge = connection.app.state.edge
    if not isinstance(edge, Edge):  # pragma: no cover - every factory sets it
        raise TypeError("this app was built without an Edge")
    return edge
