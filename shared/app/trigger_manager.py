"""Trigger Manager: keeps schedules and subscriptions in line with the active workflows.

The store is the source of truth. ``TriggerManager`` derives the desired trigger
specs from it (one per active workflow with a schedule or event trigger) and hands
them to a ``TriggerBackend``, which creates, updates and deletes whatever it manages
(local cron jobs and event-bus subscriptions here; Cloud Scheduler jobs in the
cloud) until they match. Reconciling is idempotent: a second pass changes nothing.

Call ``await manager.on_workflow_changed(workflow_id, tenant)`` after a workflow is
created, updated, activated, deactivated or deleted; ``reconcile_all()`` at startup.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from shared.app.service import WorkflowApp
from shared.app.triggers import active_workflows
from shared.errors import NotFound
from shared.models import EventTrigger, ScheduleTrigger, WorkflowDefinition
from shared.ports import (
    EventSpec,
    ReconcileReport,
    ScheduleSpec,
    TriggerBackend,
    TriggerSpec,
)

__all__ = ["TriggerManager", "specs_for"]

log = logging.getLogger(__name__)


def specs_for(definition: WorkflowDefinition, tenant: str) -> list[TriggerSpec]:
    """What an active workflow needs registered (nothing for manual and webhook)."""
    if not definition.is_active:
        return []
    trigger = definition.trigger
    if isinstance(trigger, ScheduleTrigger):
        return [ScheduleSpec(definition.id, tenant, trigger.cron, trigger.timezone)]
    if isinstance(trigger, EventTrigger):
        return [EventSpec(definition.id, tenant, trigger.topic)]
    return []


class TriggerManager:
    """Derives trigger specs from the store and reconciles a backend with them."""

    def __init__(
        self, app: WorkflowApp, backend: TriggerBackend, tenants: Iterable[str] = ()
    ) -> None:
        self.app = app
        self.backend = backend
        self._tenants = dict.fromkeys([app.tenant, *tenants])
        self._lock = asyncio.Lock()

    @property
    def tenants(self) -> list[str]:
        """Tenants ``reconcile_all`` covers: the app's, the given ones, and any seen since."""
        return list(self._tenants)

    async def desired(self) -> list[TriggerSpec]:
        """Specs of every active workflow of the known tenants."""
        specs: list[TriggerSpec] = []
        for tenant in self._tenants:
            async for definition in active_workflows(self.app.for_tenant(tenant)):
                specs.extend(specs_for(definition, tenant))
        return specs

    async def reconcile_all(self) -> ReconcileReport:
        """Full pass: at startup, and as a periodic safety net."""
        async with self._lock:
            report = await self.backend.reconcile(await self.desired())
        if report.changed:
            log.info("triggers reconciled: %s", report)
        return report

    async def on_workflow_changed(
        self, workflow_id: str, tenant: str | None = None
    ) -> ReconcileReport:
        """Reconcile one workflow after a create, update, (de)activation or delete."""
        tenant = tenant or self.app.tenant
        self._tenants.setdefault(tenant)
        try:
            definition = await self.app.for_tenant(tenant).get_workflow(workflow_id)
            specs = specs_for(definition, tenant)
        except NotFound:  # deleted: whatever it had registered goes away
            specs = []
        async with self._lock:
            return await self.backend.reconcile(specs, workflow_ids={workflow_id})

    async def start(self) -> None:
        """Reconcile everything, then start the backend (the local cron loop)."""
        await self.reconcile_all()
        await self.backend.start()

    async def stop(self) -> None:
        await self.backend.stop()
