"""Issue 13/16, retention: only a platform admin may sweep (it deletes every tenant's
old executions). An owner or admin of a tenant, a tenant key issued by the registry, no
credentials and forged or foreign ID tokens are refused and nothing is deleted; the
identity Cloud Scheduler calls with (an ID token of the retention service account,
configured as ``<email>:*:viewer`` in ``WFE_ID_TOKEN_PRINCIPALS`` as Terraform does) is
a platform admin and sweeps.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from edge_fixtures import _settle, client_for

from shared.adapters.clock import ManualClock
from shared.api.auth import hash_api_key
from shared.api.edge import Edge
from shared.api.rest import create_management_app
from shared.app.service import StartRequest
from shared.composition import LocalRuntime, build_local
from shared.composition.edge import build_edge
from shared.settings import Settings

API = "/api/v1"
SWEEP = f"{API}/admin/retention:sweep"
AUDIENCE = "https://wfe-create-123.europe-west1.run.app"
SCHEDULER = "wfe-retention@proj.iam.gserviceaccount.com"
SALT = "salt-0b7e"
ENTRIES = {
    "key-platform-41d2": ("root", "*", "owner"),
    "key-a-owner-0c6a": ("olga", "tenant-a", "owner"),
    "key-a-admin-8e21": ("adam", "tenant-a", "admin"),
    "key-b-owner-f37b": ("bert", "tenant-b", "owner"),
}
ROOT, A_OWNER, A_ADMIN, B_OWNER = ({"X-API-Key": key} for key in ENTRIES)
FLOW = {"name": "f", "steps": [{"id": "a", "type": "transform", "config": {"set": {"n": 1}}}]}
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@dataclass
class Deployment:
    runtime: LocalRuntime
    edge: Edge
    api: httpx.AsyncClient
    old: list[str]
    """Executions of tenant-a and tenant-b finished 31 days ago: past retention."""


@pytest.fixture
async def d(tmp_path: Path) -> AsyncIterator[Deployment]:
    keys = ",".join(
        f"{hash_api_key(key, SALT)}:{subject}:{tenant}:{role}"
        for key, (subject, tenant, role) in ENTRIES.items()
    )
    settings = Settings.local_mode(
        db_path=str(tmp_path / "s.db"),
        api_keys=keys,
        api_key_salt=SALT,
        rate_limits=False,
        id_token_audience=AUDIENCE,
        id_token_principals=f"{SCHEDULER}:*:viewer",
    )
    clock = ManualClock(T0)
    runtime = build_local(settings, clock=clock)
    await runtime.start(sweep=False)
    edge = build_edge(settings, runtime=runtime)
    await edge.start()
    try:
        old = []
        for tenant in ("tenant-a", "tenant-b"):
            assert runtime.tenants is not None
            await runtime.tenants.create_tenant({"id": tenant})
            app = runtime.app.for_tenant(tenant)
            workflow = await app.create_workflow(FLOW)
            old.append((await app.start_execution(StartRequest(workflow.id, {}))).id)
        assert await runtime.queue.join(30.0)
        clock.advance(timedelta(days=31))
        async with client_for(create_management_app(edge, lifespan=False)) as api:
            yield Deployment(runtime, edge, api, old)
    finally:
        await edge.stop()
        await _settle(runtime)
        await runtime.stop()


async def all_kept(d: Deployment) -> bool:
    return all([await d.runtime.store.get_execution(i) is not None for i in d.old])


def bearer(d: Deployment, email: str, audience: str = AUDIENCE) -> dict[str, str]:
    assert d.edge.identity.minter is not None
    return {"Authorization": f"Bearer {d.edge.identity.minter.mint(audience, email)}"}


async def test_tenant_principals_may_not_sweep(d: Deployment) -> None:
    assert d.runtime.tenants is not None
    _, secret = await d.runtime.tenants.issue_key("tenant-a", "o", "owner")
    registry_owner = {"X-API-Key": secret}
    for caller in (A_OWNER, A_ADMIN, B_OWNER, registry_owner):
        for params in ({}, {"dryRun": "true"}):
            answer = await d.api.post(SWEEP, params=params, headers=caller)
            assert answer.status_code == 403, (caller, answer.text)
            assert answer.json()["error"]["code"] == "FORBIDDEN"
    assert await all_kept(d)


async def test_no_or_bad_credentials_are_401_and_foreign_tokens_refused(d: Deployment) -> None:
    assert (await d.api.post(SWEEP)).status_code == 401
    assert (await d.api.post(SWEEP, headers={"X-API-Key": "guess"})).status_code == 401
    other_audience = bearer(d, SCHEDULER, "https://wfe-trigger-handler-123.run.app")
    assert (await d.api.post(SWEEP, headers=other_audience)).status_code == 401
    stranger = await d.api.post(SWEEP, headers=bearer(d, "mallory@proj.iam.gserviceaccount.com"))
    assert (stranger.status_code, stranger.json()["error"]["code"]) == (403, "UNKNOWN_PRINCIPAL")
    assert await all_kept(d)


async def test_the_scheduler_identity_and_a_platform_key_sweep(d: Deployment) -> None:
    dry = await d.api.post(SWEEP, params={"dryRun": "true"}, headers=ROOT)
    assert dry.status_code == 200 and dry.json()["executions"] == 2
    assert await all_kept(d)
    swept = await d.api.post(SWEEP, headers=bearer(d, SCHEDULER))
    assert swept.status_code == 200, swept.text
    assert swept.json()["tenants"] == {"tenant-a": 1, "tenant-b": 1}
    assert [await d.runtime.store.get_execution(i) for i in d.old] == [None, None]
