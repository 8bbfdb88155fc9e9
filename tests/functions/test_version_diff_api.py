"""``GET /api/v1/workflows/{id}/versions/{a}/diff/{b}`` and ``workflowVersionDiff``."""

from __future__ import annotations

import copy
from typing import Any

import httpx
import pytest
from _create_api import API, create, error_of
from _schema_check import errors

from shared.api.auth import ApiKeyAuthenticator, Principal, Role, hash_api_key
from shared.api.edge import Edge

ROUTE = "/api/v1/workflows/{workflow_id}/versions/{from_version}/diff/{to_version}"


def first() -> dict[str, Any]:
    return {
        "name": "diffed",
        "variables": {"region": "eu"},
        "steps": [
            {
                "id": "fetch",
                "type": "transform",
                "config": {"set": {"n": 1}},
                "nextSteps": ["done"],
            },
            {"id": "done", "type": "transform", "config": {"set": {"ok": True}}},
        ],
    }


def second() -> dict[str, Any]:
    doc = copy.deepcopy(first())
    doc["description"] = "v2"
    doc["variables"] = {"region": "us"}
    doc["steps"][0]["config"]["set"]["n"] = 2
    doc["steps"][0]["nextSteps"] = ["end"]
    doc["steps"][1] = {"id": "end", "type": "transform", "config": {"set": {"ok": True}}}
    return doc


async def two_versions(api: httpx.AsyncClient, **headers: str) -> str:
    workflow_id = await create(api, first(), **headers)
    updated = await api.put(f"{API}/workflows/{workflow_id}", json=second(), headers=headers)
    assert updated.status_code == 200, updated.text
    assert updated.json()["version"] == 2
    return workflow_id


def url(workflow_id: str, a: int | str, b: int | str) -> str:
    return f"{API}/workflows/{workflow_id}/versions/{a}/diff/{b}"


async def test_the_diff_of_two_versions(api: httpx.AsyncClient) -> None:
    workflow_id = await two_versions(api)
    response = await api.get(url(workflow_id, 1, 2))
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["workflowId"], body["fromVersion"], body["toVersion"]) == (workflow_id, 1, 2)
    assert body["identical"] is False and body["truncated"] is False
    assert body["steps"]["added"] == [{"id": "end", "type": "transform"}]
    assert body["steps"]["removed"] == [{"id": "done", "type": "transform"}]
    assert body["steps"]["changed"] == [
        {
            "id": "fetch",
            "type": "transform",
            "changes": [
                {"path": "/config/set/n", "kind": "changed", "before": 1, "after": 2},
                {"path": "/nextSteps/0", "kind": "changed", "before": "done", "after": "end"},
            ],
        }
    ]
    assert body["edges"] == {
        "added": [{"source": "fetch", "target": "end", "kind": "next"}],
        "removed": [{"source": "fetch", "target": "done", "kind": "next"}],
    }
    assert body["variables"] == [
        {"path": "/region", "kind": "changed", "before": "eu", "after": "us"}
    ]
    assert body["fields"] == [{"path": "/description", "kind": "added", "after": "v2"}]
    backwards = (await api.get(url(workflow_id, 2, 1))).json()
    assert backwards["steps"]["added"] == body["steps"]["removed"]
    assert backwards["fields"] == [{"path": "/description", "kind": "removed", "before": "v2"}]
    same = (await api.get(url(workflow_id, 2, 2))).json()
    assert same["identical"] is True and same["steps"]["changed"] == []


async def test_the_answer_matches_the_openapi_document(api: httpx.AsyncClient) -> None:
    workflow_id = await two_versions(api)
    body = (await api.get(url(workflow_id, 1, 2))).json()
    document = (await api.get(f"{API}/openapi.json")).json()
    operation = document["paths"][ROUTE]["get"]
    assert {"200", "400", "401", "404", "429"} <= set(operation["responses"])
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert errors(body, schema, document) == []
    missing = await api.get(url(workflow_id, 1, 9))
    error_schema = operation["responses"]["404"]["content"]["application/json"]["schema"]
    assert errors(missing.json(), error_schema, document) == []


async def test_unknown_workflows_and_versions_are_404(api: httpx.AsyncClient) -> None:
    workflow_id = await two_versions(api)
    for a, b in ((1, 3), (3, 1), (99, 100)):
        response = await api.get(url(workflow_id, a, b))
        assert response.status_code == 404, (a, b)
        assert error_of(response)["code"] == "NOT_FOUND"
    assert (await api.get(url("no-such-workflow", 1, 2))).status_code == 404


