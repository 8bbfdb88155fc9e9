"""Tenant storage quota (``maxStorageBytes``, issue 13): the store counts each tenant's
bytes in the transactions that write them, and a start past the quota is refused.

On the memory store and the SQLite file (the real local runtime, ``build_local``): the
counter equals the bytes of the documents the store holds (executions, step runs,
events) after real executions ran; tenants are counted apart; it survives a reopen of
the file. The attacks: one huge input on an empty tenant, and a stream of small starts
that would creep past the cap, are refused with QUOTA_EXCEEDED (409: not retryable).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from shared.api.errors import status_for
from shared.app.service import StartRequest
from shared.app.tenants import QuotaExceeded
from shared.composition import LocalRuntime, build_local
from shared.models import ExecutionStatus
from shared.settings import Settings

FLOW: dict[str, Any] = {
    "name": "store",
    "steps": [
        {"id": "a", "type": "transform", "config": {"set": {"n": 1}}, "nextSteps": ["b"]},
        {"id": "b", "type": "transform", "config": {"set": {"m": "${input}"}}},
    ],
}


def _runtime(path: Path, backend: str) -> LocalRuntime:
    settings = Settings.local_mode(db_path=str(path), rate_limits=False)
    return build_local(settings, memory=backend == "memory")


@pytest.fixture(params=["memory", "sqlite"])
async def runtime(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[LocalRuntime]:
    running = _runtime(tmp_path / "quota.db", request.param)
    await running.start()
    try:
        assert running.tenants is not None
        for tenant in ("tenant-a", "tenant-b"):
            await running.tenants.create_tenant({"id": tenant})
        yield running
    finally:
        await running.stop()


async def _run(runtime: LocalRuntime, tenant: str, inputs: list[dict[str, Any]]) -> list[str]:
    app = runtime.app.for_tenant(tenant)
    workflow = await app.create_workflow({**FLOW, "name": f"store-{uuid.uuid4().hex[:8]}"})
    ids = [(await app.start_execution(StartRequest(workflow.id, payload))).id for payload in inputs]
    assert await runtime.queue.join(30.0)
    for execution_id in ids:
        execution = await runtime.store.get_execution(execution_id)
        assert execution is not None and execution.status == ExecutionStatus.SUCCEEDED
    return ids


async def _held_bytes(runtime: LocalRuntime, ids: list[str]) -> int:
    """What the store holds for these executions, measured from its documents."""
    store, total = runtime.store, 0
    for execution_id in ids:
        execution = await store.get_execution(execution_id)
        assert execution is not None
        total += len(execution.model_dump_json(by_alias=True).encode())
        for run in await store.list_runs(execution_id):
            total += len(run.model_dump_json(by_alias=True).encode())
        for event in await store.list_events(execution_id):
            total += len(event.model_dump_json(by_alias=True).encode())
    return total


async def test_the_counter_is_the_bytes_the_store_holds_per_tenant(runtime: LocalRuntime) -> None:
    ids_a = await _run(runtime, "tenant-a", [{"blob": "x" * 500 * i} for i in range(1, 6)])
    ids_b = await _run(runtime, "tenant-b", [{"small": 1}])
    held_a, held_b = await _held_bytes(runtime, ids_a), await _held_bytes(runtime, ids_b)
    assert held_a > 5 * 2 * 500  # the inputs (in the execution and the step output)
    assert await runtime.store.stored_bytes("tenant-a") == held_a
    assert await runtime.store.stored_bytes("tenant-b") == held_b
    assert await runtime.store.stored_bytes("tenant-c") == 0


async def test_the_counter_survives_a_reopen_of_the_file(tmp_path: Path) -> None:
    path = tmp_path / "reopen.db"
    first = _runtime(path, "sqlite")
    async with first:
        assert first.tenants is not None
        await first.tenants.create_tenant({"id": "tenant-a"})
        ids = await _run(first, "tenant-a", [{"blob": "y" * 2000}])
        before = await first.store.stored_bytes("tenant-a")
    assert before > 2000
    second = _runtime(path, "sqlite")
    async with second:
        assert await second.store.stored_bytes("tenant-a") == before
        assert await _held_bytes(second, ids) == before


async def _quota(runtime: LocalRuntime, tenant: str, cap: int) -> None:
    assert runtime.tenants is not None
    await runtime.tenants.set_quotas(tenant, {"maxStorageBytes": cap})


async def test_one_huge_input_is_refused_on_an_empty_tenant(runtime: LocalRuntime) -> None:
    await _quota(runtime, "tenant-a", 50_000)
    app = runtime.app.for_tenant("tenant-a")
    workflow = await app.create_workflow(FLOW)
    with pytest.raises(QuotaExceeded) as refused:
        await app.start_execution(StartRequest(workflow.id, {"blob": "z" * 60_000}))
    assert refused.value.details["quota"] == "maxStorageBytes"
    assert not refused.value.retryable and status_for(refused.value) == 409
    assert await runtime.store.stored_bytes("tenant-a") == 0  # nothing was written
    # Another tenant is not affected, and a small input still fits.
    await _run(runtime, "tenant-b", [{"blob": "z" * 60_000}])
    await _run(runtime, "tenant-a", [{"n": 1}])


async def test_many_small_starts_stop_at_the_quota(runtime: LocalRuntime) -> None:
    cap = 40_000
    await _quota(runtime, "tenant-a", cap)
    app = runtime.app.for_tenant("tenant-a")
    workflow = await app.create_workflow(FLOW)
    started, refused = 0, 0
    for _ in range(200):
        try:
            await app.start_execution(StartRequest(workflow.id, {"blob": "s" * 300}))
            started += 1
        except QuotaExceeded as exc:
            assert exc.details["quota"] == "maxStorageBytes"
            refused += 1
        assert await runtime.queue.join(30.0)  # each execution's bytes are all written
    used = await runtime.store.stored_bytes("tenant-a")
    assert started > 0 and refused > 0
    # Sequential starts: the last admitted one began under the cap, so the overshoot is
    # at most one execution's bytes (a few KB), never more.
    per_execution = used / started
    assert used - per_execution < cap <= used + per_execution
    assert await runtime.store.stored_bytes("tenant-b") == 0


async def test_the_quota_field_is_validated(runtime: LocalRuntime) -> None:
    from shared.errors import DefinitionInvalid

    assert runtime.tenants is not None
    for bad in (-1, 10**16, "many"):
        with pytest.raises(DefinitionInvalid):
            await runtime.tenants.set_quotas("tenant-a", {"maxStorageBytes": bad})
    tenant = await runtime.tenants.set_quotas("tenant-a", {"maxStorageBytes": 10**12})
    assert tenant.quotas.max_storage_bytes == 10**12
