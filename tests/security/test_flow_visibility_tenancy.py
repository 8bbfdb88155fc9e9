"""Flow-control visibility never crosses tenants.

Mallory (owner in ``acme``) and Alice (owner in ``default``) both use a tenant-scoped
concurrency key of the same value (``'shared'``), so their slot sets have the same
internal key in two tenants. Mallory's queue must not move Alice's place nor show in
her usage; Mallory's workflow usage and queued executions answer 404 / null to Alice
however she asks (path id, ``X-Tenant`` header, ``tenant`` query parameter, GraphQL);
without credentials nothing answers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from edge_fixtures import client_for

from shared.api.auth import ApiKeyAuthenticator, Principal, Role, hash_api_key
from shared.api.edge import Edge
from shared.api.rest import create_management_app

pytestmark = pytest.mark.timeout(60)

SALT = "flow-visibility-suite"
API = "/api/v1"
SHARED = {
    "concurrency": [{"limit": 1, "key": "'shared'", "scope": "tenant"}],
    "steps": [
        {"id": "hold", "type": "wait_for_event", "config": {"event": "go", "timeoutSeconds": 600}}
    ],
}


@pytest.fixture
def authenticator() -> ApiKeyAuthenticator:
    principals = {
        hash_api_key("alice-key", SALT): Principal("alice", "default", Role.OWNER),
        hash_api_key("mallory-key", SALT): Principal("mallory", "acme", Role.OWNER),
    }
    return ApiKeyAuthenticator(principals, SALT)


@pytest.fixture
async def api(edge: Edge) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(create_management_app(edge, lifespan=False)) as client:
        yield client


def key(name: str) -> dict[str, str]:
    return {"X-API-Key": f"{name}-key"}


async def started(api: httpx.AsyncClient, who: str, workflow_id: str, status: str) -> str:
    answer = await api.post(f"{API}/workflows/{workflow_id}/execute", json={}, headers=key(who))
    assert answer.status_code == 202, answer.text
    execution_id: str = answer.json()["id"]
    deadline = time.monotonic() + 10
    while True:
        now = (await api.get(f"{API}/executions/{execution_id}", headers=key(who))).json()
        if now["status"] == status:
            return execution_id
        assert time.monotonic() < deadline, f"{execution_id} stayed {now['status']}"
        await asyncio.sleep(0.02)


async def workflow(api: httpx.AsyncClient, who: str) -> str:
    body = {**SHARED, "name": f"{who}-shared"}
    created = await api.post(f"{API}/workflows", json=body, headers=key(who))
    assert created.status_code == 201, created.text
    workflow_id: str = created.json()["id"]
    return workflow_id


async def gql(api: httpx.AsyncClient, who: str, query: str, **variables: Any) -> dict[str, Any]:
    answer = await api.post(
        "/graphql", json={"query": query, "variables": variables}, headers=key(who)
    )
    body: dict[str, Any] = answer.json()
    return body


async def test_queues_and_usage_stay_in_their_tenant(api: httpx.AsyncClient) -> None:
    theirs = await workflow(api, "mallory")
    await started(api, "mallory", theirs, "waiting")
    mallory_queued = [await started(api, "mallory", theirs, "queued") for _ in range(3)]
    mine = await workflow(api, "alice")
    await started(api, "alice", mine, "waiting")  # the same key value: not Mallory's slot
    alice_queued = await started(api, "alice", mine, "queued")

    place = (await api.get(f"{API}/executions/{alice_queued}", headers=key("alice"))).json()
    assert place["queue"]["position"] == 1  # Mallory's three do not count
    usage = (await api.get(f"{API}/workflows/{mine}/concurrency", headers=key("alice"))).json()
    assert [(k["key"], k["running"], k["queued"]) for k in usage["keys"]] == [("shared", 1, 1)]

    # Mallory's workflow and executions, asked for every way.
    for path in (
        f"/workflows/{theirs}/concurrency",
        f"/workflows/{theirs}/concurrency?tenant=acme",
        f"/executions/{mallory_queued[0]}",
    ):
        for headers in (key("alice"), {**key("alice"), "X-Tenant": "acme"}):
            answer = await api.get(f"{API}{path}", headers=headers)
            assert answer.status_code == 404, (path, answer.text)
    listed = await api.get(f"{API}/executions?status=queued", headers=key("alice"))
    assert [e["id"] for e in listed.json()["items"]] == [alice_queued]
    usage_gql = await gql(
        api,
        "alice",
        "query($id: ID!) { workflowConcurrency(workflowId: $id) { keys { key queued } } }",
        id=theirs,
    )
    assert usage_gql["data"] == {"workflowConcurrency": None}
    execution_gql = await gql(
        api,
        "alice",
        "query($id: ID!) { execution(id: $id) { queue { position } } }",
        id=mallory_queued[0],
    )
    assert execution_gql["data"] == {"execution": None}

    # Mallory sees her own queue, in her own order.
    places = [
        (await api.get(f"{API}/executions/{ex}", headers=key("mallory"))).json()["queue"]
        for ex in mallory_queued
    ]
    assert [p["position"] for p in places] == [1, 2, 3]


async def test_without_credentials_nothing_answers(api: httpx.AsyncClient) -> None:
    mine = await workflow(api, "alice")
    answer = await api.get(f"{API}/workflows/{mine}/concurrency")
    assert answer.status_code == 401
    query = f'{{ workflowConcurrency(workflowId: "{mine}") {{ truncated }} }}'
    for headers in ({}, key("nobody")):
        refused = await api.post("/graphql", json={"query": query}, headers=headers)
        assert refused.status_code == 401, refused.text
        assert "data" not in refused.json()