async def test_bad_version_numbers_are_refused(api: httpx.AsyncClient) -> None:
    workflow_id = await two_versions(api)
    for a, b in ((0, 1), (1, 0), (1, 2**31)):
        response = await api.get(url(workflow_id, a, b))
        assert response.status_code in (400, 404), (a, b, response.text)
        assert "error" in response.json()
    assert (await api.get(url(workflow_id, "x", 1))).status_code == 404  # no such route


async def test_another_tenants_workflow_is_404(api: httpx.AsyncClient) -> None:
    workflow_id = await two_versions(api)
    assert (await api.get(url(workflow_id, 1, 2))).status_code == 200
    other = await api.get(url(workflow_id, 1, 2), headers={"X-Tenant": "globex"})
    assert other.status_code == 404
    assert error_of(other)["code"] == "NOT_FOUND"
    own_there = await two_versions(api, **{"X-Tenant": "globex"})
    assert (await api.get(url(own_there, 1, 2))).status_code == 404


@pytest.fixture
def keyed(edge: Edge) -> None:
    principals = {
        hash_api_key("owner-key", "s"): Principal("alice", role=Role.OWNER),
        hash_api_key("viewer-key", "s"): Principal("bob", role=Role.VIEWER),
    }
    edge.authenticator = ApiKeyAuthenticator(principals, salt="s")


@pytest.mark.usefixtures("keyed")
async def test_a_viewer_can_read_a_diff_and_anonymous_cannot(api: httpx.AsyncClient) -> None:
    workflow_id = await two_versions(api, **{"X-API-Key": "owner-key"})
    viewer = await api.get(url(workflow_id, 1, 2), headers={"X-API-Key": "viewer-key"})
    assert viewer.status_code == 200, viewer.text
    assert viewer.json()["steps"]["added"] == [{"id": "end", "type": "transform"}]
    assert (await api.get(url(workflow_id, 1, 2))).status_code == 401


QUERY = """
query Diff($id: ID!, $from: Int!, $to: Int!) {
  workflowVersionDiff(workflowId: $id, from: $from, to: $to) {
    workflowId fromVersion toVersion identical truncated
    steps {
      added { id type } removed { id type }
      changed { id type changes { path kind before after } }
    }
    edges { added { source target kind label } removed { source target kind label } }
    variables { path kind before after }
    trigger { path kind }
    fields { path kind before after }
  }
}
"""


async def graphql(
    api: httpx.AsyncClient, workflow_id: str, a: int, b: int, **headers: str
) -> dict[str, Any]:
    response = await api.post(
        "/graphql",
        json={"query": QUERY, "variables": {"id": workflow_id, "from": a, "to": b}},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_graphql_diff(api: httpx.AsyncClient) -> None:
    workflow_id = await two_versions(api)
    body = await graphql(api, workflow_id, 1, 2)
    assert "errors" not in body, body
    diff = body["data"]["workflowVersionDiff"]
    rest = (await api.get(url(workflow_id, 1, 2))).json()
    assert (diff["workflowId"], diff["fromVersion"], diff["toVersion"]) == (workflow_id, 1, 2)
    assert diff["identical"] is False
    assert diff["steps"]["added"] == rest["steps"]["added"]
    assert diff["steps"]["changed"][0]["changes"] == rest["steps"]["changed"][0]["changes"]
    assert diff["edges"]["added"] == [
        {"source": "fetch", "target": "end", "kind": "next", "label": None}
    ]
    assert diff["variables"] == rest["variables"]
    assert diff["fields"] == [
        {"path": "/description", "kind": "added", "before": None, "after": "v2"}
    ]
    assert (await graphql(api, workflow_id, 1, 1))["data"]["workflowVersionDiff"]["identical"]


async def test_graphql_unknown_or_foreign_is_null(api: httpx.AsyncClient) -> None:
    workflow_id = await two_versions(api)
    assert (await graphql(api, workflow_id, 1, 5))["data"] == {"workflowVersionDiff": None}
    assert (await graphql(api, workflow_id, 0, 1))["data"] == {"workflowVersionDiff": None}
    foreign = await graphql(api, workflow_id, 1, 2, **{"X-Tenant": "globex"})
    assert foreign["data"] == {"workflowVersionDiff": None}


@pytest.mark.usefixtures("keyed")
async def test_graphql_viewer_reads_the_diff(api: httpx.AsyncClient) -> None:
    workflow_id = await two_versions(api, **{"X-API-Key": "owner-key"})
    body = await graphql(api, workflow_id, 1, 2, **{"X-API-Key": "viewer-key"})
    assert body["data"]["workflowVersionDiff"]["steps"]["removed"] == [
        {"id": "done", "type": "transform"}
    ]
