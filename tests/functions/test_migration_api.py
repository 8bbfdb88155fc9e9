"""``POST /api/v1/executions/{id}/migrate``, the bulk ``POST /api/v1/workflows/{id}/
executions/migrate`` and the GraphQL ``migrateExecution`` (docs/migration.md), over the
local runtime: executions really wait, move and finish."""

from __future__ import annotations

import copy
from typing import Any

import httpx
from _create_api import API, approval, create, error_of, execute, wait_for
from _schema_check import errors

ONE = "/api/v1/executions/{execution_id}/migrate"
BULK = "/api/v1/workflows/{workflow_id}/executions/migrate"


def second() -> dict[str, Any]:
    """Version 2 of ``approval``: the waiting step renamed, the recording step changed."""
    doc = copy.deepcopy(approval())
    doc["steps"][0]["id"] = "approve"
    doc["steps"][1]["config"] = {"set": {"approvedBy": "${'v2:' + prev.payload.by}"}}
    return doc


async def waiting_on_v1(api: httpx.AsyncClient, count: int = 1) -> tuple[str, list[str]]:
    workflow_id = await create(api, approval())
    ids = []
    for _ in range(count):
        ids.append((await execute(api, workflow_id, input={}))["id"])
    for execution_id in ids:
        await wait_for(api, execution_id, {"waiting"})
    updated = await api.put(f"{API}/workflows/{workflow_id}", json=second())
    assert updated.status_code == 200 and updated.json()["version"] == 2, updated.text
    return workflow_id, ids


def url(execution_id: str) -> str:
    return f"{API}/executions/{execution_id}/migrate"


async def test_plan_then_apply_then_finish_on_the_new_version(api: httpx.AsyncClient) -> None:
    _, (execution_id,) = await waiting_on_v1(api)

    unmapped = await api.post(url(execution_id), json={"toVersion": 2})
    assert unmapped.status_code == 200, unmapped.text
    plan = unmapped.json()["plan"]
    assert unmapped.json()["applied"] is False and plan["compatible"] is False
    assert [p["code"] for p in plan["problems"]] == ["MIGRATION_STEP_MISSING"]

    mapping = {"wait_for_approval": "approve"}
    dry = await api.post(url(execution_id), json={"toVersion": 2, "mapping": mapping})
    assert dry.status_code == 200 and dry.json()["plan"]["compatible"] is True
    assert dry.json()["plan"]["moves"][0]["toStep"] == "approve"
    assert (await api.get(f"{API}/executions/{execution_id}")).json()["workflowVersion"] == 1

    applied = await api.post(
        url(execution_id), json={"toVersion": 2, "mapping": mapping, "dryRun": False}
    )
    assert applied.status_code == 200, applied.text
    assert applied.json()["applied"] is True
    assert (await api.get(f"{API}/executions/{execution_id}")).json()["workflowVersion"] == 2

    sent = await api.post(
        f"{API}/executions/{execution_id}/events",
        json={"name": "approval", "payload": {"by": "ann"}},
    )
    assert sent.status_code in (200, 202), sent.text
    final = await wait_for(api, execution_id, {"succeeded"})
    assert final["result"] == {"approvedBy": "v2:ann"}
    steps = (await api.get(f"{API}/executions/{execution_id}/steps")).json()["items"]
    assert [s["stepId"] for s in steps] == ["approve", "record"]
    events = (await api.get(f"{API}/executions/{execution_id}/events")).json()["items"]
    migrated = [e for e in events if e["type"] == "execution.migrated"]
    assert len(migrated) == 1 and migrated[0]["data"]["toVersion"] == 2


async def test_unsafe_apply_is_409_with_reasons_and_changes_nothing(
    api: httpx.AsyncClient,
) -> None:
    _, (execution_id,) = await waiting_on_v1(api)
    before = (await api.get(f"{API}/executions/{execution_id}")).json()
    refused = await api.post(url(execution_id), json={"toVersion": 2, "dryRun": False})
    assert refused.status_code == 409, refused.text
    error = error_of(refused)
    assert error["code"] == "MIGRATION_REFUSED"
    assert [e["code"] for e in error["errors"]] == ["MIGRATION_STEP_MISSING"]
    assert error["errors"][0]["path"].startswith("/runs/")
    assert error["details"]["retryable"] is False
    assert error["details"]["plan"]["compatible"] is False
    after = (await api.get(f"{API}/executions/{execution_id}")).json()
    assert after == before
    same = await api.post(url(execution_id), json={"toVersion": 1, "dryRun": False})
    assert error_of(same)["errors"][0]["code"] == "MIGRATION_SAME_VERSION"
    missing = await api.post(url(execution_id), json={"toVersion": 7})
    assert missing.status_code == 404 and error_of(missing)["code"] == "NOT_FOUND"


