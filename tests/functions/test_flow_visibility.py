"""Flow control made visible: a queued execution's reason and place in REST and GraphQL,
per-key usage (``GET /workflows/{id}/concurrency``, ``workflowConcurrency``), and the
``execution.queued`` / ``execution.dequeued`` events on the WebSocket, SSE and GraphQL
subscription streams. The real management app over a started local runtime (SQLite)."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _create_api import API, create, execute, wait_for
from _schema_check import errors
from _stream_server import ServerThread, read_sse, ws_read
from websockets.asyncio.client import connect

from shared.api.auth import Principal, Role
from shared.api.edge import Edge
from shared.api.graphql.context import build_context
from shared.api.graphql.schema import schema
from shared.app.service import StartRequest

pytestmark = pytest.mark.timeout(60)

PRIVATE = re.compile(r"[0-9a-f]{40}")
"""A slot document id's digest (SHA-256 of tenant and internal key): never shown."""


def held(*, key: str | None = None, priority: str | None = None) -> dict[str, Any]:
    """One execution at a time (per ``key``); each waits for the ``go`` event."""
    spec: dict[str, Any] = {"limit": 1}
    if key is not None:
        spec["key"] = key
    flow: dict[str, Any] = {
        "name": f"held-{uuid.uuid4().hex[:8]}",
        "concurrency": [spec],
        "steps": [
            {
                "id": "hold",
                "type": "wait_for_event",
                "config": {"event": "go", "timeoutSeconds": 600},
            }
        ],
    }
    if priority is not None:
        flow["priority"] = priority
    return flow


