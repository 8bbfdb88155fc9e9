"""The tenant directory's cache under concurrency: one load per entry at a time.

When a busy tenant's entry expired, every start in flight read it again through the
side connection, one after another; 1,000 concurrent starts then committed one per
group (bench/engine.py's 5-step throughput sample fell from about 850 to 450
executions/s in one run out of three). These pin the single load and what its waiters
see when it fails, when one of them gives up, and when the cache is forgotten under it.
"""

from __future__ import annotations

import asyncio

import pytest

from shared.adapters.memory_tenants import MemoryTenantStore
from shared.app.tenants import TenantDirectory
from shared.models.tenant import Tenant


class _SlowStore(MemoryTenantStore):
    """The memory store, with each tenant read counted and held until ``release``."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0
        self.release = asyncio.Event()
        self.fail_next = False

    async def get_tenant(self, tenant_id: str) -> Tenant | None:
        self.reads += 1
        await self.release.wait()
        if self.fail_next:
            self.fail_next = False
            raise ConnectionError("store unavailable")
        return await super().get_tenant(tenant_id)


async def _directory() -> tuple[_SlowStore, TenantDirectory, list[float]]:
    store = _SlowStore()
    await store.create_tenant(Tenant(id="acme"))
    now = [100.0]
    return store, TenantDirectory(store, ttl=5.0, clock=lambda: now[0]), now


async def test_callers_that_miss_together_share_one_load() -> None:
    store, directory, now = await _directory()
    store.release.set()
    assert (await directory.tenant("acme")) is not None
    now[0] += 5.1  # expired: a hundred starts in flight miss at once
    store.release.clear()
    waiting = [asyncio.ensure_future(directory.tenant("acme")) for _ in range(100)]
    await asyncio.sleep(0.01)
    store.release.set()
    found = await asyncio.gather(*waiting)
    assert store.reads == 2
    assert {tenant.id for tenant in found if tenant is not None} == {"acme"}
    assert await directory.tenant("acme") is not None and store.reads == 2  # cached again


async def test_a_failed_load_fails_its_waiters_and_the_next_call_loads_again() -> None:
    store, directory, _ = await _directory()
    store.fail_next = True
    waiting = [asyncio.ensure_future(directory.tenant("acme")) for _ in range(5)]
    await asyncio.sleep(0.01)
    store.release.set()
    outcomes = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(outcome, ConnectionError) for outcome in outcomes)
    assert store.reads == 1
    assert (await directory.tenant("acme")) is not None and store.reads == 2


async def test_a_caller_that_gives_up_does_not_cancel_the_others_load() -> None:
    store, directory, _ = await _directory()
    quitter = asyncio.ensure_future(directory.tenant("acme"))
    stayer = asyncio.ensure_future(directory.tenant("acme"))
    await asyncio.sleep(0.01)
    quitter.cancel()
    await asyncio.sleep(0)
    store.release.set()
    assert (await stayer) is not None
    with pytest.raises(asyncio.CancelledError):
        await quitter
    assert store.reads == 1
    assert (await directory.tenant("acme")) is not None and store.reads == 1  # kept


async def test_a_load_running_when_the_cache_is_forgotten_is_not_kept() -> None:
    """This process changed the tenant while an older read ran: the read answers the
    callers that waited for it, but the next caller reads the change."""
    store, directory, _ = await _directory()
    early = asyncio.ensure_future(directory.tenant("acme"))
    await asyncio.sleep(0.01)
    directory.forget()
    store.release.set()
    assert (await early) is not None
    assert store.reads == 1
    assert (await directory.tenant("acme")) is not None
    assert store.reads == 2
