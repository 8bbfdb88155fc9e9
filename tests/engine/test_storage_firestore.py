"""Tenant storage (``maxStorageBytes``) counted on Firestore (emulator): the engine's
transactions keep a sharded counter per tenant, and it equals the bytes of the
documents the store holds, as on SQLite (tests/security/test_storage_quota.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from google.cloud.firestore import AsyncClient
from harness import Harness

from shared.adapters._firestore_codec import Collections
from shared.adapters.firestore_storage import SHARDS, UNCOUNTED, collection_of, stored_bytes
from shared.adapters.firestore_store import FirestoreStore
from shared.adapters.firestore_tenants import FirestoreUsage
from shared.app.service import StartRequest
from shared.models import ExecutionStatus

pytestmark = [pytest.mark.emulator, pytest.mark.timeout(180)]

FLOW: dict[str, Any] = {
    "name": "store",
    "steps": [
        {"id": "a", "type": "transform", "config": {"set": {"n": 1}}, "nextSteps": ["w"]},
        {"id": "w", "type": "wait", "config": {"seconds": 1}, "nextSteps": ["b"]},
        {"id": "b", "type": "transform", "config": {"set": {"m": "${input}"}}},
    ],
}


@pytest.fixture
async def fh(firestore_project: str) -> AsyncIterator[Harness]:
    store = FirestoreStore(lambda: AsyncClient(project=firestore_project), max_attempts=50)
    harness = Harness(store)  # type: ignore[arg-type]
    try:
        yield harness
    finally:
        await harness.bus.close()
        await store.close()


async def held_bytes(h: Harness, ids: list[str]) -> int:
    """What the store holds for these executions, measured from its documents."""
    total = 0
    for execution_id in ids:
        execution = await h.store.get_execution(execution_id)
        assert execution is not None
        total += len(execution.model_dump_json(by_alias=True).encode())
        for run in await h.store.list_runs(execution_id):
            total += len(run.model_dump_json(by_alias=True).encode())
        for event in await h.store.list_events(execution_id):
            total += len(event.model_dump_json(by_alias=True).encode())
    return total


async def run_for(h: Harness, tenant: str, inputs: list[dict[str, Any]]) -> list[str]:
    app = h.app.for_tenant(tenant)
    workflow = await app.create_workflow({**FLOW, "name": f"store-{tenant}"})
    ids = [(await app.start_execution(StartRequest(workflow.id, x))).id for x in inputs]
    await h.drain()
    for execution_id in ids:
        execution = await h.store.get_execution(execution_id)
        assert execution is not None and execution.status == ExecutionStatus.SUCCEEDED
    return ids


async def test_the_counter_is_the_bytes_the_store_holds_per_tenant(
    fh: Harness, firestore_project: str
) -> None:
    client = AsyncClient(project=firestore_project)
    names = Collections()
    try:
        assert await stored_bytes(client, names, "tenant-a") == 0
        ids_a = await run_for(fh, "tenant-a", [{"blob": "x" * 700 * i} for i in range(1, 5)])
        ids_b = await run_for(fh, "tenant-b", [{"blob": "y"}])
        counted_a = await stored_bytes(client, names, "tenant-a")
        counted_b = await stored_bytes(client, names, "tenant-b")
        assert counted_a == await held_bytes(fh, ids_a) > 4 * 700
        assert counted_b == await held_bytes(fh, ids_b) > 0
        usage = FirestoreUsage(lambda: AsyncClient(project=firestore_project))
        try:  # what the quota check reads (maxStorageBytes is enforced on Firestore too)
            assert await usage.stored_bytes("tenant-a") == counted_a
        finally:
            await usage.close()
        # an execution's bytes wait on its document (no counter write per step) until
        # it ends: when the executions end, nothing is left uncounted
        for collection in (names.executions, names.step_runs):
            rows = [d.to_dict() or {} async for d in client.collection(collection).stream()]
            assert rows and all(not row.get(UNCOUNTED) for row in rows)
        shards = [s.to_dict() async for s in client.collection(collection_of(names)).stream()]
        assert {row["tenant"] for row in shards} == {"tenant-a", "tenant-b"}
        assert all(0 <= row["shard"] < SHARDS for row in shards)
    finally:
        client.close()


async def test_a_live_executions_bytes_wait_on_its_document_until_it_ends(
    fh: Harness, firestore_project: str
) -> None:
    client = AsyncClient(project=firestore_project)
    names = Collections()
    flow = {
        "name": "asks",
        "steps": [
            {"id": "a", "type": "transform", "config": {"set": {"n": 1}}, "nextSteps": ["ask"]},
            {
                "id": "ask",
                "type": "wait_for_event",
                "config": {"event": "go", "timeoutSeconds": 60},
            },
        ],
    }
    try:
        app = fh.app.for_tenant("tenant-w")
        workflow = await app.create_workflow(flow)
        started = await app.start_execution(StartRequest(workflow.id, {"blob": "z" * 900}))
        await fh.drain(advance=False)
        assert (await app.get_execution(started.id)).status == ExecutionStatus.WAITING
        held = await held_bytes(fh, [started.id])
        doc = await client.collection(names.executions).document(started.id).get()
        assert (doc.to_dict() or {})[UNCOUNTED] == held  # on the document, not counted yet
        assert await stored_bytes(client, names, "tenant-w") == 0

        await app.send_event(started.id, "go", {"ok": True})
        await fh.drain(advance=False)
        assert (await app.get_execution(started.id)).status == ExecutionStatus.SUCCEEDED
        assert await stored_bytes(client, names, "tenant-w") == await held_bytes(fh, [started.id])
        doc = await client.collection(names.executions).document(started.id).get()
        assert (doc.to_dict() or {})[UNCOUNTED] == 0
    finally:
        client.close()
