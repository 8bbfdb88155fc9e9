"""The trigger backend port: whatever keeps schedules and subscriptions registered.

``TriggerManager`` (``shared.app``) derives the desired specs from the store and
hands them to a ``TriggerBackend``: local cron jobs and event-bus subscriptions in
local mode, Cloud Scheduler jobs in the cloud (``shared.adapters.cloud_scheduler``).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import quote

__all__ = [
    "DEFAULT_TENANT",
    "JOB_PREFIX",
    "PUBSUB_PATH",
    "EventSpec",
    "ReconcileReport",
    "ScheduleSpec",
    "TriggerBackend",
    "TriggerSpec",
]

DEFAULT_TENANT = "default"
JOB_PREFIX = "wfe-"
"""Prefix of the scheduler jobs a deployment owns."""
PUBSUB_PATH = "/pubsub"
"""Path on the trigger-handler that receives Pub/Sub pushes."""


def _tenant_query(tenant: str) -> str:
    return "" if tenant == DEFAULT_TENANT else f"?tenant={quote(tenant, safe='')}"


@dataclass(frozen=True)
class ScheduleSpec:
    """A cron schedule of one workflow: a local cron job or a Cloud Scheduler job."""

    workflow_id: str
    tenant: str
    cron: str
    timezone: str = "UTC"

    @property
    def job_name(self) -> str:
        """Job id derived from the workflow id (UUIDs are unique across tenants).

        Cloud Scheduler job ids allow ``[A-Za-z0-9_-]{1,500}``; a UUID fits.
        """
        return f"{JOB_PREFIX}{self.workflow_id}"

    @property
    def target_path(self) -> str:
        """Path on the trigger-handler the job POSTs to; a ``?tenant=`` here counts only
        with the binding a backend appends (``shared.ports.tenant_binding.bind_path``)."""
        return f"/schedule/{quote(self.workflow_id, safe='')}{_tenant_query(self.tenant)}"

    @property
    def key(self) -> str:
        return f"schedule:{self.job_name}"


@dataclass(frozen=True)
class EventSpec:
    """A topic one workflow listens on: a local bus subscription or a push/Eventarc one."""

    workflow_id: str
    tenant: str
    topic: str

    @property
    def target_path(self) -> str:
        return f"{PUBSUB_PATH}{_tenant_query(self.tenant)}"

    @property
    def key(self) -> str:
        return f"event:{self.tenant}:{self.workflow_id}"


TriggerSpec = ScheduleSpec | EventSpec


@dataclass(frozen=True)
class ReconcileReport:
    """Spec keys a reconcile pass added, updated and removed."""

    added: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    unchanged: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed)


class TriggerBackend(Protocol):
    """Makes what it manages match ``desired``.

    With ``workflow_ids``, only what belongs to those workflows is touched: a change of
    one workflow reconciles that workflow alone, so two processes reconciling different
    workflows at once cannot undo each other's work.
    """

    async def reconcile(
        self, desired: Sequence[TriggerSpec], *, workflow_ids: Collection[str] | None = None
    ) -> ReconcileReport: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...
