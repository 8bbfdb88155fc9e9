"""Analytics never cross tenants: the tenant is the caller's, never the request's.

Mallory (owner in ``acme``) runs executions; Alice (viewer in ``default``) asks for the
analytics every way the API offers (no filter, Mallory's workflow id, a ``tenant``
query parameter, an ``X-Tenant`` header, GraphQL) and sees none of them; Mallory sees
her own; without credentials nothing answers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from edge_fixtures import client_for

from shared.api.auth import ApiKeyAuthenticator, Principal, Role, hash_api_key
from shared.api.edge import Edge
from shared.api.rest import create_management_app

pytestmark = pytest.mark.timeout(30)

SALT = "analytics-tenancy-suite"
API = "/api/v1"
STEPS = [{"id": "secret_step", "type": "transform", "config": {"set": {"done": True}}}]
GQL = "query($wf: String) { analytics(workflowId: $wf) { totals { started } steps { stepId } } }"


@pytest.fixture
def authenticator() -> ApiKeyAuthenticator:
    principals = {
        hash_api_key("alice-key", SALT): Principal("alice", "default", Role.VIEWER),
        hash_api_key("mallory-key", SALT): Principal("mallory", "acme", Role.OWNER),
    }
    return ApiKeyAuthenticator(principals, SALT)


@pytest.fixture
async def api(edge: Edge) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(create_management_app(edge, lifespan=False)) as client:
        yield client


def key(name: str) -> dict[str, str]:
    return {"X-API-Key": f"{name}-key"}


async def mallory_runs(api: httpx.AsyncClient) -> str:
    created = await api.post(
        f"{API}/workflows", json={"name": "acme-only", "steps": STEPS}, headers=key("mallory")
    )
    assert created.status_code == 201, created.text
    workflow_id: str = created.json()["id"]
    for _ in range(2):
        started = await api.post(
            f"{API}/workflows/{workflow_id}/execute", json={}, headers=key("mallory")
        )
        assert started.status_code == 202, started.text
    for _ in range(500):
        seen = (await api.get(f"{API}/analytics", headers=key("mallory"))).json()
        if seen["totals"]["succeeded"] == 2:
            return workflow_id
        await asyncio.sleep(0.02)
    raise AssertionError("mallory's executions did not finish")


def nothing_in(body: dict[str, Any]) -> bool:
    return (
        body["totals"]["started"] == 0
        and body["workflows"] == []
        and body["steps"] == []
        and "secret_step" not in str(body)
    )


async def test_another_tenant_sees_none_of_the_figures(api: httpx.AsyncClient) -> None:
    workflow_id = await mallory_runs(api)
    own = (await api.get(f"{API}/analytics", headers=key("mallory"))).json()
    assert own["totals"]["started"] == 2 and own["steps"][0]["stepId"] == "secret_step"

    attempts: list[tuple[dict[str, str], dict[str, str]]] = [
        ({}, {}),
        ({"workflowId": workflow_id}, {}),
        ({"tenant": "acme"}, {}),
        ({}, {"X-Tenant": "acme"}),
        ({"workflowId": workflow_id, "tenant": "acme"}, {"X-Tenant": "acme"}),
    ]
    for params, headers in attempts:
        response = await api.get(
            f"{API}/analytics", params=params, headers={**key("alice"), **headers}
        )
        assert response.status_code == 200, response.text
        assert nothing_in(response.json()), (params, headers, response.json())

    for variables in ({"wf": None}, {"wf": workflow_id}):
        response = await api.post(
            "/graphql",
            json={"query": GQL, "variables": variables},
            headers={**key("alice"), "X-Tenant": "acme"},
        )
        data = response.json()["data"]["analytics"]
        assert data == {"totals": {"started": 0}, "steps": []}, data


async def test_figures_need_credentials(api: httpx.AsyncClient) -> None:
    response = await api.get(f"{API}/analytics", headers={"X-Tenant": "acme"})
    assert response.status_code == 401
    graphql = await api.post("/graphql", json={"query": GQL}, headers={"X-Tenant": "acme"})
    assert "data" not in graphql.json() or graphql.json()["data"] is None
