"""The OpenAPI document matches what the ``create`` function does."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from _create_api import API, approval, create, doubler, execute, wait_for
from _schema_check import errors, resolve
from fastapi.routing import APIRoute

from shared.api.auth import ApiKeyAuthenticator, Principal, Role, hash_api_key
from shared.api.edge import Edge
from shared.api.middleware import MAX_BODY_BYTES
from shared.api.rest import create_management_app
from shared.app.quotas import Quotas
from shared.ports import Decision, RateLimit
from shared.settings import LimitSettings

OWNER, VIEWER = {"X-API-Key": "owner-key"}, {"X-API-Key": "viewer-key"}
HUGE = json.dumps({"input": {"blob": "x" * MAX_BODY_BYTES}})


@pytest.fixture
async def doc(api: httpx.AsyncClient) -> dict[str, Any]:
    response = await api.get(f"{API}/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


class _Throttle:
    """A rate limiter that refuses while ``on`` (the 429 cases)."""

    on = False

    async def acquire(self, key: str, limit: RateLimit, cost: float = 1.0) -> Decision:
        return Decision(False, 2.5) if self.on else Decision(True)

    async def close(self) -> None:
        return None


THROTTLE = _Throttle()


async def _throttled(call: Awaitable[httpx.Response]) -> httpx.Response:
    """The response to ``call`` sent while every rate limit refuses."""
    THROTTLE.on = True
    try:
        return await call
    finally:
        THROTTLE.on = False


@pytest.fixture
def keyed(edge: Edge) -> None:
    """API keys: ``owner-key`` is an owner, ``viewer-key`` a viewer of the default tenant;
    rate limits that refuse while ``THROTTLE.on``."""
    principals = {
        hash_api_key("owner-key", "s"): Principal("alice", role=Role.OWNER),
        hash_api_key("viewer-key", "s"): Principal("bob", role=Role.VIEWER),
    }
    edge.authenticator = ApiKeyAuthenticator(principals, salt="s")
    edge.app.quotas = Quotas(THROTTLE, LimitSettings())


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for value in node.values() for r in _refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in _refs(value)]
    return []


async def test_document_lists_exactly_the_routes(doc: dict[str, Any], edge: Edge) -> None:
    assert doc["openapi"].startswith("3.1")
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    app = create_management_app(edge, lifespan=False)
    routed = {
        (method, route.path.replace(":int", ""))
        for route in app.routes
        if isinstance(route, APIRoute) and route.include_in_schema
        for method in route.methods
    }
    assert documented == routed
    assert ("POST", "/api/v1/workflows/{workflow_id}/execute") in routed
    assert ("GET", "/health") in routed
    operation_ids = [op["operationId"] for ops in doc["paths"].values() for op in ops.values()]
    assert len(operation_ids) == len(set(operation_ids))
    for ref in _refs(doc):
        resolve(doc, ref)  # raises if dangling
    for path, operations in doc["paths"].items():
        names = set(re.findall(r"\{(\w+)\}", path))
        for operation in operations.values():
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert declared == names, path


async def test_error_responses_use_the_error_shape(doc: dict[str, Any]) -> None:
    error_ref = {"$ref": "#/components/schemas/ErrorBody"}
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            for code, response in operation["responses"].items():
                if int(code) >= 400:
                    assert response["content"]["application/json"]["schema"] == error_ref
            if path.startswith("/api/v1/workflows") and method != "get":
                assert "401" in operation["responses"], (method, path)


async def _name_taken(api: httpx.AsyncClient, url: str) -> httpx.Response:
    """Posting a name the tenant already uses (WORKFLOW_NAME_TAKEN)."""
    await api.post(url, json=doubler("taken"), headers=OWNER)
    return await api.post(url, json=doubler("taken"), headers=OWNER)


Produce = Callable[[httpx.AsyncClient, str], Awaitable[httpx.Response]]


def _create_cases() -> dict[int, Produce]:
    url = f"{API}/workflows"
    return {
        201: lambda api, _: api.post(url, json=doubler(f"created-{uuid.uuid4()}"), headers=OWNER),
        400: lambda api, _: api.post(url, content=b"{", headers=OWNER),
        401: lambda api, _: api.post(url, json=doubler()),
        403: lambda api, _: api.post(url, json=doubler(), headers=VIEWER),
        409: lambda api, _: _name_taken(api, url),
        413: lambda api, _: api.post(url, content=HUGE, headers=OWNER),
        415: lambda api, _: api.post(
            url, content=b"x", headers={**OWNER, "Content-Type": "text/plain"}
        ),
        422: lambda api, _: api.post(url, json={"name": "x", "steps": []}, headers=OWNER),
        429: lambda api, _: _throttled(api.post(url, json=doubler(), headers=OWNER)),
    }


def _get_cases() -> dict[int, Produce]:
    return {
        200: lambda api, wid: api.get(f"{API}/workflows/{wid}", headers=VIEWER),
        401: lambda api, wid: api.get(f"{API}/workflows/{wid}"),
        404: lambda api, _: api.get(f"{API}/workflows/missing", headers=VIEWER),
        429: lambda api, wid: _throttled(api.get(f"{API}/workflows/{wid}", headers=VIEWER)),
    }


async def _reused(api: httpx.AsyncClient, url: str) -> httpx.Response:
    """An executionId taken by another input: 409 EXECUTION_ID_REUSED."""
    first = await api.post(url, json={"input": {"n": 1}, "executionId": "taken"}, headers=OWNER)
    assert first.status_code == 202, first.text
    return await api.post(url, json={"input": {"n": 2}, "executionId": "taken"}, headers=OWNER)


def _execute_cases() -> dict[int, Produce]:
    def url(wid: str) -> str:
        return f"{API}/workflows/{wid}/execute"

    return {
        202: lambda api, wid: api.post(url(wid), json={"input": {"n": 1}}, headers=OWNER),
        400: lambda api, wid: api.post(url(wid), content=b"[", headers=OWNER),
        401: lambda api, wid: api.post(url(wid), json={}),
        403: lambda api, wid: api.post(url(wid), json={}, headers=VIEWER),
        404: lambda api, _: api.post(url("missing"), json={}, headers=OWNER),
        409: lambda api, wid: _reused(api, url(wid)),
        413: lambda api, wid: api.post(url(wid), content=HUGE, headers=OWNER),
        415: lambda api, wid: api.post(
            url(wid), content=b"input: {}", headers={**OWNER, "Content-Type": "application/yaml"}
        ),
        422: lambda api, wid: api.post(url(wid), json={"version": 0}, headers=OWNER),
        429: lambda api, wid: _throttled(api.post(url(wid), json={}, headers=OWNER)),
    }


def _list_executions_cases() -> dict[int, Produce]:
    url = f"{API}/executions"
    return {
        200: lambda api, _: api.get(url, headers=VIEWER),
        400: lambda api, _: api.get(url, params={"limit": "0"}, headers=VIEWER),
        401: lambda api, _: api.get(url),
        429: lambda api, _: _throttled(api.get(url, headers=VIEWER)),
    }


@pytest.mark.usefixtures("keyed")
@pytest.mark.parametrize(
    ("method", "path", "cases"),
    [
        ("post", "/api/v1/workflows", _create_cases()),
        ("get", "/api/v1/workflows/{workflow_id}", _get_cases()),
        ("post", "/api/v1/workflows/{workflow_id}/execute", _execute_cases()),
        ("get", "/api/v1/executions", _list_executions_cases()),
    ],
)
async def test_documented_responses_are_produced_and_match_their_schemas(
    api: httpx.AsyncClient, doc: dict[str, Any], method: str, path: str, cases: dict[int, Produce]
) -> None:
    responses = doc["paths"][path][method]["responses"]
    assert set(map(int, responses)) == set(cases)
    workflow_id = await create(api, doubler(), **OWNER)
    for code, produce in cases.items():
        response = await produce(api, workflow_id)
        assert response.status_code == code, (code, response.text)
        schema = responses[str(code)]["content"]["application/json"]["schema"]
        assert errors(response.json(), schema, doc) == [], code


async def test_bodies_validate_against_the_documented_schemas(
    api: httpx.AsyncClient, doc: dict[str, Any]
) -> None:
    def schema(path: str, method: str, code: int) -> dict[str, Any]:
        content = doc["paths"][path][method]["responses"][str(code)]["content"]
        found: dict[str, Any] = content["application/json"]["schema"]
        return found

    workflow_id = await create(api, approval())
    execution = await execute(api, workflow_id)
    await wait_for(api, execution["id"], {"waiting"})
    await api.post(
        f"{API}/executions/{execution['id']}/events",
        json={"name": "approval", "payload": {"by": "x"}},
    )
    await wait_for(api, execution["id"], {"succeeded"})
    checks = [
        ("/api/v1/workflows", "get", f"{API}/workflows"),
        ("/api/v1/workflows/{workflow_id}", "get", f"{API}/workflows/{workflow_id}"),
        (
            "/api/v1/workflows/{workflow_id}/versions",
            "get",
            f"{API}/workflows/{workflow_id}/versions",
        ),
        ("/api/v1/executions", "get", f"{API}/executions"),
        ("/api/v1/executions/{execution_id}", "get", f"{API}/executions/{execution['id']}"),
        (
            "/api/v1/executions/{execution_id}/steps",
            "get",
            f"{API}/executions/{execution['id']}/steps",
        ),
        (
            "/api/v1/executions/{execution_id}/events",
            "get",
            f"{API}/executions/{execution['id']}/events",
        ),
        ("/api/v1/workflows/{workflow_id}/export", "get", f"{API}/workflows/{workflow_id}/export"),
    ]
    for path, method, url in checks:
        response = await api.get(url)
        assert response.status_code == 200, url
        assert errors(response.json(), schema(path, method, 200), doc) == [], url
    detail = schema("/api/v1/executions/{execution_id}", "get", 200)
    broken = (await api.get(f"{API}/executions/{execution['id']}")).json()
    broken["steps"][0]["status"] = "sleeping"
    del broken["workflowId"]
    assert sorted(errors(broken, detail, doc)) == [
        "/steps/0/status: 'sleeping' not in ['scheduled', 'running', 'waiting', 'succeeded', "
        "'failed', 'skipped', 'cancelled']",
        "/workflowId: required",
    ]


async def test_request_schemas_accept_what_the_api_accepts(doc: dict[str, Any]) -> None:
    create_body = doc["paths"]["/api/v1/workflows"]["post"]["requestBody"]
    assert set(create_body["content"]) == {"application/json", "application/yaml"}
    assert errors(doubler(), create_body["content"]["application/json"]["schema"], doc) == []
    execute_op = doc["paths"]["/api/v1/workflows/{workflow_id}/execute"]["post"]
    execute_schema = execute_op["requestBody"]["content"]["application/json"]["schema"]
    assert errors({"input": {"n": 1}, "executionId": "abc"}, execute_schema, doc) == []
    assert errors({"inputs": {}}, execute_schema, doc) == ["/inputs: not allowed"]
    listing = {p["name"] for p in doc["paths"]["/api/v1/workflows"]["get"]["parameters"]}
    assert listing == {"active_only", "tags", "limit", "cursor"}
