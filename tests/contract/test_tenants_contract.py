"""The ``TenantStore`` and ``TenantUsage`` ports: one suite over every adapter (memory,
SQLite, Firestore on the emulator)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from _builders import Store, definition, execution
from google.cloud.firestore import AsyncClient

from shared.adapters.firestore_store import FirestoreStore
from shared.adapters.firestore_tenants import FirestoreTenantStore, FirestoreUsage
from shared.adapters.memory_tenants import MemoryTenantStore, StoreUsage
from shared.adapters.sqlite_store import SqliteStore
from shared.adapters.sqlite_tenants import SqliteTenantStore, SqliteUsage
from shared.errors import Conflict, NotFound
from shared.models import ExecutionStatus
from shared.models.tenant import ApiKey, Tenant, TenantQuotas
from shared.ports import ExecutionTx
from shared.ports.tenants import ACTIVE_STATUSES, TenantStore, TenantUsage

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
KINDS = ["memory", "sqlite", pytest.param("firestore", marks=pytest.mark.emulator)]


@pytest.fixture(params=KINDS)
async def tenants(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[TenantStore]:
    opened: TenantStore
    if request.param == "memory":
        opened = MemoryTenantStore()
    elif request.param == "sqlite":
        opened = SqliteTenantStore(tmp_path / "tenants.db")
    else:
        project: str = request.getfixturevalue("firestore_project")
        opened = FirestoreTenantStore(lambda: AsyncClient(project=project))
    yield opened
    await opened.close()


def _key(n: int, tenant: str = "acme", **fields: Any) -> ApiKey:
    values: dict[str, Any] = {
        "id": f"key{n:05d}",
        "tenant": tenant,
        "subject": f"user-{n}",
        "role": "editor",
        "secret_sha256": f"{n:064x}",
        "created_at": T0,
        **fields,
    }
    return ApiKey(**values)


async def test_a_tenant_round_trips_and_its_id_is_unique(tenants: TenantStore) -> None:
    tenant = Tenant(
        id="acme",
        display_name="Acme Corp.",
        quotas=TenantQuotas(max_workflows=3, steps_per_second=2.5),
        created_at=T0,
        updated_at=T0,
    )
    await tenants.create_tenant(tenant)
    assert await tenants.get_tenant("acme") == tenant
    assert await tenants.get_tenant("other") is None
    with pytest.raises(Conflict) as taken:
        await tenants.create_tenant(tenant.model_copy(update={"display_name": "Impostor"}))
    assert taken.value.code == "TENANT_EXISTS"
    assert (await tenants.get_tenant("acme")) == tenant


async def test_update_replaces_and_needs_an_existing_tenant(tenants: TenantStore) -> None:
    await tenants.create_tenant(Tenant(id="acme", quotas=TenantQuotas(max_workflows=3)))
    changed = Tenant(id="acme", display_name="A", disabled=True, quotas=TenantQuotas())
    await tenants.update_tenant(changed)
    assert await tenants.get_tenant("acme") == changed
    with pytest.raises(NotFound):
        await tenants.update_tenant(Tenant(id="ghost"))
    assert await tenants.get_tenant("ghost") is None


async def test_tenants_are_listed_by_id_in_pages(tenants: TenantStore) -> None:
    for name in ("c", "a", "e", "b", "d"):
        await tenants.create_tenant(Tenant(id=name))
    first = await tenants.list_tenants(limit=2)
    assert [t.id for t in first] == ["a", "b"]
    rest = await tenants.list_tenants(limit=10, after="b")
    assert [t.id for t in rest] == ["c", "d", "e"]


async def test_keys_are_listed_per_tenant_and_revoked_once(tenants: TenantStore) -> None:
    for n in (3, 1, 2):
        await tenants.add_key(_key(n))
    await tenants.add_key(_key(9, tenant="other"))
    with pytest.raises(Conflict):
        await tenants.add_key(_key(1, tenant="other"))
    assert [k.id for k in await tenants.list_keys("acme")] == ["key00001", "key00002", "key00003"]
    assert await tenants.get_key("key00009") == _key(9, tenant="other")
    revoked = await tenants.revoke_key("acme", "key00002", T0 + timedelta(hours=1))
    assert revoked.revoked_at == T0 + timedelta(hours=1)
    again = await tenants.revoke_key("acme", "key00002", T0 + timedelta(hours=2))
    assert again.revoked_at == T0 + timedelta(hours=1)  # the first revocation stands
    stored = await tenants.get_key("key00002")
    assert stored is not None and stored.revoked_at == T0 + timedelta(hours=1)


async def test_a_key_is_revoked_only_in_its_own_tenant(tenants: TenantStore) -> None:
    await tenants.add_key(_key(1, tenant="victim"))
    with pytest.raises(NotFound):
        await tenants.revoke_key("attacker", "key00001", T0)
    with pytest.raises(NotFound):
        await tenants.revoke_key("victim", "key99999", T0)
    stored = await tenants.get_key("key00001")
    assert stored is not None and stored.revoked_at is None


async def test_concurrent_creates_of_one_tenant_store_exactly_one(tenants: TenantStore) -> None:
    attempts = [Tenant(id="race", display_name=str(n)) for n in range(8)]
    results = await asyncio.gather(
        *(tenants.create_tenant(t) for t in attempts), return_exceptions=True
    )
    assert sum(r is None for r in results) == 1
    assert all(isinstance(r, Conflict) for r in results if r is not None)


# -- usage counts over the store ---------------------------------------------------


@pytest.fixture
async def usage(
    store: Store, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[TenantUsage]:
    counter: Any
    if isinstance(store, SqliteStore):
        counter = SqliteUsage(tmp_path / "store.db")  # the contract fixture's file
    elif isinstance(store, FirestoreStore):
        project: str = request.getfixturevalue("firestore_project")
        counter = FirestoreUsage(lambda: AsyncClient(project=project))
    else:
        counter = StoreUsage(store, store)
    yield counter
    if hasattr(counter, "close"):
        await counter.close()


async def test_usage_counts_workflows_not_deleted(store: Store, usage: TenantUsage) -> None:
    for n in range(3):
        await store.create_workflow(definition(f"wf-{n}", name=f"flow-{n}"), "acme")
    await store.create_workflow(definition("wf-7", name="flow-7"), "other")
    assert await store.delete_workflow("wf-1", "acme")
    assert await usage.count_workflows("acme") == 2
    assert await usage.count_workflows("other") == 1
    assert await usage.count_workflows("nobody") == 0


async def test_usage_counts_executions_by_status(store: Store, usage: TenantUsage) -> None:
    statuses = ["pending", "running", "waiting", "succeeded", "failed", "running"]

    async def body(tx: ExecutionTx) -> None:
        for n, status in enumerate(statuses):
            tenant = "acme" if n else "other"
            tx.put_execution(
                execution(f"ex-{n}", status=ExecutionStatus(status), started=n, tenant=tenant)
            )

    await store.run_transaction(body)
    assert await usage.count_executions("acme", ACTIVE_STATUSES) == 3
    assert await usage.count_executions("acme", ["succeeded", "failed"]) == 2
    assert await usage.count_executions("other", ACTIVE_STATUSES) == 1
    assert await usage.count_executions("acme", []) == 0