async def get(api: httpx.AsyncClient, path: str, **headers: str) -> dict[str, Any]:
    response = await api.get(f"{API}{path}", headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def go(api: httpx.AsyncClient, execution_id: str) -> None:
    response = await api.post(f"{API}/executions/{execution_id}/events", json={"name": "go"})
    assert response.status_code == 202, response.text


async def test_a_queued_execution_shows_its_reason_and_place(api: httpx.AsyncClient) -> None:
    workflow_id = await create(api, held())
    first = (await execute(api, workflow_id))["id"]
    await wait_for(api, first, {"waiting"})
    answer = await execute(api, workflow_id)
    second = answer["id"]
    assert answer["status"] == "queued" and answer["queue"]["position"] == 1  # the 202
    third = (await execute(api, workflow_id))["id"]

    detail = await get(api, f"/executions/{second}")
    assert detail["status"] == "queued"
    queue = detail["queue"]
    assert set(queue) == {"reason", "key", "priority", "queuedAt", "position"}
    assert queue["reason"] == "waiting for concurrency slot"
    assert (queue["key"], queue["priority"], queue["position"]) == ("", 0, 1)
    assert (await get(api, f"/executions/{third}"))["queue"]["position"] == 2
    # The running one shows no queue; internals (slot ids, the queue's key) never leak.
    assert "queue" not in await get(api, f"/executions/{first}")
    for body in (detail, await get(api, f"/executions?workflow_id={workflow_id}")):
        text = str(body)
        assert not PRIVATE.search(text), text
        assert "waitKey" not in text and "held" not in text and "slotKey" not in text
        assert f"w:{workflow_id}" not in text

    listed = await get(api, f"/executions?status=queued&workflow_id={workflow_id}")
    places = {item["id"]: item["queue"]["position"] for item in listed["items"]}
    assert places == {second: 1, third: 2}
    assert all(item["status"] == "queued" for item in listed["items"])

    await go(api, first)  # the slot frees: the head starts, the other moves up
    await wait_for(api, second, {"waiting"})
    assert "queue" not in await get(api, f"/executions/{second}")
    assert (await get(api, f"/executions/{third}"))["queue"]["position"] == 1


async def test_priority_and_keys_decide_the_place(api: httpx.AsyncClient) -> None:
    workflow_id = await create(api, held(key="input.customer", priority="input.p"))
    ids: dict[str, str] = {}
    for name, customer, p in [
        ("acme-run", "acme", 0),
        ("acme-low", "acme", 0),
        ("acme-high", "acme", 7),
        ("beta-run", "beta", 0),
    ]:
        ids[name] = (await execute(api, workflow_id, input={"customer": customer, "p": p}))["id"]
        if name.endswith("-run"):
            await wait_for(api, ids[name], {"waiting"})
    low = (await get(api, f"/executions/{ids['acme-low']}"))["queue"]
    high = (await get(api, f"/executions/{ids['acme-high']}"))["queue"]
    assert (high["position"], high["priority"], high["key"]) == (1, 7, "acme")
    assert (low["position"], low["priority"]) == (2, 0)
    assert high["reason"] == "waiting for concurrency slot key=acme"

    usage = await get(api, f"/workflows/{workflow_id}/concurrency")
    assert usage["workflowId"] == workflow_id
    assert usage["limits"] == [{"limit": 1, "key": "input.customer", "scope": "workflow"}]
    keys = {key["key"]: key for key in usage["keys"]}
    assert set(keys) == {"acme", "beta"}
    assert (keys["acme"]["running"], keys["acme"]["queued"], keys["acme"]["limit"]) == (1, 2, 1)
    assert (keys["beta"]["running"], keys["beta"]["queued"]) == (1, 0)
    assert "oldestQueuedAt" not in keys["beta"]
    assert keys["acme"]["oldestQueuedAt"] == low["queuedAt"]  # the oldest, not the head
    assert keys["acme"]["oldestQueuedSeconds"] >= 0
    assert usage["keys"][0]["key"] in ("acme", "beta") and usage["truncated"] is False


async def test_usage_is_read_like_the_workflow_and_tenant_isolated(
    api: httpx.AsyncClient,
) -> None:
    workflow_id = await create(api, held())
    path = f"{API}/workflows/{workflow_id}/concurrency"
    other = await api.get(path, headers={"X-Tenant": "other"})
    assert (other.status_code, other.json()["error"]["code"]) == (404, "NOT_FOUND")
    missing = await api.get(f"{API}/workflows/nope/concurrency")
    assert missing.status_code == 404
    idle = await get(api, f"/workflows/{workflow_id}/concurrency")
    assert idle["keys"] == [] and idle["limits"] == [{"limit": 1, "scope": "workflow"}]


async def test_responses_match_the_openapi_document(api: httpx.AsyncClient) -> None:
    document = await get(api, "/openapi.json")
    paths = document["paths"]
    usage_op = paths[f"{API}/workflows/{{workflow_id}}/concurrency"]["get"]
    one_op = paths[f"{API}/executions/{{execution_id}}"]["get"]
    list_op = paths[f"{API}/executions"]["get"]
    view = document["components"]["schemas"]["QueueView"]
    assert set(view["properties"]) == {
        "reason",
        "key",
        "priority",
        "queuedAt",
        "position",
        "notBefore",
    }

    workflow_id = await create(api, held())
    first = (await execute(api, workflow_id))["id"]
    await wait_for(api, first, {"waiting"})
    second = (await execute(api, workflow_id))["id"]

    def schema_of(operation: dict[str, Any]) -> dict[str, Any]:
        found: dict[str, Any] = operation["responses"]["200"]["content"]["application/json"]
        return found["schema"]  # type: ignore[no-any-return]

    for operation, body in [
        (one_op, await get(api, f"/executions/{second}")),
        (list_op, await get(api, "/executions?status=queued")),
        (usage_op, await get(api, f"/workflows/{workflow_id}/concurrency")),
    ]:
        assert errors(body, schema_of(operation), document) == []


# -- GraphQL ------------------------------------------------------------------------

QUEUE = """query($id: ID!) { execution(id: $id) {
  status queue { reason key priority queuedAt position } } }"""
USAGE = """query($id: ID!) { workflowConcurrency(workflowId: $id) {
  workflowId truncated limits { limit key scope }
  keys { key scope limit running queued oldestQueuedAt oldestQueuedSeconds } } }"""


async def gql(
    api: httpx.AsyncClient, query: str, variables: dict[str, Any], tenant: str = "default"
) -> dict[str, Any]:
    response = await api.post(
        "/graphql", json={"query": query, "variables": variables}, headers={"X-Tenant": tenant}
    )
    body: dict[str, Any] = response.json()
    assert "errors" not in body, body
    return body["data"]  # type: ignore[no-any-return]


async def test_graphql_shows_the_queue_and_the_usage(api: httpx.AsyncClient) -> None:
    workflow_id = await create(api, held(key="input.customer"))
    first = (await execute(api, workflow_id, input={"customer": "acme"}))["id"]
    await wait_for(api, first, {"waiting"})
    second = (await execute(api, workflow_id, input={"customer": "acme"}))["id"]

    queued = (await gql(api, QUEUE, {"id": second}))["execution"]
    assert queued["status"] == "QUEUED"
    place = queued["queue"]
    assert place["reason"] == "waiting for concurrency slot key=acme"
    assert (place["key"], place["priority"], place["position"]) == ("acme", 0, 1)
    assert place["queuedAt"] is not None
    assert (await gql(api, QUEUE, {"id": first}))["execution"]["queue"] is None

    usage = (await gql(api, USAGE, {"id": workflow_id}))["workflowConcurrency"]
    assert usage["limits"] == [{"limit": 1, "key": "input.customer", "scope": "WORKFLOW"}]
    [key] = usage["keys"]
    assert (key["key"], key["running"], key["queued"], key["limit"]) == ("acme", 1, 1, 1)
    assert key["oldestQueuedAt"] == place["queuedAt"] and key["oldestQueuedSeconds"] >= 0
    elsewhere = await gql(api, USAGE, {"id": workflow_id}, tenant="other")
    assert elsewhere["workflowConcurrency"] is None


async def test_graphql_subscription_sees_queued_then_dequeued(
    edge: Edge, api: httpx.AsyncClient
) -> None:
    workflow_id = await create(api, held())
    first = (await execute(api, workflow_id))["id"]
    await wait_for(api, first, {"waiting"})
    second = (await execute(api, workflow_id))["id"]
    context = build_context(Principal("alice", role=Role.OWNER), edge.app, edge.broker)
    stream = await schema.subscribe(
        "subscription($id: ID!) { executionEvents(executionId: $id) { type status data } }",
        variable_values={"id": second},
        context_value=context,
    )
    assert not isinstance(stream, type(None)) and hasattr(stream, "__anext__")
    seen: list[dict[str, Any]] = []

    async def read() -> None:
        async for result in stream:
            assert not result.errors, result.errors
            assert result.data is not None
            seen.append(result.data["executionEvents"])
            if seen[-1]["type"] == "execution.dequeued":
                return

    reader = asyncio.create_task(read())
    await _until(lambda: any(e["type"] == "execution.queued" for e in seen))
    await go(api, first)
    await asyncio.wait_for(reader, 10)
    await stream.aclose()
    types = [e["type"] for e in seen]
    assert types[0] == "execution.queued" and types[-1] == "execution.dequeued"
    assert seen[0]["status"] == "queued"
    assert seen[0]["data"]["reason"] == "waiting for concurrency slot"
    assert seen[0]["data"]["key"] == "" and seen[-1]["status"] == "running"


async def _until(check: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


# -- status-stream: WebSocket and SSE over a real socket ------------------------------


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerThread]:
    running = ServerThread(tmp_path / "streams.db", keepalive=0.3).start()
    try:
        yield running
    finally:
        running.stop()


async def test_ws_and_sse_subscribers_see_queued_then_dequeued(server: ServerThread) -> None:
    flow = await server.app(lambda rt: rt.app.create_workflow(held(key="input.customer")))
    start = StartRequest(flow.id, {"customer": "acme"})
    first = await server.app(lambda rt: rt.app.start_execution(start))
    for _ in range(500):
        found = await server.app(lambda rt: rt.app.get_execution(first.id))
        if found.status == "waiting":
            break
        await asyncio.sleep(0.02)
    second = await server.app(lambda rt: rt.app.start_execution(start))
    assert second.status == "queued"

    def dequeued(message: dict[str, Any]) -> bool:
        return message.get("type") == "execution.dequeued"

    def queued_frame(frame: dict[str, Any]) -> bool:
        return frame.get("event") == "execution.queued"

    async with (
        connect(f"{server.ws_url}/ws/executions/{second.id}") as ws,
        httpx.AsyncClient(base_url=server.url, timeout=10) as client,
        client.stream("GET", f"/sse/executions/{second.id}") as response,
    ):
        lines = response.aiter_lines()
        before = await read_sse(lines, until=queued_frame)
        first_ws = json_first(await ws_read(ws, until=lambda m: m["type"] == "execution.queued"))
        await server.app(lambda rt: rt.app.send_event(first.id, "go"))
        after = await read_sse(lines, until=lambda f: f.get("event") == "execution.dequeued")
        rest_ws, _ = await ws_read(ws, until=dequeued)
        await server.app(lambda rt: rt.app.send_event(second.id, "go"))
        ended = await read_sse(lines)  # both streams end with the execution
        _, code = await ws_read(ws)
    assert code == 1000 and ended[-1]["event"] == "execution.succeeded"
    queued = first_ws["data"]
    assert (queued["reason"], queued["key"]) == ("waiting for concurrency slot key=acme", "acme")
    assert first_ws["status"] == "queued"
    assert rest_ws[-1]["type"] == "execution.dequeued" and rest_ws[-1]["data"]["key"] == "acme"
    sse_queued = before[-1]["data"]
    assert sse_queued["data"]["reason"] == "waiting for concurrency slot key=acme"
    assert after[-1]["data"]["status"] == "running"


def json_first(read: tuple[list[dict[str, Any]], int | None]) -> dict[str, Any]:
    """The last message read (the one ``until`` stopped at)."""
    messages, _ = read
    assert messages, "nothing received"
    return messages[-1]