async def test_bulk_migration(api: httpx.AsyncClient) -> None:
    workflow_id, ids = await waiting_on_v1(api, count=5)
    body = {"toVersion": 2, "mapping": {"wait_for_approval": "approve"}, "fromVersion": 1}
    route = f"{API}/workflows/{workflow_id}/executions/migrate"
    dry = await api.post(route, json=body)
    assert dry.status_code == 200, dry.text
    assert dry.json()["applied"] == 0 and len(dry.json()["items"]) == 5
    done = await api.post(route, json={**body, "dryRun": False, "status": ["waiting"]})
    assert done.status_code == 200, done.text
    answer = done.json()
    assert answer["applied"] == 5 and answer["refused"] == 0
    assert sorted(item["executionId"] for item in answer["items"]) == sorted(ids)
    for execution_id in ids:
        await api.post(
            f"{API}/executions/{execution_id}/events",
            json={"name": "approval", "payload": {"by": "bo"}},
        )
    for execution_id in ids:
        final = await wait_for(api, execution_id, {"succeeded"})
        assert final["result"] == {"approvedBy": "v2:bo"}
    bad = await api.post(route, json={**body, "limit": 501})
    assert bad.status_code in (400, 422)


async def test_answers_match_the_openapi_document(api: httpx.AsyncClient) -> None:
    workflow_id, (execution_id,) = await waiting_on_v1(api)
    document = (await api.get(f"{API}/openapi.json")).json()
    operation = document["paths"][ONE]["post"]
    assert {"200", "400", "401", "403", "404", "409", "429"} <= set(operation["responses"])
    ok = await api.post(url(execution_id), json={"toVersion": 2})
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert errors(ok.json(), schema, document) == []
    refused = await api.post(url(execution_id), json={"toVersion": 2, "dryRun": False})
    schema = operation["responses"]["409"]["content"]["application/json"]["schema"]
    assert errors(refused.json(), schema, document) == []
    bulk = document["paths"][BULK]["post"]
    answer = await api.post(
        f"{API}/workflows/{workflow_id}/executions/migrate", json={"toVersion": 2}
    )
    schema = bulk["responses"]["200"]["content"]["application/json"]["schema"]
    assert errors(answer.json(), schema, document) == []


MUTATION = """
mutation Migrate($id: ID!, $to: Int!, $mapping: JSON, $dry: Boolean!) {
  migrateExecution(id: $id, toVersion: $to, mapping: $mapping, dryRun: $dry) {
    __typename
    ... on MigrationResult {
      applied
      plan { fromVersion toVersion compatible moves { fromStep toStep } problems { code path } }
    }
    ... on MigrationRefusedError { code retryable reasons { code path } }
    ... on UserError { code message }
  }
}
"""


async def graphql(api: httpx.AsyncClient, **variables: Any) -> dict[str, Any]:
    response = await api.post("/graphql", json={"query": MUTATION, "variables": variables})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert "errors" not in body, body
    answer: dict[str, Any] = body["data"]["migrateExecution"]
    return answer


async def test_graphql_migrate_execution(api: httpx.AsyncClient) -> None:
    _, (execution_id,) = await waiting_on_v1(api)
    refused = await graphql(api, id=execution_id, to=2, dry=False)
    assert refused["__typename"] == "MigrationRefusedError"
    assert refused["code"] == "MIGRATION_REFUSED" and refused["retryable"] is False
    assert [r["code"] for r in refused["reasons"]] == ["MIGRATION_STEP_MISSING"]

    mapping = {"wait_for_approval": "approve"}
    plan = await graphql(api, id=execution_id, to=2, mapping=mapping, dry=True)
    assert plan["__typename"] == "MigrationResult" and plan["applied"] is False
    assert plan["plan"]["moves"] == [{"fromStep": "wait_for_approval", "toStep": "approve"}]
    applied = await graphql(api, id=execution_id, to=2, mapping=mapping, dry=False)
    assert applied["applied"] is True and applied["plan"]["compatible"] is True
    assert (await api.get(f"{API}/executions/{execution_id}")).json()["workflowVersion"] == 2

    again = await graphql(api, id=execution_id, to=2, mapping=mapping, dry=False)
    assert again["__typename"] == "MigrationRefusedError"
    assert "MIGRATION_SAME_VERSION" in [r["code"] for r in again["reasons"]]
    unknown = await graphql(api, id="no-such-execution", to=2, dry=True)
    assert unknown["__typename"] == "NotFoundError"
    hostile = await graphql(api, id=execution_id, to=2, mapping={"a": "../x"}, dry=True)
    assert hostile["__typename"] == "ValidationErrors" and hostile["code"] == "INVALID_INPUT"
