"""The tenant registry in process memory (the memory store's companion and the tests'
fake), and ``StoreUsage``: quota counts through any store's public listings."""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from datetime import datetime

from shared.adapters.memory_store import MemoryStore
from shared.adapters.sqlite_store import SqliteStore
from shared.errors import Conflict, NotFound
from shared.models import ExecutionStatus
from shared.models.tenant import ApiKey, Tenant
from shared.ports import ExecutionQuery, ExecutionStore, WorkflowQuery, WorkflowStore

__all__ = ["MemoryTenantStore", "StoreUsage", "tenant_exists"]

_PAGE = 500


def tenant_exists(tenant_id: str) -> Conflict:
    """The refusal of a second tenant with the same id."""
    return Conflict(
        f"tenant {tenant_id!r} exists", code="TENANT_EXISTS", retryable=False, path="/id"
    )


class MemoryTenantStore:
    """Tenants and keys in dicts, copied in and out (callers never share a record)."""

    def __init__(self) -> None:
        self._tenants: dict[str, Tenant] = {}
        self._keys: dict[str, ApiKey] = {}
        self._lock = asyncio.Lock()

    async def create_tenant(self, tenant: Tenant) -> None:
        async with self._lock:
            if tenant.id in self._tenants:
                raise tenant_exists(tenant.id)
            self._tenants[tenant.id] = tenant.model_copy(deep=True)

    async def get_tenant(self, tenant_id: str) -> Tenant | None:
        found = self._tenants.get(tenant_id)
        return found.model_copy(deep=True) if found is not None else None

    async def list_tenants(self, limit: int = 100, after: str | None = None) -> list[Tenant]:
        ids = sorted(i for i in self._tenants if after is None or i > after)[: max(0, limit)]
        return [self._tenants[i].model_copy(deep=True) for i in ids]

    async def update_tenant(self, tenant: Tenant) -> None:
        async with self._lock:
            if tenant.id not in self._tenants:
                raise NotFound(f"tenant {tenant.id} not found")
            self._tenants[tenant.id] = tenant.model_copy(deep=True)

    async def add_key(self, key: ApiKey) -> None:
        async with self._lock:
            if key.id in self._keys:
                raise Conflict(f"API key id {key.id} is taken", retryable=True)
            self._keys[key.id] = key.model_copy()

    async def get_key(self, key_id: str) -> ApiKey | None:
        found = self._keys.get(key_id)
        return found.model_copy() if found is not None else None

    async def list_keys(self, tenant_id: str) -> list[ApiKey]:
        keys = (k for k in self._keys.values() if k.tenant == tenant_id)
        return [k.model_copy() for k in sorted(keys, key=lambda k: k.id)]

    async def revoke_key(self, tenant_id: str, key_id: str, at: datetime) -> ApiKey:
        async with self._lock:
            key = self._keys.get(key_id)
            if key is None or key.tenant != tenant_id:
                raise NotFound(f"API key {key_id} not found in tenant {tenant_id}")
            if key.revoked_at is None:
                key = key.model_copy(update={"revoked_at": at})
                self._keys[key_id] = key
            return key.model_copy()

    async def close(self) -> None:
        return None


class StoreUsage:
    """Quota counts by paging through a store's listings (the memory store: small)."""

    def __init__(self, workflows: WorkflowStore, executions: ExecutionStore) -> None:
        self._workflows = workflows
        self._executions = executions

    async def count_workflows(self, tenant_id: str) -> int:
        count, cursor = 0, None
        while True:
            page = await self._workflows.list_workflows(
                WorkflowQuery(tenant=tenant_id, limit=_PAGE, cursor=cursor)
            )
            count += len(page.items)
            cursor = page.next_cursor
            if cursor is None:
                return count

    async def count_executions(self, tenant_id: str, statuses: Collection[str]) -> int:
        known = {s.value: s for s in ExecutionStatus}
        count = 0
        for status in (known[s] for s in statuses if s in known):
            cursor = None
            while True:
                page = await self._executions.list_executions(
                    ExecutionQuery(tenant=tenant_id, status=status, limit=_PAGE, cursor=cursor)
                )
                count += len(page.items)
                cursor = page.next_cursor
                if cursor is None:
                    break
        return count

    async def stored_bytes(self, tenant_id: str) -> int | None:
        """The memory and SQLite stores' counter; None for a store that keeps none."""
        if isinstance(self._executions, MemoryStore | SqliteStore):
            return await self._executions.stored_bytes(tenant_id)
        return None
