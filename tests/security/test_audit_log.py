"""Issue 10, audit log: every state-changing call appears exactly once, with its
principal, tenant, action, target, request id and outcome, refused calls included;
only admins read it; no entry ever holds a secret or a request body.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from _served import ALICE, API, BOB, ERIN, FLOW, KEYS, VICTOR, Served, served
from edge_fixtures import client_for

from shared.app.triggers import PubSubEvent, ScheduleFire, dispatch_event, fire_schedule
from shared.app.webhooks import sign
from shared.composition.edge import FUNCTION_APPS
from shared.ports.audit import AuditQuery

HOOK_SECRET = "whsec-canary-0d9f7a61"
BODY_CANARY = "body-canary-6b2e95"
WAITING = {
    "name": "approval",
    "steps": [
        {
            "id": "wait",
            "type": "wait_for_event",
            "config": {"event": "approval", "timeoutSeconds": 60},
        }
    ],
}


@pytest.fixture
async def s(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Served]:
    monkeypatch.setenv("WFE_SECRET_AUDIT_HOOK", HOOK_SECRET)
    async with served(tmp_path) as running:
        yield running


async def _entries(s: Served, headers: dict[str, str], **filters: Any) -> list[dict[str, Any]]:
    """Every entry the caller may read, following the cursor."""
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {**filters, "limit": 7, **({"cursor": cursor} if cursor else {})}
        page = await s.api.get(f"{API}/audit", params=params, headers=headers)
        assert page.status_code == 200, page.text
        found += page.json()["items"]
        cursor = page.json()["nextCursor"]
        if cursor is None:
            return found


def _calls(entries: list[dict[str, Any]]) -> Counter[tuple[Any, ...]]:
    return Counter(
        (e["subject"], e["action"], e.get("target"), e["outcome"], e.get("status")) for e in entries
    )


async def _waiting(s: Served, execution_id: str) -> None:
    app = s.runtime.app.for_tenant("tenant-a")
    for _ in range(200):
        if (await app.get_execution(execution_id)).status.value == "waiting":
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the execution never waited")


async def test_every_state_changing_rest_call_is_recorded_once(s: Served) -> None:
    api = s.api
    made = await api.post(f"{API}/workflows", json=WAITING, headers=ALICE)
    flow = made.json()["id"]
    steps = WAITING["steps"]
    await api.put(f"{API}/workflows/{flow}", json={**WAITING, "steps": steps}, headers=ALICE)
    await api.post(f"{API}/workflows/{flow}/deactivate", headers=ALICE)
    await api.post(f"{API}/workflows/{flow}/activate", headers=ALICE)
    imported = await api.post(f"{API}/workflows/import", json=[FLOW], headers=ALICE)
    assert imported.status_code == 201, imported.text
    traced = {**ALICE, "X-Request-Id": "req-audit-1"}
    started = await api.post(f"{API}/workflows/{flow}/execute", json={}, headers=traced)
    run = started.json()["id"]
    await _waiting(s, run)
    one = f"{API}/executions/{run}"
    assert (await api.post(f"{one}/pause", headers=ALICE)).status_code == 200
    assert (await api.post(f"{one}/resume", headers=ALICE)).status_code == 200
    sent = await api.post(f"{one}/events", json={"name": "other"}, headers=ALICE)
    assert sent.status_code == 202, sent.text
    assert (await api.post(f"{one}/cancel", json={}, headers=ALICE)).status_code == 200
    assert (await api.post(f"{one}/redrive", headers=ALICE)).status_code == 409
    assert (await api.delete(f"{API}/workflows/{flow}", headers=ALICE)).status_code == 204
    # reads and dry runs change nothing and are not recorded
    await api.get(f"{API}/workflows/{flow}", headers=ALICE)
    await api.post(f"{API}/workflows/validate", json=FLOW, headers=ALICE)

    entries = await _entries(s, ALICE)
    assert _calls(entries) == Counter(
        {
            ("alice", "workflow.create", flow, "ok", 201): 1,
            ("alice", "workflow.update", flow, "ok", 200): 1,
            ("alice", "workflow.deactivate", flow, "ok", 200): 1,
            ("alice", "workflow.activate", flow, "ok", 200): 1,
            ("alice", "workflow.import", None, "ok", 201): 1,
            ("alice", "execution.start", flow, "ok", 202): 1,
            ("alice", "execution.pause", run, "ok", 200): 1,
            ("alice", "execution.resume", run, "ok", 200): 1,
            ("alice", "execution.event", run, "ok", 202): 1,
            ("alice", "execution.cancel", run, "ok", 200): 1,
            ("alice", "execution.redrive", run, "INVALID_STATE", 409): 1,
            ("alice", "workflow.delete", flow, "ok", 204): 1,
        }
    )
    assert {e["tenant"] for e in entries} == {"tenant-a"}
    assert {e["via"] for e in entries} == {"rest"}
    start = next(e for e in entries if e["action"] == "execution.start")
    assert (start["executionId"], start["requestId"]) == (run, "req-audit-1")
    assert all(e.get("requestId") for e in entries)  # the trace id when none was sent
    times = [e["time"] for e in entries]
    assert times == sorted(times, reverse=True)


async def test_refused_calls_are_recorded_with_their_code(s: Served) -> None:
    flow = await s.create(ALICE)
    assert (await s.api.delete(f"{API}/workflows/{flow}", headers=ERIN)).status_code == 403
    assert (await s.api.post(f"{API}/workflows", json=FLOW, headers=VICTOR)).status_code == 403
    other_tenant = await s.api.put(f"{API}/workflows/{flow}", json=FLOW, headers=BOB)
    assert other_tenant.status_code == 404
    invalid = await s.api.post(f"{API}/workflows", json={"name": "x"}, headers=ALICE)
    assert invalid.status_code == 422
    forged = await s.api.post(f"{API}/workflows", json=FLOW, headers={"X-API-Key": "guessed"})
    assert forged.status_code == 401

    calls = _calls(await _entries(s, ALICE))
    assert calls[("erin", "workflow.delete", flow, "FORBIDDEN", 403)] == 1
    assert calls[("victor", "workflow.create", None, "FORBIDDEN", 403)] == 1
    assert calls[("alice", "workflow.create", None, "VALIDATION_FAILED", 422)] == 1
    theirs = _calls(await _entries(s, BOB))
    assert theirs == Counter({("bob", "workflow.update", flow, "NOT_FOUND", 404): 1})
    anonymous = await s.runtime.app.auditor.log.query(AuditQuery(tenant="default"))  # type: ignore[union-attr]
    assert [(e.subject, e.action, e.outcome, e.status) for e in anonymous.items] == [
        ("anonymous", "workflow.create", "UNAUTHENTICATED", 401)
    ]


async def test_only_admins_read_the_audit_log(s: Served) -> None:
    await s.create(ALICE)
    for who in (ERIN, VICTOR):
        refused = await s.api.get(f"{API}/audit", headers=who)
        assert (refused.status_code, refused.json()["error"]["code"]) == (403, "FORBIDDEN")
        query = {"query": "{ auditLog { items { action } } }"}
        answer = await s.api.post("/graphql", json=query, headers=who)
        assert answer.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN", answer.text
    assert await _entries(s, BOB) == []  # another tenant's admin sees none of tenant-a's


async def test_filters_select_entries(s: Served) -> None:
    first, second = await s.create(ALICE), await s.create(ALICE)
    await s.api.post(f"{API}/workflows/{first}/deactivate", headers=ERIN)
    middle = time.time()
    await asyncio.sleep(0.01)
    await s.api.post(f"{API}/workflows/{second}/deactivate", headers=ALICE)

    by_action = await _entries(s, ALICE, action="workflow.deactivate")
    assert {e["target"] for e in by_action} == {first, second}
    assert [e["target"] for e in await _entries(s, ALICE, subject="erin")] == [first]
    assert len(await _entries(s, ALICE, target=first)) == 2
    since = (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(middle)) + f".{int(middle % 1 * 1e6):06d}Z"
    )
    assert [e["target"] for e in await _entries(s, ALICE, since=since)] == [second]
    assert len(await _entries(s, ALICE, until=since)) == 3


async def test_graphql_mutations_are_recorded_and_listed(s: Served) -> None:
    async def gql(query: str, **variables: Any) -> dict[str, Any]:
        answer = await s.api.post(
            "/graphql", json={"query": query, "variables": variables}, headers=ALICE
        )
        body: dict[str, Any] = answer.json()
        return body

    definition = {"name": "g", "steps": WAITING["steps"]}
    made = await gql(
        "mutation($w: WorkflowInput!) { createWorkflow(input: $w) { id } }", w=definition
    )
    flow = made["data"]["createWorkflow"]["id"]
    runs = []
    for _ in range(2):
        started = await gql(
            "mutation($id: ID!) { executeWorkflow(id: $id, input: {}) { id } }", id=flow
        )
        runs.append(started["data"]["executeWorkflow"]["id"])
    await gql(
        "mutation($ids: [ID!]!) { cancelExecutions(ids: $ids) { __typename } }",
        ids=[*runs, "no-such-run"],
    )
    await gql("mutation($id: ID!) { setWorkflowActive(id: $id, active: false) { __typename } }",
              id=flow)  # fmt: skip
    listed = await gql("{ auditLog(first: 50) { items { subject action target outcome via "
                       "executionId } pageInfo { hasNextPage } } }")  # fmt: skip

    items = listed["data"]["auditLog"]["items"]
    calls = Counter((e["action"], e["target"], e["outcome"], e["via"]) for e in items)
    assert calls == Counter(
        {
            ("workflow.create", flow, "ok", "graphql"): 1,
            ("execution.start", flow, "ok", "graphql"): 2,
            ("execution.cancel", runs[0], "ok", "graphql"): 1,
            ("execution.cancel", runs[1], "ok", "graphql"): 1,
            ("execution.cancel", "no-such-run", "NOT_FOUND", "graphql"): 1,
            ("workflow.deactivate", flow, "ok", "graphql"): 1,
        }
    )
    assert {e["executionId"] for e in items if e["action"] == "execution.start"} == set(runs)
    assert {e["subject"] for e in items} == {"alice"}


async def test_triggers_are_recorded_as_trigger_principals(s: Served) -> None:
    hooked = {**FLOW, "trigger": {"type": "webhook", "secretRef": "env:WFE_SECRET_AUDIT_HOOK"}}
    flow = await s.create(ALICE, hooked)
    body = json.dumps({"n": 1}).encode()
    stamp = str(int(time.time()))
    good = {"X-Webhook-Timestamp": stamp, "X-Webhook-Signature": sign(HOOK_SECRET, stamp, body)}
    url = f"/webhooks/{flow}?tenant=tenant-a"
    assert (await s.hooks.post(url, content=body, headers=good)).status_code == 202
    bad = {**good, "X-Webhook-Signature": sign("guessed", stamp, body)}
    assert (await s.hooks.post(url, content=body, headers=bad)).status_code == 401
    app = s.runtime.app.for_tenant("tenant-a")
    cron = await s.create(ALICE, {**FLOW, "trigger": {"type": "schedule", "cron": "0 * * * *"}})
    await fire_schedule(app, ScheduleFire(cron, "job"))
    topic = await s.create(ALICE, {**FLOW, "trigger": {"type": "event", "topic": "orders"}})
    await dispatch_event(app, PubSubEvent("orders", "m-1", {"id": 1}))

    calls = _calls(await _entries(s, ALICE, action="execution.start"))
    assert calls == Counter(
        {
            ("trigger:webhook", "execution.start", flow, "ok", None): 1,
            ("trigger:webhook", "execution.start", flow, "UNAUTHENTICATED", None): 1,
            ("trigger:schedule", "execution.start", cron, "ok", None): 1,
            ("trigger:pubsub", "execution.start", topic, "ok", None): 1,
        }
    )


async def test_no_entry_holds_a_secret_or_a_body(s: Served, tmp_path: Path) -> None:
    hooked = {
        **FLOW,
        "description": BODY_CANARY,
        "trigger": {"type": "webhook", "secretRef": "env:WFE_SECRET_AUDIT_HOOK"},
    }
    flow = await s.create(ALICE, hooked)
    await s.api.post(f"{API}/workflows/{flow}/execute", json={"input": {"x": BODY_CANARY}},
                     headers=ALICE)  # fmt: skip
    await s.api.post(f"{API}/workflows", json=hooked, headers={"X-API-Key": HOOK_SECRET})
    await s.api.post(f"{API}/workflows/{flow}/activate",
                     headers={**ALICE, "X-Request-Id": f"{HOOK_SECRET} x"})  # fmt: skip
    body = BODY_CANARY.encode()
    stamp = str(int(time.time()))
    signed = {"X-Webhook-Timestamp": stamp, "X-Webhook-Signature": sign(HOOK_SECRET, stamp, body)}
    await s.hooks.post(f"/webhooks/{flow}?tenant=tenant-a", content=body, headers=signed)

    listed = (await s.api.get(f"{API}/audit", headers=ALICE)).text
    with sqlite3.connect(tmp_path / "served.db") as db:
        rows = db.execute("SELECT * FROM audit_log").fetchall()
    assert len(rows) >= 5
    stored = json.dumps(rows)
    for secret in (HOOK_SECRET, BODY_CANARY, *KEYS, signed["X-Webhook-Signature"][7:]):
        assert secret not in stored
        assert secret not in listed


def _ids(entries: list[dict[str, Any]]) -> list[str]:
    return [str(e["id"]) for e in entries]


async def test_pages_cover_every_entry_once(s: Served) -> None:
    for _ in range(16):
        await s.create(ALICE)
    entries = await _entries(s, ALICE)
    assert len(entries) == len(set(_ids(entries))) == 16
    bad = await s.api.get(f"{API}/audit", params={"cursor": "bm90LWEtY3Vyc29y"}, headers=ALICE)
    assert (bad.status_code, bad.json()["error"]["code"]) == (400, "INVALID_INPUT")


async def test_a_flood_of_bad_keys_is_not_a_flood_of_writes(tmp_path: Path) -> None:
    async with served(tmp_path, limit_principal_rps=0.001, limit_principal_burst=3) as s:
        for n in range(10):
            refused = await s.api.get(f"{API}/workflows", headers={"X-API-Key": f"guess-{n}"})
            assert refused.status_code == 401
        auditor = s.runtime.app.auditor
        assert auditor is not None
        recorded = await auditor.log.query(AuditQuery(tenant="default"))
        assert [(e.subject, e.action) for e in recorded.items] == [("anonymous", "auth.failed")] * 3


async def test_forged_internal_calls_are_recorded_as_failed_authentications(s: Served) -> None:
    flow = await s.create(ALICE)
    forged_schedule = await s.hooks.post(f"/schedule/{flow}", headers={"Authorization": "Bearer x"})
    forged_push = await s.hooks.post("/pubsub", json={"message": {"data": ""}})
    async with client_for(FUNCTION_APPS["execute-step"](s.edge), "http://tasks.test") as tasks:
        forged_task = await tasks.post("/execute-step", json={"executionId": "e", "runId": "r"})
    assert [r.status_code for r in (forged_schedule, forged_push, forged_task)] == [401] * 3

    auditor = s.runtime.app.auditor
    assert auditor is not None
    recorded = (await auditor.log.query(AuditQuery(tenant="default"))).items
    assert Counter((e.subject, e.action, e.target, e.outcome, e.status) for e in recorded) == {
        ("anonymous", "auth.failed", None, "UNAUTHENTICATED", 401): 2,
        ("anonymous", "auth.failed", flow, "UNAUTHENTICATED", 401): 1,
    }
    assert await s.executions("tenant-a") == 0


async def test_a_graphql_batch_cut_short_by_the_start_limit_records_what_it_did(
    tmp_path: Path,
) -> None:
    async with served(tmp_path, limit_start_rps=0.001, limit_start_burst=2) as s:
        flows = [await s.create(ALICE) for _ in range(3)]
        batch = (
            "mutation($r: [ExecuteWorkflowRequest!]!) "
            "{ executeWorkflows(requests: $r) { __typename } }"
        )
        requests = [{"workflowId": flow, "input": {}} for flow in flows]
        answer = await s.api.post(
            "/graphql", json={"query": batch, "variables": {"r": requests}}, headers=ALICE
        )
        assert answer.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED", answer.text

        entries = await _entries(s, ALICE, action="execution.start")
        assert sorted((e["target"], e["outcome"]) for e in entries) == sorted(
            [(flows[0], "ok"), (flows[1], "ok"), (flows[2], "RATE_LIMITED")]
        )
        assert await s.executions("tenant-a") == 2


@pytest.mark.parametrize("moment", ["0.5", "1700000000", "yesterday", "2026-13"])
async def test_audit_time_filters_take_rfc3339_only(s: Served, moment: str) -> None:
    """schemathesis: ``until=0.5`` was accepted as a date-time (pydantic read seconds)."""
    response = await s.api.get(f"{API}/audit", params={"until": moment}, headers=ALICE)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["path"] == "/until"
