"""The retention sweep (``shared/app/retention.py``) on the real local runtime, memory and
SQLite: executions past their tenant's retention go with their step runs, events and
checkpoints, their bytes leave the storage counter, so a tenant refused at its storage
quota (409 QUOTA_EXCEEDED) can start again; live and recent executions stay; a tenant's
``retentionDays`` overrides the default; a dry run deletes nothing; a second sweep
deletes nothing more; old audit entries go; each sweep is audited."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from shared.adapters.clock import ManualClock
from shared.api.errors import status_for
from shared.app.retention import SweepRequest
from shared.app.service import StartRequest
from shared.app.tenants import QuotaExceeded
from shared.composition import LocalRuntime, build_local
from shared.models import ExecutionStatus
from shared.ports import AuditQuery
from shared.ports.checkpoints import CheckpointListing, CheckpointRecord, thread_id_for
from shared.settings import Settings

pytestmark = pytest.mark.timeout(120)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
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


@pytest.fixture(params=["memory", "sqlite"])
async def runtime(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[LocalRuntime]:
    settings = Settings.local_mode(db_path=str(tmp_path / "ret.db"), rate_limits=True)
    clock = ManualClock(T0)
    running = build_local(settings, memory=request.param == "memory", clock=clock)
    await running.start(sweep=False)
    try:
        assert running.tenants is not None
        for tenant in ("tenant-a", "tenant-b"):
            await running.tenants.create_tenant({"id": tenant})
        yield running
    finally:
        await running.stop()


def clock_of(runtime: LocalRuntime) -> ManualClock:
    clock = runtime.engine.clock
    assert isinstance(clock, ManualClock)
    return clock


async def run(runtime: LocalRuntime, tenant: str, count: int, blob: int = 400) -> list[str]:
    app = runtime.app.for_tenant(tenant)
    workflow = await app.create_workflow({**FLOW, "name": f"kept-{uuid.uuid4().hex[:8]}"})
    ids = []
    for _ in range(count):
        started = await app.start_execution(StartRequest(workflow.id, {"blob": "x" * blob}))
        ids.append(started.id)
    for execution_id in ids:  # not queue.join: a waiting execution's timeout stays queued
        await until_status(runtime, execution_id, ExecutionStatus.SUCCEEDED)
    return ids


async def until_status(runtime: LocalRuntime, execution_id: str, status: ExecutionStatus) -> None:
    for _ in range(1500):
        found = await runtime.store.get_execution(execution_id)
        if found is not None and found.status == status:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{execution_id} never reached {status}")


async def held(runtime: LocalRuntime, ids: list[str]) -> int:
    total = 0
    for execution_id in ids:
        found = await runtime.store.get_execution(execution_id)
        if found is None:
            continue
        total += len(found.model_dump_json(by_alias=True).encode())
        for step in await runtime.store.list_runs(execution_id):
            total += len(step.model_dump_json(by_alias=True).encode())
        for item in await runtime.store.list_events(execution_id):
            total += len(item.model_dump_json(by_alias=True).encode())
    return total


async def test_a_tenant_at_its_storage_quota_starts_again_after_the_sweep(
    runtime: LocalRuntime,
) -> None:
    assert runtime.tenants is not None
    first = await run(runtime, "tenant-a", 3)
    used = await runtime.store.stored_bytes("tenant-a")
    assert used == await held(runtime, first) > 0
    await runtime.tenants.set_quotas("tenant-a", {"maxStorageBytes": used})
    app = runtime.app.for_tenant("tenant-a")
    workflow = await app.create_workflow(FLOW)
    with pytest.raises(QuotaExceeded) as refused:
        await app.start_execution(StartRequest(workflow.id, {"n": 1}))
    assert status_for(refused.value) == 409

    clock_of(runtime).advance(timedelta(days=31))
    report = await runtime.retention().sweep()

    assert report.counts.executions == 3
    assert report.counts.bytes_released == used
    assert report.tenants == {"tenant-a": 3}
    assert await runtime.store.stored_bytes("tenant-a") == 0
    for execution_id in first:
        assert await runtime.store.get_execution(execution_id) is None
        assert await runtime.store.list_runs(execution_id) == []
        assert await runtime.store.list_events(execution_id) == []
    started = await app.start_execution(StartRequest(workflow.id, {"n": 1}))
    assert await runtime.queue.join(30.0)
    assert (await app.get_execution(started.id)).status == ExecutionStatus.SUCCEEDED
    again = await runtime.retention().sweep()
    assert again.counts.executions == 0 and again.counts.bytes_released == 0


async def test_live_and_recent_executions_stay_and_a_tenant_override_applies(
    runtime: LocalRuntime,
) -> None:
    assert runtime.tenants is not None
    await runtime.tenants.set_quotas("tenant-b", {"retentionDays": 2})
    old_a = await run(runtime, "tenant-a", 2)
    old_b = await run(runtime, "tenant-b", 2)
    app = runtime.app.for_tenant("tenant-a")
    waiting_flow = await app.create_workflow(WAITS)
    waiting = await app.start_execution(StartRequest(waiting_flow.id, {}))
    await until_status(runtime, waiting.id, ExecutionStatus.WAITING)
    clock_of(runtime).advance(timedelta(days=3))
    recent_b = await run(runtime, "tenant-b", 1)

    dry = await runtime.retention().sweep(SweepRequest(dry_run=True))
    assert (dry.dry_run, dry.counts.executions, dry.tenants) == (True, 2, {"tenant-b": 2})
    assert all([await runtime.store.get_execution(i) for i in old_b])  # nothing deleted

    report = await runtime.retention().sweep()

    assert report.tenants == {"tenant-b": 2}  # tenant-a keeps the 30-day default
    for execution_id in old_b:
        assert await runtime.store.get_execution(execution_id) is None
    for execution_id in [*old_a, *recent_b, waiting.id]:
        assert await runtime.store.get_execution(execution_id) is not None
    assert await runtime.store.stored_bytes("tenant-b") == await held(runtime, recent_b)

    clock_of(runtime).advance(timedelta(days=60))
    later = await runtime.retention().sweep()
    assert later.tenants == {"tenant-a": 2, "tenant-b": 1}
    live = await runtime.store.get_execution(waiting.id)  # still waiting: never deleted
    assert live is not None and live.status == ExecutionStatus.WAITING
    assert await runtime.store.list_runs(waiting.id)


async def test_checkpoints_go_with_their_execution(runtime: LocalRuntime) -> None:
    assert runtime.checkpoints is not None
    gone, kept = await run(runtime, "tenant-a", 2)
    for execution_id in (gone, kept):
        await runtime.checkpoints.put_checkpoint(
            CheckpointRecord(
                thread_id=thread_id_for(execution_id, "run-1"),
                checkpoint_ns="",
                checkpoint_id="1",
                execution_id=execution_id,
                parent_checkpoint_id=None,
                checkpoint_type="json",
                checkpoint=b"{}",
                metadata_type="json",
                metadata=b"{}",
            )
        )
    # only ``gone`` is past the horizon: ``kept`` is refinished later
    clock_of(runtime).advance(timedelta(days=31))
    await runtime.store.delete_execution("tenant-a", kept, T0)  # not expired at T0: no-op
    report = await runtime.retention().sweep()

    assert report.counts.checkpoints == 2 and report.counts.executions == 2
    left = await runtime.checkpoints.list_checkpoints(CheckpointListing())
    assert left == []


async def test_old_audit_entries_go_and_the_sweep_is_audited(runtime: LocalRuntime) -> None:
    auditor = runtime.app.auditor
    assert auditor is not None
    await auditor.record(tenant="tenant-a", subject="alice", action="workflow.create")
    await run(runtime, "tenant-a", 1)
    clock_of(runtime).advance(timedelta(days=400))

    report = await runtime.retention().sweep(SweepRequest(subject="ops"))

    assert report.audit_entries >= 1
    page = await auditor.log.query(AuditQuery(tenant="tenant-a"))
    assert [(e.action, e.subject) for e in page.items] == [("retention.sweep", "ops")]


async def test_an_execution_redriven_during_the_sweep_keeps_its_checkpoints(
    runtime: LocalRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failed execution redriven between the sweep's listing and its delete: the store
    refuses to delete it (running again) and its checkpoints, which its agent steps
    resume from, stay (the sweep deletes checkpoints only after the execution)."""
    assert runtime.checkpoints is not None
    app = runtime.app.for_tenant("tenant-a")
    failing = await app.create_workflow(
        {
            "name": "fails",
            "steps": [
                {"id": "a", "type": "transform", "config": {"set": {"x": "${input.missing.deep}"}}}
            ],
        }
    )
    started = await app.start_execution(StartRequest(failing.id, {}))
    await until_status(runtime, started.id, ExecutionStatus.FAILED)
    await runtime.checkpoints.put_checkpoint(
        CheckpointRecord(
            thread_id=thread_id_for(started.id, "run-1"),
            checkpoint_ns="",
            checkpoint_id="1",
            execution_id=started.id,
            parent_checkpoint_id=None,
            checkpoint_type="json",
            checkpoint=b"{}",
            metadata_type="json",
            metadata=b"{}",
        )
    )
    clock_of(runtime).advance(timedelta(days=31))
    store: Any = runtime.store
    delete = store.delete_execution

    async def redriven_first(tenant: str, execution_id: str, before: datetime) -> Any:
        await app.redrive(execution_id)  # someone redrives it right now
        return await delete(tenant, execution_id, before)

    monkeypatch.setattr(store, "delete_execution", redriven_first)
    report = await runtime.retention().sweep()

    assert (report.counts.executions, report.counts.checkpoints) == (0, 0)
    assert await runtime.store.get_execution(started.id) is not None
    left = await runtime.checkpoints.list_checkpoints(CheckpointListing())
    assert [record.execution_id for record in left] == [started.id]


