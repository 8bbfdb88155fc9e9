"""CloudSchedulerBackend with the real google-cloud-scheduler client against a gRPC fake,
driven by the TriggerManager over a real (in-memory) app."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import grpc
import pytest
from _fake_scheduler import FakeCloudScheduler, State
from _grpc_fake import serve
from google.cloud import scheduler_v1

from shared.adapters.cloud_scheduler import CloudSchedulerBackend, JobPolicy, SchedulerConfig
from shared.app.service import WorkflowApp
from shared.app.trigger_manager import TriggerManager
from shared.composition import LocalRuntime, build_local, keep_paused_if_inactive
from shared.errors import TransientError, WorkflowError
from shared.ports import ScheduleSpec
from shared.ports.tenant_binding import binding_for
from shared.settings import Settings

PARENT = "projects/demo/locations/europe-west1"
HANDLER = "https://trigger-handler-abc-ew.a.run.app"
ACCOUNT = "scheduler-invoker@demo.iam.gserviceaccount.com"
BINDING_KEY = "binding-key-of-the-tests"
STEPS = [{"id": "s", "type": "transform", "config": {"set": {"x": 1}}}]


@pytest.fixture
def fake() -> Iterator[tuple[FakeCloudScheduler, str]]:
    service = FakeCloudScheduler()
    with serve(service) as address:
        yield service, address


@pytest.fixture
async def runtime() -> AsyncIterator[LocalRuntime]:
    local = build_local(Settings.local_mode(), memory=True)
    try:
        yield local
    finally:
        await local.stop()


def make_backend(address: str, app: WorkflowApp | None, **overrides: Any) -> CloudSchedulerBackend:
    fields: dict[str, Any] = {
        "parent": PARENT,
        "target_url": HANDLER,
        "service_account": ACCOUNT,
        "endpoint": address,
        "binding_key": BINDING_KEY,
    }
    fields.update(overrides)
    keep = keep_paused_if_inactive(app) if app is not None else None
    return CloudSchedulerBackend(SchedulerConfig(**fields), keep_paused=keep)


@pytest.fixture
async def manager(
    fake: tuple[FakeCloudScheduler, str], runtime: LocalRuntime
) -> AsyncIterator[TriggerManager]:
    backend = make_backend(fake[1], runtime.app)
    manager = TriggerManager(runtime.app, backend)
    yield manager
    await manager.stop()


async def create(app: WorkflowApp, cron: str = "0 * * * *", **fields: Any) -> str:
    trigger = fields.pop("trigger", {"type": "schedule", "cron": cron})
    body = {"name": fields.pop("name", "wf"), "trigger": trigger, "steps": STEPS, **fields}
    return (await app.create_workflow(body)).id


def job(fake: FakeCloudScheduler, workflow_id: str) -> scheduler_v1.Job:
    return fake.jobs[f"{PARENT}/jobs/wfe-{workflow_id}"]


async def test_job_follows_the_workflow(
    fake: tuple[FakeCloudScheduler, str], runtime: LocalRuntime, manager: TriggerManager
) -> None:
    service, _ = fake
    app = runtime.app
    workflow_id = await create(app, "*/5 * * * *")
    key = f"schedule:wfe-{workflow_id}"

    assert (await manager.on_workflow_changed(workflow_id)).added == (key,)
    created = job(service, workflow_id)
    assert created.schedule == "*/5 * * * *" and created.time_zone == "UTC"
    assert created.state == State.ENABLED
    target = created.http_target
    assert target.uri == f"{HANDLER}/schedule/{workflow_id}"
    assert target.http_method == scheduler_v1.HttpMethod.POST
    assert (target.oidc_token.service_account_email, target.oidc_token.audience) == (
        ACCOUNT,
        HANDLER,
    )
    assert created.retry_config.retry_count == 3
    assert created.retry_config.min_backoff_duration == timedelta(seconds=5)
    assert created.attempt_deadline == timedelta(seconds=60)

    service.calls.clear()
    again = await manager.on_workflow_changed(workflow_id)
    assert (again.changed, again.unchanged) == (False, 1)
    assert service.mutations() == [] and service.called() == ["GetJob"]

    raw = (await app.get_workflow(workflow_id)).to_json_dict()
    raw["trigger"] = {"type": "schedule", "cron": "30 9 * * 1-5", "timezone": "Europe/Paris"}
    await app.update_workflow(workflow_id, raw)
    service.calls.clear()
    assert (await manager.on_workflow_changed(workflow_id)).updated == (key,)
    assert service.mutations() == ["UpdateJob"]
    mask = service.calls[-1][1].update_mask.paths
    assert sorted(mask) == ["schedule", "time_zone"]
    assert (job(service, workflow_id).schedule, job(service, workflow_id).time_zone) == (
        "30 9 * * 1-5",
        "Europe/Paris",
    )

    await app.set_active(workflow_id, False)
    service.calls.clear()
    assert (await manager.on_workflow_changed(workflow_id)).removed == (key,)
    assert service.mutations() == ["PauseJob"]
    assert job(service, workflow_id).state == State.PAUSED
    service.calls.clear()
    assert not (await manager.on_workflow_changed(workflow_id)).changed
    assert service.mutations() == []

    await app.set_active(workflow_id, True)
    service.calls.clear()
    assert (await manager.on_workflow_changed(workflow_id)).updated == (key,)
    assert service.mutations() == ["ResumeJob"]
    assert job(service, workflow_id).state == State.ENABLED

    await app.delete_workflow(workflow_id)
    service.calls.clear()
    assert (await manager.on_workflow_changed(workflow_id)).removed == (key,)
    assert service.mutations() == ["DeleteJob"]
    assert service.jobs == {}


async def test_reconcile_all_twice_makes_no_mutating_call(
    fake: tuple[FakeCloudScheduler, str], runtime: LocalRuntime, manager: TriggerManager
) -> None:
    service, address = fake
    app = runtime.app
    hourly = await create(app, "0 * * * *", name="hourly")
    daily = await create(app, "0 6 * * *", name="daily")
    await create(app, "* * * * *", name="never-active", isActive=False)
    await create(app, name="event", trigger={"type": "event", "topic": "orders"})
    await create(app, name="manual", trigger={"type": "manual"})
    foreign = scheduler_v1.Job(name=f"{PARENT}/jobs/someone-else", schedule="* * * * *")
    stale = make_backend(address, None).job_for(
        ScheduleSpec("gone-workflow", "default", "1 * * * *")
    )
    service.jobs[foreign.name] = foreign
    service.jobs[stale.name] = stale

    first = await manager.reconcile_all()
    assert sorted(first.added) == sorted([f"schedule:wfe-{hourly}", f"schedule:wfe-{daily}"])
    assert first.removed == ("schedule:wfe-gone-workflow",)
    assert sorted(service.jobs) == sorted(
        [foreign.name, f"{PARENT}/jobs/wfe-{hourly}", f"{PARENT}/jobs/wfe-{daily}"]
    )

    service.calls.clear()
    second = await manager.reconcile_all()
    assert (second.changed, second.unchanged) == (False, 2)
    assert service.mutations() == []
    assert service.called() == ["ListJobs", "ListJobs"], "two pages of jobs, nothing else"


async def test_tenant_jobs_and_their_pause(
    fake: tuple[FakeCloudScheduler, str], runtime: LocalRuntime, manager: TriggerManager
) -> None:
    service, _ = fake
    acme = runtime.app.for_tenant("acme")
    workflow_id = await create(acme, "15 * * * *")
    await manager.on_workflow_changed(workflow_id, "acme")
    binding = binding_for(BINDING_KEY, f"schedule/{workflow_id}", "acme")
    assert job(service, workflow_id).http_target.uri == (
        f"{HANDLER}/schedule/{workflow_id}?tenant=acme&binding={binding}"
    )
    assert "tenant acme" in job(service, workflow_id).description
    await acme.set_active(workflow_id, False)
    await manager.on_workflow_changed(workflow_id, "acme")
    assert job(service, workflow_id).state == State.PAUSED, "found in its own tenant"
    assert len(await manager.desired()) == 0
    assert not (await manager.reconcile_all()).changed, "a full pass keeps it paused"


async def test_without_keep_paused_a_deactivated_job_is_deleted(
    fake: tuple[FakeCloudScheduler, str], runtime: LocalRuntime
) -> None:
    service, address = fake
    manager = TriggerManager(runtime.app, make_backend(address, None, service_account=""))
    workflow_id = await create(runtime.app)
    await manager.on_workflow_changed(workflow_id)
    assert "oidc_token" not in job(service, workflow_id).http_target
    await runtime.app.set_active(workflow_id, False)
    await manager.on_workflow_changed(workflow_id)
    assert service.jobs == {}
    await manager.stop()


async def test_a_job_created_meanwhile_is_updated(
    fake: tuple[FakeCloudScheduler, str], runtime: LocalRuntime, manager: TriggerManager
) -> None:
    service, address = fake
    workflow_id = await create(runtime.app, "0 * * * *")
    spec = ScheduleSpec(workflow_id, "default", "5 * * * *")
    service.jobs[f"{PARENT}/jobs/wfe-{workflow_id}"] = make_backend(address, None).job_for(spec)
    service.fail_next("GetJob", grpc.StatusCode.NOT_FOUND)  # read before the other's create
    report = await manager.on_workflow_changed(workflow_id)
    assert report.added == (f"schedule:wfe-{workflow_id}",)
    assert service.called() == ["GetJob", "CreateJob", "GetJob", "UpdateJob"]
    assert job(service, workflow_id).schedule == "0 * * * *"


async def test_a_disabled_or_failed_job_is_repaired(
    fake: tuple[FakeCloudScheduler, str], runtime: LocalRuntime, manager: TriggerManager
) -> None:
    service, _ = fake
    first = await create(runtime.app, name="a")
    second = await create(runtime.app, name="b")
    await manager.reconcile_all()
    job(service, first).state = State.DISABLED
    job(service, second).state = State.UPDATE_FAILED
    service.calls.clear()
    report = await manager.reconcile_all()
    assert sorted(report.updated) == sorted([f"schedule:wfe-{first}", f"schedule:wfe-{second}"])
    assert sorted(service.mutations()) == ["ResumeJob", "UpdateJob"]


async def test_errors_are_translated_and_the_other_jobs_still_reconciled(
    fake: tuple[FakeCloudScheduler, str], runtime: LocalRuntime, manager: TriggerManager
) -> None:
    service, _ = fake
    await create(runtime.app, name="a")
    await create(runtime.app, name="b")
    service.fail_next("CreateJob", grpc.StatusCode.UNAVAILABLE)
    with pytest.raises(TransientError):
        await manager.reconcile_all()
    assert len(service.jobs) == 1, "the second job was still created"
    await manager.reconcile_all()
    assert len(service.jobs) == 2
    service.fail_next("ListJobs", grpc.StatusCode.PERMISSION_DENIED)
    with pytest.raises(WorkflowError) as caught:
        await manager.reconcile_all()
    assert (caught.value.code, caught.value.retryable) == ("SCHEDULER_ERROR", False)


def test_config_and_policy_are_validated() -> None:
    with pytest.raises(ValueError):
        SchedulerConfig(parent="projects/p", target_url=HANDLER)
    with pytest.raises(ValueError):
        SchedulerConfig(parent=PARENT, target_url="trigger-handler")
    with pytest.raises(ValueError):
        JobPolicy(attempt_deadline_seconds=5)
    with pytest.raises(ValueError):
        JobPolicy(retry_count=9)
