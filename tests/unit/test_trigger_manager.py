"""Trigger Manager and the local backend: reconcile, local cron, local subscriptions."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.adapters.clock import ManualClock
from shared.app.local_triggers import LocalTriggerBackend
from shared.app.service import StartRequest, WorkflowApp
from shared.app.trigger_manager import TriggerManager, specs_for
from shared.app.triggers import ScheduleFire, fire_schedule
from shared.composition import LocalRuntime, build_local
from shared.composition.edge import build_local_trigger_manager
from shared.models import WorkflowDefinition, WorkflowExecution
from shared.ports import EventSpec, ScheduleSpec
from shared.settings import Settings

T0 = datetime(2025, 1, 6, 10, 0, 30, tzinfo=UTC)
STEPS = [{"id": "s", "type": "transform", "config": {"set": {"seen": "${input}"}}}]


@pytest.fixture
async def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
async def runtime(clock: ManualClock) -> AsyncIterator[LocalRuntime]:
    local = build_local(Settings.local_mode(), clock=clock, memory=True)
    await local.start()
    try:
        yield local
        await local.bus.drain(5)
        await local.queue.join(timeout=5)
    finally:
        await local.stop()


@pytest.fixture
async def manager(runtime: LocalRuntime) -> AsyncIterator[TriggerManager]:
    manager = build_local_trigger_manager(runtime, max_sleep=0.02)
    try:
        yield manager
    finally:
        await manager.stop()


def backend_of(manager: TriggerManager) -> LocalTriggerBackend:
    assert isinstance(manager.backend, LocalTriggerBackend)
    return manager.backend


async def create(app: WorkflowApp, trigger: dict[str, Any], **fields: Any) -> str:
    body = {
        "name": fields.pop("name", f"wf-{uuid.uuid4().hex[:8]}"),
        "trigger": trigger,
        "steps": STEPS,
        **fields,
    }
    return (await app.create_workflow(body)).id


async def executions(app: WorkflowApp, workflow_id: str) -> list[WorkflowExecution]:
    return (await app.list_executions(workflow_id=workflow_id, limit=100)).items


# -- reconcile -------------------------------------------------------------------------


async def test_reconciling_twice_changes_nothing(
    runtime: LocalRuntime, manager: TriggerManager
) -> None:
    app = runtime.app
    cron = await create(app, {"type": "schedule", "cron": "*/5 * * * *"})
    event = await create(app, {"type": "event", "topic": "projects/p/topics/orders"})
    await create(app, {"type": "webhook", "secretRef": "env:WFE_SECRET_X"})
    await create(app, {"type": "schedule", "cron": "* * * * *"}, isActive=False)

    first = await manager.reconcile_all()
    second = await manager.reconcile_all()

    assert sorted(first.added) == sorted([f"schedule:wfe-{cron}", f"event:default:{event}"])
    assert (second.changed, second.unchanged) == (False, 2)
    backend = backend_of(manager)
    assert list(backend.scheduler.jobs) == [f"wfe-{cron}"]
    assert backend.subscriptions == [("default", "orders")]


async def test_workflow_changes_add_update_and_remove_triggers(
    runtime: LocalRuntime, manager: TriggerManager
) -> None:
    app = runtime.app
    await manager.reconcile_all()
    workflow_id = await create(app, {"type": "schedule", "cron": "0 * * * *"})
    key = f"schedule:wfe-{workflow_id}"

    created = await manager.on_workflow_changed(workflow_id)
    unchanged = await manager.on_workflow_changed(workflow_id)
    raw = (await app.get_workflow(workflow_id)).to_json_dict()
    raw["trigger"] = {"type": "schedule", "cron": "30 * * * *", "timezone": "Europe/Paris"}
    await app.update_workflow(workflow_id, raw)
    updated = await manager.on_workflow_changed(workflow_id)
    await app.set_active(workflow_id, False)
    deactivated = await manager.on_workflow_changed(workflow_id)
    await app.set_active(workflow_id, True)
    reactivated = await manager.on_workflow_changed(workflow_id)
    await app.delete_workflow(workflow_id)
    deleted = await manager.on_workflow_changed(workflow_id)

    assert created.added == (key,)
    assert (unchanged.changed, unchanged.unchanged) == (False, 1)
    assert updated.updated == (key,)
    assert deactivated.removed == (key,)
    assert reactivated.added == (key,)
    assert deleted.removed == (key,)
    assert backend_of(manager).scheduler.jobs == {}


async def test_a_change_of_one_workflow_leaves_the_others_alone(
    runtime: LocalRuntime, manager: TriggerManager
) -> None:
    app = runtime.app
    first = await create(app, {"type": "event", "topic": "a"})
    second = await create(app, {"type": "event", "topic": "b"})
    await manager.reconcile_all()
    # a scoped reconcile that finds nothing for ``first`` must not touch ``second``
    await app.delete_workflow(first)
    report = await manager.on_workflow_changed(first)
    assert report.removed == (f"event:default:{first}",)
    assert backend_of(manager).subscriptions == [("default", "b")]
    assert list(backend_of(manager).specs) == [f"event:default:{second}"]


def test_specs_carry_what_a_cloud_backend_needs() -> None:
    definition = WorkflowDefinition.model_validate(
        {
            "id": "wf-1",
            "name": "n",
            "steps": STEPS,
            "trigger": {"type": "schedule", "cron": "0 9 * * 1", "timezone": "Europe/Paris"},
        }
    )
    [spec] = specs_for(definition, "acme corp")
    assert spec == ScheduleSpec("wf-1", "acme corp", "0 9 * * 1", "Europe/Paris")
    assert isinstance(spec, ScheduleSpec)
    assert (spec.job_name, spec.target_path) == ("wfe-wf-1", "/schedule/wf-1?tenant=acme%20corp")
    event = EventSpec("wf-2", "default", "orders")
    assert event.target_path == "/pubsub"


# -- local cron ------------------------------------------------------------------------


async def test_every_minute_fires_once_per_minute(
    runtime: LocalRuntime, manager: TriggerManager, clock: ManualClock
) -> None:
    workflow_id = await create(runtime.app, {"type": "schedule", "cron": "* * * * *"})
    await manager.reconcile_all()
    scheduler = backend_of(manager).scheduler
    minute = T0.replace(second=0)

    assert await scheduler.tick(T0 + timedelta(seconds=10)) == []  # 10:00 predates the job
    assert await scheduler.tick(minute + timedelta(minutes=1, seconds=1)) == [
        (f"wfe-{workflow_id}", minute + timedelta(minutes=1))
    ]
    assert await scheduler.tick(minute + timedelta(minutes=1, seconds=40)) == []
    assert len(await scheduler.tick(minute + timedelta(minutes=2))) == 1

    found = sorted(e.input["scheduledTime"] for e in await executions(runtime.app, workflow_id))
    assert found == ["2025-01-06T10:01:00Z", "2025-01-06T10:02:00Z"]


async def test_missed_ticks_are_not_replayed(
    runtime: LocalRuntime, manager: TriggerManager
) -> None:
    workflow_id = await create(runtime.app, {"type": "schedule", "cron": "*/10 * * * *"})
    await manager.reconcile_all()
    scheduler = backend_of(manager).scheduler

    fired = await scheduler.tick(T0 + timedelta(hours=3))  # the process slept three hours

    assert [tick for _, tick in fired] == [datetime(2025, 1, 6, 13, 0, tzinfo=UTC)]
    assert len(await executions(runtime.app, workflow_id)) == 1


async def test_local_ticks_and_scheduler_calls_share_dedup(
    runtime: LocalRuntime, manager: TriggerManager
) -> None:
    workflow_id = await create(runtime.app, {"type": "schedule", "cron": "0 * * * *"})
    await manager.reconcile_all()
    await backend_of(manager).scheduler.tick(datetime(2025, 1, 6, 11, 0, 5, tzinfo=UTC))
    # the same tick arriving as a Cloud Scheduler HTTP call (full job name)
    outcome = await fire_schedule(
        runtime.app,
        ScheduleFire(
            workflow_id,
            f"projects/p/locations/l/jobs/wfe-{workflow_id}",
            datetime(2025, 1, 6, 11, 0, tzinfo=UTC),
        ),
    )
    assert outcome.status == "duplicate"
    assert len(await executions(runtime.app, workflow_id)) == 1


async def test_schedules_follow_their_time_zone(
    runtime: LocalRuntime, manager: TriggerManager
) -> None:
    trigger = {"type": "schedule", "cron": "0 9 * * *", "timezone": "Europe/Paris"}
    workflow_id = await create(runtime.app, trigger, name="paris")
    await manager.reconcile_all()
    scheduler = backend_of(manager).scheduler

    assert await scheduler.tick(datetime(2025, 1, 7, 7, 59, tzinfo=UTC)) == []
    fired = await scheduler.tick(datetime(2025, 1, 7, 8, 0, 1, tzinfo=UTC))  # 09:00 CET
    summer = await scheduler.tick(datetime(2025, 7, 1, 7, 0, 1, tzinfo=UTC))  # 09:00 CEST

    assert [tick.astimezone(UTC) for _, tick in fired + summer] == [
        datetime(2025, 1, 7, 8, 0, tzinfo=UTC),
        datetime(2025, 7, 1, 7, 0, tzinfo=UTC),
    ]
    assert len(await executions(runtime.app, workflow_id)) == 2


async def test_the_cron_loop_fires_when_the_clock_moves(
    runtime: LocalRuntime, manager: TriggerManager, clock: ManualClock
) -> None:
    workflow_id = await create(runtime.app, {"type": "schedule", "cron": "* * * * *"})
    await manager.start()
    clock.advance(60)
    for _ in range(200):
        if await executions(runtime.app, workflow_id):
            break
        await asyncio.sleep(0.01)
    [execution] = await executions(runtime.app, workflow_id)
    assert execution.input == {"scheduledTime": "2025-01-06T10:01:00Z"}


# -- local subscriptions ---------------------------------------------------------------


async def test_a_publish_step_starts_the_subscribed_workflow(
    runtime: LocalRuntime, manager: TriggerManager
) -> None:
    app = runtime.app
    publisher = await app.create_workflow(
        {
            "name": "publisher",
            "steps": [
                {
                    "id": "pub",
                    "type": "publish",
                    "config": {"topic": "orders", "data": {"amount": "${input.amount}"}},
                }
            ],
        }
    )
    listener = await create(
        app, {"type": "event", "topic": "orders", "filter": "data.amount >= 10"}, name="big"
    )
    ignored = await create(
        app, {"type": "event", "topic": "orders", "filter": "data.amount < 10"}, name="small"
    )
    await manager.start()

    await app.start_execution(StartRequest(publisher.id, {"amount": 12}))
    for _ in range(300):
        if await executions(app, listener):
            break
        await asyncio.sleep(0.01)
    await runtime.bus.drain(2)
    [execution] = await executions(app, listener)
    assert execution.input["event"]["data"] == {"amount": 12}
    assert execution.input["event"]["topic"] == "orders"
    assert await executions(app, ignored) == []
