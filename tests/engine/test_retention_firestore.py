"""The retention sweep over the Firestore store (emulator): the executions listing finds
a tenant's finished executions past the horizon (tenant, status, startedAt: the listing's
composite index), each goes with its documents and checkpoints, the storage counter
drops to what is left, old audit entries go, and a second sweep deletes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from google.cloud.firestore import AsyncClient
from harness import Harness

from shared.adapters.firestore_audit import FirestoreAuditLog
from shared.adapters.firestore_checkpoints import FirestoreCheckpointStore
from shared.adapters.firestore_store import FirestoreStore
from shared.app.retention import RetentionPolicy, RetentionSweeper, SweepRequest
from shared.app.service import StartRequest
from shared.models import ExecutionStatus
from shared.models.audit import AuditEntry
from shared.ports.checkpoints import CheckpointListing, CheckpointRecord, thread_id_for

pytestmark = [pytest.mark.emulator, pytest.mark.timeout(180)]

FLOW: dict[str, Any] = {
    "name": "kept",
    "steps": [
        {"id": "a", "type": "transform", "config": {"set": {"n": 1}}, "nextSteps": ["b"]},
        {"id": "b", "type": "transform", "config": {"set": {"m": "${input}"}}},
    ],
}
WAITS: dict[str, Any] = {
    "name": "waits",
    "steps": [
        {"id": "w", "type": "wait_for_event", "config": {"event": "go", "timeoutSeconds": 9e6}}
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


async def test_the_sweep_deletes_expired_executions_on_firestore(
    fh: Harness, firestore_project: str
) -> None:
    store: FirestoreStore = fh.store  # type: ignore[assignment]
    checkpoints = FirestoreCheckpointStore(lambda: AsyncClient(project=firestore_project))
    audit = FirestoreAuditLog(lambda: AsyncClient(project=firestore_project))
    ids: dict[str, list[str]] = {}
    for tenant in ("t-a", "t-b"):
        app = fh.app.for_tenant(tenant)
        workflow = await app.create_workflow({**FLOW, "name": f"kept-{tenant}"})
        ids[tenant] = [
            (await app.start_execution(StartRequest(workflow.id, {"x": "y" * 300}))).id
            for _ in range(2)
        ]
    waits = await fh.app.for_tenant("t-a").create_workflow(WAITS)
    waiting = await fh.app.for_tenant("t-a").start_execution(StartRequest(waits.id, {}))
    await fh.drain(advance=False)
    for execution_id in ids["t-a"] + ids["t-b"]:
        found = await store.get_execution(execution_id)
        assert found is not None and found.status == ExecutionStatus.SUCCEEDED
    await checkpoints.put_checkpoint(
        CheckpointRecord(
            thread_id=thread_id_for(ids["t-a"][0], "run-1"),
            checkpoint_ns="",
            checkpoint_id="1",
            execution_id=ids["t-a"][0],
            parent_checkpoint_id=None,
            checkpoint_type="json",
            checkpoint=b"{}",
            metadata_type="json",
            metadata=b"{}",
        )
    )
    old_entry = AuditEntry(
        id="old-1", time=fh.clock.now(), tenant="t-a", subject="s", action="workflow.create"
    )
    await audit.record(old_entry)
    fh.clock.advance(timedelta(days=400))
    sweeper = RetentionSweeper(
        store, fh.clock, RetentionPolicy(), checkpoints=checkpoints, audit_log=audit
    )
    try:
        dry = await sweeper.sweep(SweepRequest(dry_run=True))
        assert dry.tenants == {"t-a": 2, "t-b": 2}
        assert all([await store.get_execution(i) for i in ids["t-a"]])

        report = await sweeper.sweep()

        assert report.tenants == {"t-a": 2, "t-b": 2}
        assert (report.counts.executions, report.counts.runs) == (4, 8)
        assert report.counts.checkpoints == 1 and report.audit_entries == 1
        for execution_id in ids["t-a"] + ids["t-b"]:
            assert await store.get_execution(execution_id) is None
            assert await store.list_runs(execution_id) == []
            assert await store.list_events(execution_id) == []
        assert await checkpoints.list_checkpoints(CheckpointListing()) == []
        kept = await store.get_execution(waiting.id)
        assert kept is not None and kept.status == ExecutionStatus.WAITING
        assert await store.stored_bytes("t-b") == 0
        # t-a holds only its waiting execution, whose bytes sit on its document until it
        # ends: the counter lost exactly what the deleted executions had put on it
        assert await store.stored_bytes("t-a") == 0
        again = await sweeper.sweep()
        assert again.counts.executions == 0 and again.counts.bytes_released == 0
    finally:
        await checkpoints.close()
        await audit.close()
