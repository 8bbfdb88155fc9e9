"""Hostile requests at the HTTP edge: each attack of issue 9, answered with a stable code
and nothing stored.

- a JSON or YAML body nested 100,000 deep (it once answered 500 with a RecursionError);
- a body over the limit sent chunked, with no Content-Length to refuse it by;
- a cross-site ``POST`` with ``Content-Type: text/plain`` (a "simple" request a
  browser sends without a preflight: it once created a workflow on the dev server),
  and cross-site JSON from another origin;
- an edge without an authenticator: it cannot be built at all.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest

from shared.api.edge import Edge
from shared.api.middleware import MAX_BODY_BYTES
from shared.api.rest import create_management_app
from shared.composition import LocalRuntime

API = "/api/v1"
FLOW = {"name": "x", "steps": [{"id": "a", "type": "transform", "config": {"set": {"n": 1}}}]}
DEEP = 100_000


async def _stored(api: httpx.AsyncClient) -> list[object]:
    listed = await api.get(f"{API}/workflows")
    assert listed.status_code == 200
    items: list[object] = listed.json()["items"]
    return items


def _code(response: httpx.Response) -> tuple[int, str]:
    body = response.json()
    if "error" in body:
        return response.status_code, str(body["error"]["code"])
    return response.status_code, str(body["errors"][0]["extensions"]["code"])


@pytest.mark.parametrize(
    ("path", "body", "media", "expected"),
    [
        (f"{API}/workflows", "[" * DEEP + "]" * DEEP, "application/json", (400, "INVALID_INPUT")),
        (f"{API}/workflows/validate", '{"a":' * DEEP + "1" + "}" * DEEP, "application/json",
         (400, "INVALID_INPUT")),
        (f"{API}/workflows", "a: " + "[" * DEEP + "]" * DEEP, "application/yaml",
         (400, "INVALID_INPUT")),
        (f"{API}/workflows/import", "- " * 5000 + "x", "application/yaml", (400, "INVALID_INPUT")),
        ("/graphql", '{"query": "{ workflows { id } }", "variables": ' + "[" * DEEP + "]" * DEEP
         + "}", "application/json", (400, "INVALID_FORMAT")),
    ],
)  # fmt: skip
async def test_deeply_nested_bodies_are_refused_not_crashed(
    api: httpx.AsyncClient, path: str, body: str, media: str, expected: tuple[int, str]
) -> None:
    response = await api.post(path, content=body, headers={"Content-Type": media})
    assert _code(response) == expected, response.text[:300]
    assert await _stored(api) == []


async def test_deep_nesting_inside_an_execution_input_is_refused(api: httpx.AsyncClient) -> None:
    workflow_id = (await api.post(f"{API}/workflows", json=FLOW)).json()["id"]
    body = '{"input": {"x": ' + "[" * 150 + "]" * 150 + "}}"  # under the parser's recursion
    response = await api.post(
        f"{API}/workflows/{workflow_id}/execute",
        content=body,
        headers={"Content-Type": "application/json"},
    )
    assert _code(response) == (400, "INVALID_INPUT")
    listed = await api.get(f"{API}/executions", params={"workflow_id": workflow_id})
    assert listed.json()["items"] == []


async def test_a_chunked_body_over_the_limit_is_refused(api: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: transfer-encoding chunked
        yield b'{"name": "x", "description": "'
        for _ in range(MAX_BODY_BYTES // 65536 + 2):
            yield b"x" * 65536
        yield b'", "steps": []}'

    response = await api.post(
        f"{API}/workflows", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    assert _code(response) == (413, "PAYLOAD_TOO_LARGE")
    assert await _stored(api) == []


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Content-Type": "text/plain", "Origin": "https://evil.example"}, 403),
        ({"Content-Type": "text/plain"}, 415),
        ({"Content-Type": "application/x-www-form-urlencoded"}, 415),
        ({"Content-Type": "application/json", "Origin": "https://evil.example"}, 403),
        ({"Content-Type": "application/json", "Origin": "null"}, 403),
        ({"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"}, 403),
    ],
)
async def test_cross_site_requests_change_nothing(
    api: httpx.AsyncClient, headers: dict[str, str], expected: int
) -> None:
    response = await api.post(f"{API}/workflows", content=json.dumps(FLOW), headers=headers)
    assert response.status_code == expected, response.text
    assert await _stored(api) == []
    graphql = await api.post(
        "/graphql",
        content=json.dumps({"query": 'mutation { deleteWorkflow(id: "x") { __typename } }'}),
        headers=headers,
    )
    assert graphql.status_code == expected


async def test_same_origin_and_allowed_origins_may_write(edge: Edge) -> None:
    app = create_management_app(edge, allowed_origins=["https://console.example"], lifespan=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.example") as api:
        own = await api.post(
            f"{API}/workflows", json=FLOW, headers={"Origin": "http://api.example"}
        )
        assert own.status_code == 201, own.text
        console = await api.post(
            f"{API}/workflows",
            json={**FLOW, "name": "console"},
            headers={"Origin": "https://console.example"},
        )
        assert console.status_code == 201
        other = await api.post(
            f"{API}/workflows", json=FLOW, headers={"Origin": "https://console.example.evil"}
        )
        assert other.status_code == 403
        assert len(await _stored(api)) == 2


def test_an_edge_cannot_be_built_without_an_authenticator(runtime: LocalRuntime) -> None:
    with pytest.raises(TypeError):
        Edge(runtime=runtime)  # type: ignore[call-arg]
