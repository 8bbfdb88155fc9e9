"""The retention sweep through the doors: ``POST /api/v1/admin/retention:sweep`` on the
real management app (counts, ``dryRun``), ``retentionDays`` through REST and GraphQL, and
``wfe retention sweep`` on a real SQLite file (exit codes)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from edge_fixtures import _settle, client_for

from shared.adapters.clock import ManualClock
from shared.api.auth import LocalDevAuthenticator
from shared.api.rest import create_management_app
from shared.app.service import StartRequest
from shared.cli.main import main
from shared.composition import LocalRuntime, build_local
from shared.composition.edge import build_edge
from shared.dev.server import DevOptions, DevServer
from shared.models import ExecutionStatus
from shared.settings import Settings

API = "/api/v1"
SWEEP = f"{API}/admin/retention:sweep"
TENANTS = f"{API}/admin/tenants"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
FLOW = {"name": "r", "steps": [{"id": "a", "type": "transform", "config": {"set": {"n": 1}}}]}
COUNTS = {"executions", "runs", "events", "signals", "joins", "checkpoints", "bytesReleased"}


@dataclass
class Deployment:
    runtime: LocalRuntime
    clock: ManualClock
    api: httpx.AsyncClient


@pytest.fixture
async def d(tmp_path: Path) -> AsyncIterator[Deployment]:
    """Local development mode (a platform admin) over a runtime on a manual clock."""
    clock = ManualClock(T0)
    runtime = build_local(Settings.local_mode(db_path=str(tmp_path / "r.db")), clock=clock)
    await runtime.start(sweep=False)
    edge = build_edge(runtime.settings, runtime=runtime, authenticator=LocalDevAuthenticator())
    await edge.start()
    try:
        async with client_for(create_management_app(edge, lifespan=False)) as api:
            yield Deployment(runtime, clock, api)
    finally:
        await edge.stop()
        await _settle(runtime)
        await runtime.stop()


async def finished(runtime: LocalRuntime, tenant: str, count: int) -> list[str]:
    app = runtime.app.for_tenant(tenant)
    workflow = await app.create_workflow({**FLOW, "name": f"r-{tenant}"})
    ids = [(await app.start_execution(StartRequest(workflow.id, {}))).id for _ in range(count)]
    assert await runtime.queue.join(30.0)
    for execution_id in ids:
        found = await runtime.store.get_execution(execution_id)
        assert found is not None and found.status == ExecutionStatus.SUCCEEDED
    return ids


async def test_a_platform_admin_sweeps_and_a_dry_run_deletes_nothing(d: Deployment) -> None:
    ids = await finished(d.runtime, "default", 3)
    held = await d.runtime.store.stored_bytes("default")
    d.clock.advance(timedelta(days=31))

    dry = await d.api.post(SWEEP, params={"dryRun": "true"})
    assert dry.status_code == 200, dry.text
    assert dry.json()["dryRun"] is True and dry.json()["executions"] == 3
    assert dry.json()["tenants"] == {"default": 3}
    assert all([await d.runtime.store.get_execution(i) for i in ids])
    assert await d.runtime.store.stored_bytes("default") == held

    swept = await d.api.post(SWEEP)
    assert swept.status_code == 200, swept.text
    body: dict[str, Any] = swept.json()
    assert COUNTS | {"dryRun", "auditEntries", "rateBuckets", "tenants", "more"} == set(body)
    assert (body["dryRun"], body["executions"], body["runs"], body["more"]) == (
        False,
        3,
        3,
        False,
    )
    assert body["bytesReleased"] == held > 0 and body["tenants"] == {"default": 3}
    assert [await d.runtime.store.get_execution(i) for i in ids] == [None] * 3
    listed = await d.api.get(f"{API}/executions")
    assert listed.json()["items"] == []
    again = (await d.api.post(SWEEP)).json()
    assert again["executions"] == 0 and again["bytesReleased"] == 0
    bad = await d.api.post(SWEEP, params={"dryRun": "maybe"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "INVALID_INPUT"


async def test_retention_days_round_trip_through_rest_and_graphql(d: Deployment) -> None:
    made = await d.api.post(TENANTS, json={"id": "acme", "quotas": {"retentionDays": 7}})
    assert made.status_code == 201, made.text
    assert made.json()["quotas"] == {"retentionDays": 7}
    for wrong in (0, 3651, 1.5):
        refused = await d.api.put(f"{TENANTS}/acme/quotas", json={"retentionDays": wrong})
        assert refused.status_code == 422, wrong
    answer = await d.api.post(
        "/graphql",
        json={
            "query": 'mutation { setTenantQuotas(id: "acme", quotas: {retentionDays: 2})'
            " { quotas { retentionDays maxWorkflows } } }"
        },
    )
    assert answer.json()["data"]["setTenantQuotas"]["quotas"] == {
        "retentionDays": 2,
        "maxWorkflows": None,
    }
    read = await d.api.post(
        "/graphql", json={"query": 'query { tenant(id: "acme") { quotas { retentionDays } } }'}
    )
    assert read.json()["data"]["tenant"]["quotas"] == {"retentionDays": 2}
    zero = await d.api.post(
        "/graphql",
        json={
            "query": 'mutation { setTenantQuotas(id: "acme", quotas: {retentionDays: 0}) { id } }'
        },
    )
    assert zero.json()["errors"][0]["extensions"]["code"] == "VALIDATION_FAILED"
    assert (await d.api.get(f"{TENANTS}/acme")).json()["quotas"] == {"retentionDays": 2}

    acme = await finished(d.runtime, "acme", 1)
    default = await finished(d.runtime, "default", 1)
    d.clock.advance(timedelta(days=3))
    swept = (await d.api.post(SWEEP)).json()
    assert swept["tenants"] == {"acme": 1}  # its 2 days, not the 30-day default
    assert await d.runtime.store.get_execution(acme[0]) is None
    assert await d.runtime.store.get_execution(default[0]) is not None


def test_the_cli_sweeps_a_sqlite_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "wfe.db"

    async def old_executions() -> list[str]:
        clock = ManualClock(datetime.now(UTC) - timedelta(days=40))
        runtime = build_local(Settings.local_mode(db_path=str(db)), clock=clock)
        await runtime.start(sweep=False)
        try:
            return await finished(runtime, "default", 2)
        finally:
            await runtime.stop()

    ids = asyncio.run(old_executions())

    assert main(["retention", "sweep", "--dry-run", "--db", str(db)]) == 0
    dry = json.loads(capsys.readouterr().out)
    assert (dry["dryRun"], dry["executions"], dry["tenants"]) == (True, 2, {"default": 2})
    assert main(["retention", "sweep", "--db", str(db)]) == 0
    swept = json.loads(capsys.readouterr().out)
    assert (swept["executions"], swept["runs"], swept["more"]) == (2, 2, False)
    assert swept["bytesReleased"] > 0

    async def left() -> list[Any]:
        runtime = build_local(Settings.local_mode(db_path=str(db)))
        try:
            return [await runtime.store.get_execution(i) for i in ids]
        finally:
            await runtime.stop()

    assert asyncio.run(left()) == [None, None]
    assert main(["retention", "sweep", "--db", str(db)]) == 0
    assert json.loads(capsys.readouterr().out)["executions"] == 0
    missing = tmp_path / "absent.db"
    assert main(["retention", "sweep", "--db", str(missing)]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "NOT_FOUND" in captured.err
    assert not missing.exists()
    closed = ["retention", "sweep", "--dry-run", "--url", "http://127.0.0.1:9"]
    assert main(closed) == 1  # nothing listens: an error line, not a traceback
    assert "UNREACHABLE" in capsys.readouterr().err


async def test_wfe_dev_sweeps_at_start(tmp_path: Path) -> None:
    """``wfe dev`` (``DevServer``) runs the retention loop: an execution that finished 40
    days before the server starts is gone soon after it started."""
    db = tmp_path / "wfe.db"
    clock = ManualClock(datetime.now(UTC) - timedelta(days=40))
    before = build_local(Settings.local_mode(db_path=str(db)), clock=clock)
    await before.start(sweep=False)
    try:
        old = await finished(before, "default", 1)
    finally:
        await before.stop()

    server = DevServer(
        Settings.local_mode(str(db)), DevOptions(port=8080, examples=None, demo_port=0)
    )
    await server.start()
    try:
        assert server.runtime is not None
        for _ in range(250):
            if await server.runtime.store.get_execution(old[0]) is None:
                break
            await asyncio.sleep(0.02)
        assert await server.runtime.store.get_execution(old[0]) is None
        assert await server.runtime.store.stored_bytes("default") == 0
    finally:
        await server.stop()
