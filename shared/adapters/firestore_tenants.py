"""The tenant registry in Firestore: ``tenants/{tenantId}`` and ``tenantKeys/{keyId}``,
and the quota counts as aggregation queries over ``workflows`` and ``executions``.

A tenant document holds the ``Tenant`` model's camelCase JSON fields (``displayName``,
``disabled``, ``quotas`` as a map; the id is the document's): Terraform writes the same
shape (``infra/terraform/modules/workflow-engine/tenants.tf``). Keys are looked up by
their id (the document id), never queried by hash. The counts are ``COUNT`` aggregations
(one index entry read per 1000 documents), served by single-field indexes.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import datetime
from typing import Any

from google.cloud.firestore import AsyncClient, AsyncTransaction

from shared.adapters._firestore_codec import Collections
from shared.adapters._firestore_queries import (
    keys_of_tenant,
    tenant_executions_in,
    tenant_workflows,
    tenants_page,
)
from shared.adapters._firestore_tx import transact, translated
from shared.adapters.firestore_storage import stored_bytes
from shared.adapters.memory_tenants import tenant_exists
from shared.errors import Conflict, NotFound
from shared.models.tenant import ApiKey, Tenant

__all__ = ["KEYS_COLLECTION", "TENANTS_COLLECTION", "FirestoreTenantStore", "FirestoreUsage"]

TENANTS_COLLECTION = "tenants"
KEYS_COLLECTION = "tenantKeys"


def _fields(model: Tenant | ApiKey) -> dict[str, Any]:
    return model.model_dump(mode="json", by_alias=True, exclude_none=True, exclude={"id"})


def tenant_from_document(tenant_id: str, fields: dict[str, Any]) -> Tenant:
    """The ``Tenant`` a document holds (as this adapter or Terraform wrote it)."""
    return Tenant.model_validate({**fields, "id": tenant_id})


class _Client:
    def __init__(self, client_factory: Callable[[], AsyncClient]) -> None:
        self._client_factory = client_factory
        self._client: AsyncClient | None = None

    def _db(self) -> AsyncClient:
        if self._client is None:
            self._client = self._client_factory()
        return self._client

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client._firestore_api.transport.close()


class FirestoreTenantStore(_Client):
    """Tenants and keys as documents named by their ids."""

    def __init__(
        self, client_factory: Callable[[], AsyncClient], *, collection_prefix: str = ""
    ) -> None:
        super().__init__(client_factory)
        self._tenants = f"{collection_prefix}{TENANTS_COLLECTION}"
        self._keys = f"{collection_prefix}{KEYS_COLLECTION}"

    async def create_tenant(self, tenant: Tenant) -> None:
        try:
            with translated():
                await (
                    self._db().collection(self._tenants).document(tenant.id).create(_fields(tenant))
                )
        except Conflict:
            raise tenant_exists(tenant.id) from None

    async def get_tenant(self, tenant_id: str) -> Tenant | None:
        with translated():
            snapshot = await self._db().collection(self._tenants).document(tenant_id).get()
        if not snapshot.exists:
            return None
        return tenant_from_document(snapshot.id, snapshot.to_dict() or {})

    async def list_tenants(self, limit: int = 100, after: str | None = None) -> list[Tenant]:
        if limit < 1:
            return []
        query = tenants_page(self._db(), self._tenants)
        if after:
            query = query.start_after(
                {"__name__": self._db().collection(self._tenants).document(after)}
            )
        with translated():
            snapshots = [s async for s in query.limit(limit).stream()]
        return [tenant_from_document(s.id, s.to_dict() or {}) for s in snapshots]

    async def update_tenant(self, tenant: Tenant) -> None:
        ref = self._db().collection(self._tenants).document(tenant.id)

        async def body(transaction: AsyncTransaction) -> None:
            snapshot = await ref.get(transaction=transaction)
            if not snapshot.exists:
                raise NotFound(f"tenant {tenant.id} not found")
            transaction.set(ref, _fields(tenant))

        await transact(self._db(), body, attempts=6, base_delay=0.02)

    async def add_key(self, key: ApiKey) -> None:
        fields = key.model_dump(mode="json", by_alias=True, exclude_none=True)
        try:
            with translated():
                await self._db().collection(self._keys).document(key.id).create(fields)
        except Conflict:
            raise Conflict(f"API key id {key.id} is taken", retryable=True) from None

    async def get_key(self, key_id: str) -> ApiKey | None:
        with translated():
            snapshot = await self._db().collection(self._keys).document(key_id).get()
        return ApiKey.model_validate(snapshot.to_dict()) if snapshot.exists else None

    async def list_keys(self, tenant_id: str) -> list[ApiKey]:
        query = keys_of_tenant(self._db(), self._keys, tenant_id)
        with translated():
            snapshots = [s async for s in query.stream()]
        keys = [ApiKey.model_validate(s.to_dict()) for s in snapshots]
        return sorted(keys, key=lambda key: key.id)

    async def revoke_key(self, tenant_id: str, key_id: str, at: datetime) -> ApiKey:
        ref = self._db().collection(self._keys).document(key_id)

        async def body(transaction: AsyncTransaction) -> ApiKey:
            snapshot = await ref.get(transaction=transaction)
            key = ApiKey.model_validate(snapshot.to_dict()) if snapshot.exists else None
            if key is None or key.tenant != tenant_id:
                raise NotFound(f"API key {key_id} not found in tenant {tenant_id}")
            if key.revoked_at is None:
                key = key.model_copy(update={"revoked_at": at})
                transaction.set(ref, key.model_dump(mode="json", by_alias=True, exclude_none=True))
            return key

        return await transact(self._db(), body, attempts=6, base_delay=0.02)


class FirestoreUsage(_Client):
    """``COUNT`` aggregations over the store's ``workflows`` and ``executions``."""

    def __init__(
        self, client_factory: Callable[[], AsyncClient], *, collection_prefix: str = ""
    ) -> None:
        super().__init__(client_factory)
        self._names = Collections(collection_prefix)

    async def _count(self, query: Any) -> int:
        with translated():
            results = await query.count(alias="n").get()
        return int(sum(result.value for row in results for result in row))

    async def count_workflows(self, tenant_id: str) -> int:
        query = tenant_workflows(self._db(), self._names, tenant_id)
        return await self._count(query)

    async def count_executions(self, tenant_id: str, statuses: Collection[str]) -> int:
        wanted = sorted(set(statuses))
        if not wanted:
            return 0
        query = tenant_executions_in(self._db(), self._names, tenant_id, wanted)
        return await self._count(query)

    async def stored_bytes(self, tenant_id: str) -> int | None:
        """The tenant's counter (``firestore_storage``: sharded, kept by the engine's
        transactions)."""
        with translated():
            return await stored_bytes(self._db(), self._names, tenant_id)
