"""Hostile migrations (docs/migration.md): another tenant's execution or workflow is
404, a viewer may not migrate (403, REST and GraphQL), huge or hostile mappings and
rerun lists are refused with 400 (or 413 past the body limit), and none of it changes
the execution."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import httpx
import pytest

from shared.api.auth import ApiKeyAuthenticator, Principal, Role, hash_api_key
from shared.api.edge import Edge

API = "/api/v1"


def first() -> dict[str, Any]:
    return {
        "name": "hostile-migration",
        "steps": [
            {
                "id": "wait",
                "type": "wait_for_event",
                "config": {"event": "go", "timeoutSeconds": 60},
                "nextSteps": ["done"],
            },
            {"id": "done", "type": "transform", "config": {"output": "v1"}},
        ],
    }


def second() -> dict[str, Any]:
    doc = copy.deepcopy(first())
    doc["steps"][1]["config"] = {"output": "v2"}
    return doc


async def waiting(api: httpx.AsyncClient, **headers: str) -> tuple[str, str]:
    created = await api.post(f"{API}/workflows", json=first(), headers=headers)
    assert created.status_code == 201, created.text
    workflow_id = created.json()["id"]
    started = await api.post(
        f"{API}/workflows/{workflow_id}/execute", json={"input": {}}, headers=headers
    )
    assert started.status_code == 202, started.text
    execution_id = started.json()["id"]
    for _ in range(500):
        got = await api.get(f"{API}/executions/{execution_id}", headers=headers)
        if got.json()["status"] == "waiting":
            break
        await asyncio.sleep(0.02)
    updated = await api.put(f"{API}/workflows/{workflow_id}", json=second(), headers=headers)
    assert updated.status_code == 200, updated.text
    return workflow_id, execution_id


async def snapshot(api: httpx.AsyncClient, execution_id: str, **headers: str) -> Any:
    execution = (await api.get(f"{API}/executions/{execution_id}", headers=headers)).json()
    steps = await api.get(f"{API}/executions/{execution_id}/steps", headers=headers)
    return execution, steps.json()


async def test_another_tenants_execution_and_workflow_are_404(api: httpx.AsyncClient) -> None:
    workflow_id, execution_id = await waiting(api)
    before = await snapshot(api, execution_id)
    foreign = {"X-Tenant": "globex"}
    for dry in (True, False):
        body = {"toVersion": 2, "dryRun": dry}
        one = await api.post(f"{API}/executions/{execution_id}/migrate", json=body, headers=foreign)
        assert one.status_code == 404, one.text
        assert one.json()["error"]["code"] == "NOT_FOUND"
        bulk = await api.post(
            f"{API}/workflows/{workflow_id}/executions/migrate", json=body, headers=foreign
        )
        assert bulk.status_code == 404, bulk.text
    assert await snapshot(api, execution_id) == before


@pytest.fixture
def keyed(edge: Edge) -> None:
    principals = {
        hash_api_key("owner-key", "s"): Principal("alice", role=Role.OWNER),
        hash_api_key("viewer-key", "s"): Principal("bob", role=Role.VIEWER),
    }
    edge.authenticator = ApiKeyAuthenticator(principals, salt="s")


@pytest.mark.usefixtures("keyed")
async def test_a_viewer_cannot_migrate(api: httpx.AsyncClient) -> None:
    owner = {"X-API-Key": "owner-key"}
    viewer = {"X-API-Key": "viewer-key"}
    workflow_id, execution_id = await waiting(api, **owner)
    before = await snapshot(api, execution_id, **owner)
    body = {"toVersion": 2, "dryRun": False}
    one = await api.post(f"{API}/executions/{execution_id}/migrate", json=body, headers=viewer)
    assert one.status_code == 403, one.text
    bulk = await api.post(
        f"{API}/workflows/{workflow_id}/executions/migrate", json=body, headers=viewer
    )
    assert bulk.status_code == 403, bulk.text
    anonymous = await api.post(f"{API}/executions/{execution_id}/migrate", json=body)
    assert anonymous.status_code == 401
    gql = await api.post(
        "/graphql",
        json={
            "query": "mutation($id: ID!) { migrateExecution(id: $id, toVersion: 2, "
            "dryRun: false) { __typename ... on UserError { code } } }",
            "variables": {"id": execution_id},
        },
        headers=viewer,
    )
    assert gql.json()["data"]["migrateExecution"]["__typename"] == "ForbiddenError"
    assert await snapshot(api, execution_id, **owner) == before
    mine = await api.post(f"{API}/executions/{execution_id}/migrate", json=body, headers=owner)
    assert mine.status_code == 200 and mine.json()["applied"] is True


HOSTILE_IDS = [
    "../../etc/passwd",
    "${vars.secret}",
    "a" * 65,
    "",
    "step\u0000id",
    "ste p",
    "<script>",
    "\uff57\uff41\uff49\uff54",  # fullwidth "wait"
    "1leading-digit",
]


async def test_hostile_mappings_and_reruns_are_400(api: httpx.AsyncClient) -> None:
    workflow_id, execution_id = await waiting(api)
    before = await snapshot(api, execution_id)
    route = f"{API}/executions/{execution_id}/migrate"
    for bad in HOSTILE_IDS:
        for body in (
            {"toVersion": 2, "dryRun": False, "mapping": {"wait": bad}},
            {"toVersion": 2, "dryRun": False, "mapping": {bad: "wait"}},
            {"toVersion": 2, "dryRun": False, "rerun": [bad]},
        ):
            response = await api.post(route, json=body)
            assert response.status_code == 400, (bad, response.text)
            assert response.json()["error"]["code"] == "INVALID_INPUT"
    many = {f"s{i}": "wait" for i in range(1001)}
    too_many = await api.post(route, json={"toVersion": 2, "dryRun": False, "mapping": many})
    assert too_many.status_code == 400, too_many.text
    assert too_many.json()["error"]["path"] == "/mapping"
    huge = {f"s{i}": "wait" for i in range(100_000)}
    flood = await api.post(route, json={"toVersion": 2, "dryRun": False, "mapping": huge})
    assert flood.status_code in (400, 413), flood.text  # 413: past the 1 MiB body limit
    for version in (0, -1, 2**31, "2", True, None):
        response = await api.post(route, json={"toVersion": version, "dryRun": False})
        assert response.status_code in (400, 422), (version, response.text)
    bulk = await api.post(
        f"{API}/workflows/{workflow_id}/executions/migrate",
        json={"toVersion": 2, "dryRun": False, "mapping": {"wait": "../x"}},
    )
    assert bulk.status_code == 400, bulk.text
    assert await snapshot(api, execution_id) == before
