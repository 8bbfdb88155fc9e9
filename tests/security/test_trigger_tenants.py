"""Trigger calls never take their tenant from the request: a ``?tenant=`` counts only
with the binding the trigger manager signed into the URL it created.

Every call here carries a valid invoker token (the attacker holds one: a replayed
token, a compromised job), so what is tested is the tenant binding alone.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from edge_fixtures import client_for, invoker_headers

from shared.adapters.cloud_scheduler import CloudSchedulerBackend, SchedulerConfig
from shared.api.edge import Edge
from shared.app.service import WorkflowApp
from shared.composition import LocalRuntime, build_local
from shared.composition.edge import FUNCTION_APPS, build_edge
from shared.ports import ScheduleSpec
from shared.ports.tenant_binding import binding_for
from shared.settings import Settings

KEY = "trigger-binding-key-of-the-tests"
STEPS = [{"id": "a", "type": "transform", "config": {"set": {"n": 1}}}]
TICK = {"X-CloudScheduler-ScheduleTime": "2026-01-05T08:00:00Z"}
PUSH = {"message": {"data": "e30=", "messageId": "m-1", "attributes": {}}}


@pytest.fixture
async def bound_runtime(tmp_path: Path) -> AsyncIterator[LocalRuntime]:
    settings = Settings.local_mode(db_path=str(tmp_path / "t.db"), trigger_binding_key=KEY)
    local = build_local(settings)
    await local.start()
    try:
        yield local
    finally:
        await local.stop()


@pytest.fixture
async def bound_edge(bound_runtime: LocalRuntime) -> AsyncIterator[Edge]:
    edge = build_edge(bound_runtime.settings, runtime=bound_runtime)
    await edge.start()
    try:
        yield edge
    finally:
        await edge.stop()


@pytest.fixture
async def handler(bound_edge: Edge) -> AsyncIterator[httpx.AsyncClient]:
    app = FUNCTION_APPS["trigger-handler"](bound_edge)
    async with client_for(app, "http://fn.test") as client:
        client.headers.update(invoker_headers(bound_edge, "scheduler"))
        yield client


async def _workflows(app: WorkflowApp, trigger: dict[str, str]) -> dict[str, str]:
    """One workflow with ``trigger`` in each of the tenants acme and beta."""
    ids = {}
    for tenant in ("acme", "beta"):
        made = await app.for_tenant(tenant).create_workflow(
            {"name": f"{tenant}-flow", "trigger": trigger, "steps": STEPS}
        )
        ids[tenant] = made.id
    return ids


async def _started(app: WorkflowApp, ids: dict[str, str]) -> dict[str, int]:
    counts = {}
    for tenant, workflow_id in ids.items():
        listing = await app.for_tenant(tenant).list_executions(workflow_id=workflow_id)
        counts[tenant] = len(listing.items)
    for tenant in ("default", "acme", "beta"):  # nothing anywhere else either
        counts[f"all:{tenant}"] = len((await app.for_tenant(tenant).list_executions()).items)
    return counts


def _refused(response: httpx.Response) -> None:
    assert response.status_code == 403, response.text
    assert response.json()["error"]["code"] == "TENANT_BINDING_INVALID"


async def test_spoofed_schedule_ticks_start_nothing_in_any_tenant(
    bound_runtime: LocalRuntime, handler: httpx.AsyncClient
) -> None:
    app = bound_runtime.app
    ids = await _workflows(app, {"type": "schedule", "cron": "0 8 * * 1"})
    acme, beta = ids["acme"], ids["beta"]
    acme_binding = binding_for(KEY, f"schedule/{acme}", "acme")
    for path in (
        f"/schedule/{beta}?tenant=beta",  # no binding
        f"/schedule/{beta}?tenant=beta&binding=00ff",  # a made-up one
        f"/schedule/{beta}?tenant=beta&binding={acme_binding}",  # acme's, on beta's job
        f"/schedule/{acme}?tenant=beta&binding={acme_binding}",  # acme's job, beta named
        f"/schedule/{beta}?tenant=acme&binding={acme_binding}",  # acme's, another workflow
        f"/schedule/{acme}?tenant=acme&binding={binding_for('other', f'schedule/{acme}', 'acme')}",
    ):
        _refused(await handler.post(path, headers=TICK))
    # no tenant named: the runtime's own (default), where neither workflow exists
    assert (await handler.post(f"/schedule/{beta}", headers=TICK)).status_code == 404
    assert await _started(app, ids) == {
        "acme": 0,
        "beta": 0,
        "all:default": 0,
        "all:acme": 0,
        "all:beta": 0,
    }
    ok = await handler.post(f"/schedule/{acme}?tenant=acme&binding={acme_binding}", headers=TICK)
    assert (ok.status_code, ok.json()["status"]) == (200, "started")
    counts = await _started(app, ids)
    assert (counts["acme"], counts["beta"], counts["all:default"]) == (1, 0, 0)


async def test_spoofed_pubsub_pushes_start_nothing_in_any_tenant(
    bound_runtime: LocalRuntime, bound_edge: Edge, handler: httpx.AsyncClient
) -> None:
    app = bound_runtime.app
    ids = await _workflows(app, {"type": "event", "topic": "orders"})
    headers = invoker_headers(bound_edge, "pubsub")
    beta_binding = binding_for(KEY, "pubsub", "beta")
    for query in (
        "topic=orders&tenant=acme",
        f"topic=orders&tenant=acme&binding={beta_binding}",
        f"topic=orders&tenant=acme&binding={binding_for(KEY, 'schedule/x', 'acme')}",
    ):
        _refused(await handler.post(f"/pubsub?{query}", json=PUSH, headers=headers))
    counts = await _started(app, ids)
    assert sum(counts.values()) == 0
    query = f"topic=orders&tenant=beta&binding={beta_binding}"
    ok = await handler.post(f"/pubsub?{query}", json=PUSH, headers=headers)
    assert ok.status_code == 200, ok.text
    counts = await _started(app, ids)
    assert (counts["acme"], counts["beta"]) == (0, 1)


async def test_without_a_binding_key_no_tenant_can_be_named(
    runtime: LocalRuntime, edge: Edge
) -> None:
    ids = await _workflows(runtime.app, {"type": "schedule", "cron": "0 8 * * 1"})
    path = f"/schedule/{ids['acme']}?tenant=acme&binding={binding_for('', 'x', 'acme')}"
    async with client_for(FUNCTION_APPS["trigger-handler"](edge), "http://fn.test") as client:
        headers = {**TICK, **invoker_headers(edge, "scheduler")}
        _refused(await client.post(path, headers=headers))
    assert sum((await _started(runtime.app, ids)).values()) == 0


async def test_the_job_the_manager_creates_reaches_its_own_tenant_only(
    bound_runtime: LocalRuntime, handler: httpx.AsyncClient
) -> None:
    """The URL of the Cloud Scheduler job made for an acme workflow, called as Scheduler
    calls it, starts in acme; the same URL with beta swapped in starts nothing."""
    app = bound_runtime.app
    ids = await _workflows(app, {"type": "schedule", "cron": "0 8 * * 1"})
    base = "https://trigger-handler.example"
    backend = CloudSchedulerBackend(
        SchedulerConfig(parent="projects/p/locations/l", target_url=base, binding_key=KEY)
    )
    job = backend.job_for(ScheduleSpec(ids["acme"], "acme", "0 8 * * 1"))
    path = job.http_target.uri.removeprefix(base)
    assert "tenant=acme&binding=" in path
    _refused(await handler.post(path.replace("tenant=acme", "tenant=beta"), headers=TICK))
    assert (await handler.post(path, headers=TICK)).json()["status"] == "started"
    counts = await _started(app, ids)
    assert (counts["acme"], counts["beta"], counts["all:default"]) == (1, 0, 0)
