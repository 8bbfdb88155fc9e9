"""The tenant registry port: tenants, their API keys, and the usage their quotas cap.

``TenantStore`` keeps tenants and API keys (memory, SQLite table ``tenants`` and
``tenant_keys`` in the store's file, Firestore collections ``tenants`` and
``tenantKeys``); ``TenantUsage`` counts what a tenant holds in the workflow and
execution store (its workflows, its active executions), for the quota checks.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Protocol

from shared.models.tenant import ApiKey, Tenant

__all__ = ["ACTIVE_STATUSES", "QUEUED_STATUSES", "TenantStore", "TenantUsage"]

ACTIVE_STATUSES = ("pending", "running", "waiting", "paused")
"""Statuses of an execution that holds a ``maxRunningExecutions`` slot."""
QUEUED_STATUSES = ("queued",)
"""Statuses of an execution counted by ``maxQueuedExecutions`` (flow control's queue)."""


class TenantStore(Protocol):
    """Tenants and their API keys, shared by every instance of the deployment."""

    async def create_tenant(self, tenant: Tenant) -> None:
        """Store a new tenant; Conflict (code TENANT_EXISTS) if the id is taken."""
        ...

    async def get_tenant(self, tenant_id: str) -> Tenant | None:
        """The tenant ``tenant_id``, or None."""
        ...

    async def list_tenants(self, limit: int = 100, after: str | None = None) -> list[Tenant]:
        """Up to ``limit`` tenants by id, those after ``after`` only."""
        ...

    async def update_tenant(self, tenant: Tenant) -> None:
        """Replace the stored tenant of ``tenant.id``; NotFound if there is none."""
        ...

    async def add_key(self, key: ApiKey) -> None:
        """Store a new key; Conflict if its id is taken."""
        ...

    async def get_key(self, key_id: str) -> ApiKey | None:
        """The key ``key_id`` (revoked ones too), or None."""
        ...

    async def list_keys(self, tenant_id: str) -> list[ApiKey]:
        """Every key of ``tenant_id``, revoked ones included, by id."""
        ...

    async def revoke_key(self, tenant_id: str, key_id: str, at: datetime) -> ApiKey:
        """Mark the key revoked at ``at`` (kept if already revoked); NotFound unless the
        key exists in ``tenant_id``."""
        ...

    async def close(self) -> None:
        """Release connections (idempotent)."""
        ...


class TenantUsage(Protocol):
    """Counts over the workflow and execution store, for quota checks."""

    async def count_workflows(self, tenant_id: str) -> int:
        """Workflows of the tenant that are not deleted."""
        ...

    async def count_executions(self, tenant_id: str, statuses: Collection[str]) -> int:
        """Executions of the tenant whose status is one of ``statuses``."""
        ...

    async def stored_bytes(self, tenant_id: str) -> int | None:
        """Bytes the tenant's executions hold in the store (documents, step runs, events;
        the store's counter), or None where the backend does not count them."""
        ...