async def test_a_pass_out_of_time_stops_and_the_next_goes_on(runtime: LocalRuntime) -> None:
    ids = await run(runtime, "tenant-a", 2)
    clock_of(runtime).advance(timedelta(days=31))

    stopped = await runtime.retention().sweep(SweepRequest(max_seconds=0.0))

    assert (stopped.counts.executions, stopped.more) == (0, True)
    assert all([await runtime.store.get_execution(i) for i in ids])
    rest = await runtime.retention().sweep(SweepRequest(max_seconds=60.0))
    assert (rest.counts.executions, rest.more) == (2, False)


async def test_the_runtime_loop_sweeps_at_start_and_every_interval(tmp_path: Path) -> None:
    """``start(retention=True)`` (``wfe dev``): a sweep at once, then one per
    ``retention_interval_seconds``; executions that expire later go at a later pass."""
    settings = Settings.local_mode(
        db_path=str(tmp_path / "loop.db"), rate_limits=False, retention_interval_seconds=0.2
    )
    clock = ManualClock(T0)
    looping = build_local(settings, clock=clock)
    await looping.start(sweep=False, retention=True)
    try:
        ids = await run(looping, "default", 2)
        clock.advance(timedelta(days=31))
        for _ in range(250):
            if all([await looping.store.get_execution(i) is None for i in ids]):
                break
            await asyncio.sleep(0.02)
        assert [await looping.store.get_execution(i) for i in ids] == [None, None]
        assert await looping.store.stored_bytes("default") == 0
    finally:
        await looping.stop()
    assert looping._retainer is None  # stopped with the runtime
