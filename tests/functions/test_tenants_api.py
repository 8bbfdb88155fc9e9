"""The tenant admin REST API (``/api/v1/admin/tenants``) on the real management app,
and the quotas it sets, enforced at workflow create/import and execution start."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from shared.app.tenants import QuotaExceeded
from shared.composition import LocalRuntime
from shared.ports import StepTask
from shared.task_codec import decode_task

API = "/api/v1"
TENANTS = f"{API}/admin/tenants"
FLOW = {"name": "q", "steps": [{"id": "a", "type": "transform", "config": {"set": {"n": 1}}}]}
WAITING = {
    "name": "parked",
    "steps": [
        {"id": "w", "type": "wait_for_event", "config": {"event": "go", "timeoutSeconds": 600}}
    ],
}


def _named(flow: dict[str, Any]) -> dict[str, Any]:
    return {**flow, "name": f"{flow['name']}-{uuid.uuid4().hex[:8]}"}


async def test_a_tenant_is_created_listed_changed_and_disabled(api: httpx.AsyncClient) -> None:
    made = await api.post(
        TENANTS, json={"id": "acme", "displayName": "Acme", "quotas": {"maxWorkflows": 5}}
    )
    assert made.status_code == 201, made.text
    assert made.headers["location"] == f"{TENANTS}/acme"
    assert made.json()["quotas"] == {"maxWorkflows": 5}
    assert (await api.post(TENANTS, json={"id": "acme"})).json()["error"]["code"] == (
        "TENANT_EXISTS"
    )
    await api.post(TENANTS, json={"id": "beta"})
    listed = (await api.get(TENANTS, params={"limit": 1})).json()
    assert [t["id"] for t in listed["items"]] == ["acme"] and listed["nextAfter"] == "acme"
    rest = (await api.get(TENANTS, params={"after": "acme"})).json()
    assert [t["id"] for t in rest["items"]] == ["beta"]
    changed = await api.patch(f"{TENANTS}/acme", json={"displayName": "Acme Corp."})
    assert changed.json()["displayName"] == "Acme Corp."
    assert changed.json()["quotas"] == {"maxWorkflows": 5}
    quotas = await api.put(f"{TENANTS}/acme/quotas", json={"maxRunningExecutions": 2})
    assert quotas.json()["quotas"] == {"maxRunningExecutions": 2}
    disabled = await api.post(f"{TENANTS}/acme/disable")
    assert disabled.json()["disabled"] is True
    assert (await api.get(f"{TENANTS}/acme")).json()["disabled"] is True
    assert (await api.post(f"{TENANTS}/acme/enable")).json()["disabled"] is False


async def test_bad_tenant_input_is_refused_with_a_pointer(api: httpx.AsyncClient) -> None:
    bad_id = await api.post(TENANTS, json={"id": "Not A Slug"})
    assert bad_id.status_code == 422
    assert bad_id.json()["error"]["errors"][0]["path"] == "/id"
    bad_quota = await api.put(f"{TENANTS}/x/quotas", json={"maxWorkflows": -1})
    assert bad_quota.status_code == 422
    assert bad_quota.json()["error"]["path"] == "/maxWorkflows"
    unknown = await api.post(TENANTS, json={"id": "ok", "owner": "me"})
    assert unknown.status_code == 422
    assert (await api.get(f"{TENANTS}/ghost")).status_code == 404
    assert (await api.get(TENANTS)).json()["items"] == []  # nothing half-written


async def test_an_issued_key_works_until_it_is_revoked(api: httpx.AsyncClient) -> None:
    await api.post(TENANTS, json={"id": "acme"})
    issued = await api.post(f"{TENANTS}/acme/keys", json={"subject": "ci", "role": "editor"})
    assert issued.status_code == 201, issued.text
    secret, key = issued.json()["secret"], issued.json()["key"]
    assert secret.startswith(f"wfe_{key['id']}_") and "secretSha256" not in key
    session = await api.get(f"{API}/session", headers={"X-API-Key": secret})
    assert session.json()["tenant"] == "acme" and session.json()["role"] == "editor"
    bearer = await api.get(f"{API}/session", headers={"Authorization": f"Bearer {secret}"})
    assert bearer.json()["principal"] == "ci"
    forged = f"wfe_{key['id']}_{'A' * 43}"  # a known key id, a guessed secret
    assert (await api.get(f"{API}/session", headers={"X-API-Key": forged})).status_code == 401
    listed = (await api.get(f"{TENANTS}/acme/keys")).json()["items"]
    assert [k["id"] for k in listed] == [key["id"]]
    assert secret not in str(listed)
    revoked = await api.delete(f"{TENANTS}/acme/keys/{key['id']}")
    assert revoked.status_code == 200 and revoked.json()["revokedAt"]
    refused = await api.get(f"{API}/session", headers={"X-API-Key": secret})
    assert refused.status_code == 401


async def test_a_disabled_tenants_keys_are_refused(api: httpx.AsyncClient) -> None:
    await api.post(TENANTS, json={"id": "acme"})
    secret = (await api.post(f"{TENANTS}/acme/keys", json={"subject": "s"})).json()["secret"]
    assert (await api.get(f"{API}/workflows", headers={"X-API-Key": secret})).status_code == 200
    await api.post(f"{TENANTS}/acme/disable")
    refused = await api.get(f"{API}/workflows", headers={"X-API-Key": secret})
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "TENANT_DISABLED"
    as_header = await api.get(f"{API}/workflows", headers={"X-Tenant": "acme"})
    assert as_header.status_code == 403  # local mode's X-Tenant too
    issue = await api.post(f"{TENANTS}/acme/keys", json={"subject": "s2"})
    assert issue.json()["error"]["code"] == "TENANT_DISABLED"


async def test_max_workflows_refuses_creates_and_whole_imports(api: httpx.AsyncClient) -> None:
    await api.post(TENANTS, json={"id": "acme", "quotas": {"maxWorkflows": 2}})
    acme = {"X-Tenant": "acme"}
    assert (await api.post(f"{API}/workflows", json=_named(FLOW), headers=acme)).status_code == 201
    too_many = [_named(FLOW), _named(FLOW)]
    imported = await api.post(f"{API}/workflows/import", json=too_many, headers=acme)
    assert imported.status_code == 409, imported.text
    assert imported.json()["error"]["code"] == "QUOTA_EXCEEDED"
    assert imported.json()["error"]["details"]["quota"] == "maxWorkflows"
    assert "retry-after" not in imported.headers
    page = (await api.get(f"{API}/workflows", headers=acme)).json()
    assert len(page["items"]) == 1  # the import wrote nothing
    second = await api.post(f"{API}/workflows", json=_named(FLOW), headers=acme)
    assert second.status_code == 201
    third = await api.post(f"{API}/workflows", json=_named(FLOW), headers=acme)
    assert third.status_code == 409 and third.json()["error"]["code"] == "QUOTA_EXCEEDED"
    other = await api.post(f"{API}/workflows", json=_named(FLOW), headers={"X-Tenant": "b"})
    assert other.status_code == 201  # another tenant's quota is its own


async def test_max_definition_bytes_refuses_large_definitions(api: httpx.AsyncClient) -> None:
    await api.post(TENANTS, json={"id": "acme", "quotas": {"maxDefinitionBytes": 400}})
    big = {**_named(FLOW), "description": "x" * 500}
    refused = await api.post(f"{API}/workflows", json=big, headers={"X-Tenant": "acme"})
    assert refused.status_code == 409
    assert refused.json()["error"]["details"]["quota"] == "maxDefinitionBytes"


async def test_max_running_executions_refuses_starts_with_retry_after(
    api: httpx.AsyncClient, runtime: LocalRuntime
) -> None:
    await api.post(TENANTS, json={"id": "acme", "quotas": {"maxRunningExecutions": 2}})
    acme = {"X-Tenant": "acme"}
    flow = (await api.post(f"{API}/workflows", json=_named(WAITING), headers=acme)).json()["id"]
    for _ in range(2):
        started = await api.post(f"{API}/workflows/{flow}/execute", json={}, headers=acme)
        assert started.status_code == 202, started.text
    refused = await api.post(f"{API}/workflows/{flow}/execute", json={}, headers=acme)
    assert refused.status_code == 429, refused.text
    assert refused.json()["error"]["code"] == "QUOTA_EXCEEDED"
    assert refused.json()["error"]["details"]["quota"] == "maxRunningExecutions"
    assert int(refused.headers["retry-after"]) >= 1
    first = (await api.get(f"{API}/executions", headers=acme)).json()["items"][0]["id"]
    cancelled = await api.post(f"{API}/executions/{first}/cancel", json={}, headers=acme)
    assert cancelled.status_code == 200, cancelled.text
    again = await api.post(f"{API}/workflows/{flow}/execute", json={}, headers=acme)
    assert again.status_code == 202  # a finished execution frees its place


async def _gql(
    api: httpx.AsyncClient, query: str, headers: dict[str, str] | None = None, **variables: Any
) -> dict[str, Any]:
    answer = await api.post(
        "/graphql", json={"query": query, "variables": variables}, headers=headers or {}
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def test_graphql_manages_tenants_and_keys(api: httpx.AsyncClient) -> None:
    made = await _gql(
        api,
        'mutation($q: TenantQuotasInput) { createTenant(id: "acme", displayName: "Acme",'
        " quotas: $q) { id displayName quotas { maxWorkflows stepsPerSecond } } }",
        q={"maxWorkflows": 3, "stepsPerSecond": 2.5},
    )
    assert made["data"]["createTenant"] == {
        "id": "acme",
        "displayName": "Acme",
        "quotas": {"maxWorkflows": 3, "stepsPerSecond": 2.5},
    }
    again = await _gql(api, 'mutation { createTenant(id: "acme") { id } }')
    assert again["errors"][0]["extensions"]["code"] == "TENANT_EXISTS"
    bad = await _gql(api, 'mutation { createTenant(id: "../etc") { id } }')
    assert bad["errors"][0]["extensions"]["code"] == "VALIDATION_FAILED"
    quotas = await _gql(
        api,
        'mutation { setTenantQuotas(id: "acme", quotas: {maxRunningExecutions: 4})'
        " { quotas { maxRunningExecutions maxWorkflows } } }",
    )
    assert quotas["data"]["setTenantQuotas"]["quotas"] == {
        "maxRunningExecutions": 4,
        "maxWorkflows": None,
    }
    issued = await _gql(
        api,
        'mutation { issueTenantKey(tenantId: "acme", subject: "ci", role: "owner")'
        " { secret key { id role } } }",
    )
    secret = issued["data"]["issueTenantKey"]["secret"]
    key_id = issued["data"]["issueTenantKey"]["key"]["id"]
    owner = {"X-API-Key": secret}
    mine = await _gql(api, 'query { tenantKeys(tenantId: "acme") { id subject } }', owner)
    assert mine["data"]["tenantKeys"] == [{"id": key_id, "subject": "ci"}]
    listing = await _gql(api, "query { tenants { id } }", owner)
    assert listing["errors"][0]["extensions"]["code"] == "FORBIDDEN"  # owners are no admins
    revoked = await _gql(
        api,
        f'mutation {{ revokeTenantKey(tenantId: "acme", keyId: "{key_id}") {{ revokedAt }} }}',
    )
    assert revoked["data"]["revokeTenantKey"]["revokedAt"]
    answer = await api.post("/graphql", json={"query": "{ tenants { id } }"}, headers=owner)
    assert answer.status_code == 401


async def test_steps_per_second_throttles_step_deliveries(
    api: httpx.AsyncClient, runtime: LocalRuntime
) -> None:
    await api.post(TENANTS, json={"id": "acme", "quotas": {"stepsPerSecond": 0.01}})
    acme = {"X-Tenant": "acme"}
    flow = (await api.post(f"{API}/workflows", json=_named(WAITING), headers=acme)).json()["id"]
    started = await api.post(f"{API}/workflows/{flow}/execute", json={}, headers=acme)
    execution_id = started.json()["id"]
    task = StepTask(execution_id=execution_id, run_id="no-such-run", due_at=datetime.now(UTC))
    with pytest.raises(QuotaExceeded) as refused:
        for _ in range(2):  # the bucket's one token (burst 1): the dispatcher's or ours
            await runtime.app.execute_step(task)
    assert refused.value.retryable and refused.value.details["quota"] == "stepsPerSecond"
    assert refused.value.details["retryAfterSeconds"] >= 50
    other = (await api.post(f"{API}/workflows", json=_named(WAITING))).json()["id"]
    mine = (await api.post(f"{API}/workflows/{other}/execute", json={})).json()["id"]
    for _ in range(3):  # the default tenant has no such quota
        await runtime.app.execute_step(
            StepTask(execution_id=mine, run_id="no-such-run", due_at=datetime.now(UTC))
        )


async def test_local_dispatch_defers_steps_over_the_quota_and_loses_none(
    api: httpx.AsyncClient, runtime: LocalRuntime
) -> None:
    """``make dev`` delivers through the app as execute-step does: the tenant's
    stepsPerSecond applies, refused deliveries wait their Retry-After (without using up
    their attempts), and every execution still ends."""
    await api.post(TENANTS, json={"id": "acme", "quotas": {"stepsPerSecond": 4}})
    acme = {"X-Tenant": "acme"}
    flow = (await api.post(f"{API}/workflows", json=_named(FLOW), headers=acme)).json()["id"]
    ids = [
        (await api.post(f"{API}/workflows/{flow}/execute", json={}, headers=acme)).json()["id"]
        for _ in range(8)
    ]
    deadline = asyncio.get_running_loop().time() + 30
    while asyncio.get_running_loop().time() < deadline:
        statuses = [
            (await api.get(f"{API}/executions/{i}", headers=acme)).json()["status"] for i in ids
        ]
        if set(statuses) == {"succeeded"}:
            break
        await asyncio.sleep(0.2)
    assert set(statuses) == {"succeeded"}
    assert runtime.queue.stats.deferred > 0, "8 deliveries at 4/s: some wait"
    assert runtime.queue.stats.dropped == 0


async def test_a_tasks_tenant_hint_is_throttled_like_a_read_and_never_taken_from_the_wire(
    api: httpx.AsyncClient, runtime: LocalRuntime
) -> None:
    # The engine's tasks carry their execution's tenant in-process (no read per
    # delivery); a task body from the wire that names another tenant is not believed:
    # decoded, it has no hint, and the execution's own tenant is read and throttled.
    await api.post(TENANTS, json={"id": "acme", "quotas": {"stepsPerSecond": 0.01}})
    acme = {"X-Tenant": "acme"}
    flow = (await api.post(f"{API}/workflows", json=_named(WAITING), headers=acme)).json()["id"]
    started = await api.post(f"{API}/workflows/{flow}/execute", json={}, headers=acme)
    execution_id = started.json()["id"]
    hinted = StepTask(execution_id, "no-such-run", datetime.now(UTC), tenant="acme")
    with pytest.raises(QuotaExceeded):
        for _ in range(2):
            await runtime.app.execute_step(hinted)
    forged = decode_task(
        json.dumps({"executionId": execution_id, "runId": "x", "tenant": "default"}).encode()
    )
    assert forged.tenant == ""
    with pytest.raises(QuotaExceeded):
        await runtime.app.execute_step(forged)
