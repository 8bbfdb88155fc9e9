"""The whole local service (`wfe dev`) as a user meets it: a real process, real HTTP,
real WebSocket and SSE clients, a real GraphQL client, Pub/Sub and Scheduler calls."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import websockets
from gql import Client, GraphQLRequest, gql
from gql.transport.websockets import WebsocketsTransport
from processes import ServiceProcess, wfe_dev_argv

from shared.api.identity import DEV_AUDIENCE, DEV_INVOKER, DevKeys

TERMINAL = {"execution.succeeded", "execution.failed", "execution.cancelled", "execution.timed_out"}
FLOW = {
    "name": "e2e-orders",
    "trigger": {"type": "event", "topic": "orders", "filter": "data.amount > 100"},
    "steps": [
        {"id": "prepare", "type": "transform", "config": {"set": {"n": 1}}, "nextSteps": ["pause"]},
        {"id": "pause", "type": "wait", "config": {"seconds": 0.6}, "nextSteps": ["finish"]},
        {"id": "finish", "type": "transform", "config": {"output": "${vars.n + 1}"}},
    ],
}
REPORT = {
    "name": "e2e-report",
    "trigger": {"type": "schedule", "cron": "0 8 * * 1-5", "timezone": "Europe/Paris"},
    "steps": [{"id": "only", "type": "transform", "config": {"output": "done"}}],
}


@pytest.fixture(scope="module")
def dev_keys() -> DevKeys:
    """The key the dev server verifies internal calls with (``WFE_DEV_KEY_FILE``)."""
    return DevKeys.generate()


@pytest.fixture(scope="module")
def invoker(dev_keys: DevKeys) -> dict[str, str]:
    """``Authorization`` as Pub/Sub push and Cloud Scheduler send it, for the dev server."""
    return {"Authorization": f"Bearer {dev_keys.mint(DEV_AUDIENCE, DEV_INVOKER)}"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, dev_keys: DevKeys) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("dev")
    key_file = folder / "dev-key.pem"
    key_file.write_text(dev_keys.private_pem)
    env = {"WFE_DEV_KEY_FILE": str(key_file)}
    process = ServiceProcess(wfe_dev_argv(folder / "dev.db"), folder, env)
    try:
        process.wait_healthy()
        yield process.base
    finally:
        output = process.stop()
        assert "Traceback" not in output, output[-4000:]


def _create(base: str, body: dict[str, Any]) -> str:
    response = httpx.post(f"{base}/api/v1/workflows", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def _ws_events(base: str, execution_id: str) -> list[dict[str, Any]]:
    url = base.replace("http", "ws", 1) + f"/ws/executions/{execution_id}"
    events = []
    async with websockets.connect(url) as socket_:
        async for raw in socket_:
            event = json.loads(raw)
            if event.get("type") == "keepalive":
                continue
            events.append(event)
            if event["type"] in TERMINAL:
                break
    return events


async def _sse_events(base: str, execution_id: str) -> list[dict[str, Any]]:
    events = []
    async with (
        httpx.AsyncClient(timeout=30) as client,
        client.stream("GET", f"{base}/sse/executions/{execution_id}") as response,
    ):
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line.startswith("data:"):
                events.append(json.loads(line[5:]))
    return events


async def _graphql_statuses(base: str, execution_id: str) -> list[str]:
    url = base.replace("http", "ws", 1) + "/graphql"
    transport = WebsocketsTransport(
        url=url, subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL]
    )
    query = gql("subscription ($id: ID!) { workflowStatus(executionId: $id) }")
    statuses = []
    async with Client(transport=transport) as session:
        request = GraphQLRequest(query, variable_values={"id": execution_id})
        async for item in session.subscribe(request):
            statuses.append(item["workflowStatus"])
    return statuses


async def test_execute_and_watch_over_websocket_sse_and_graphql(server: str) -> None:
    workflow_id = _create(server, {**FLOW, "name": "e2e-watch", "trigger": {"type": "manual"}})
    started = httpx.post(f"{server}/api/v1/workflows/{workflow_id}/execute", json={"input": {}})
    assert started.status_code == 202, started.text
    execution_id = started.json()["id"]
    ws, sse, statuses = await asyncio.wait_for(
        asyncio.gather(
            _ws_events(server, execution_id),
            _sse_events(server, execution_id),
            _graphql_statuses(server, execution_id),
        ),
        30,
    )
    stored = httpx.get(f"{server}/api/v1/executions/{execution_id}/events").json()["items"]
    assert [e["seq"] for e in ws] == [e["seq"] for e in stored] == list(range(1, len(ws) + 1))
    assert [e["seq"] for e in sse] == [e["seq"] for e in stored]
    assert ws[-1]["type"] == "execution.succeeded"
    finished = {e.get("stepId") for e in ws if e["type"] == "step.succeeded"}
    assert finished == {"prepare", "pause", "finish"}
    assert statuses[-1] == "SUCCEEDED"
    answer = httpx.post(
        f"{server}/graphql",
        json={
            "query": "query ($id: ID!) "
            "{ execution(id: $id) { status result steps { stepId status } } }",
            "variables": {"id": execution_id},
        },
    ).json()
    assert answer["data"]["execution"]["status"] == "SUCCEEDED"
    assert answer["data"]["execution"]["result"] == 2
    assert [s["stepId"] for s in answer["data"]["execution"]["steps"]] == [
        "prepare",
        "pause",
        "finish",
    ]


def _cloud_event(message_id: str, data: dict[str, Any]) -> tuple[dict[str, str], bytes]:
    body = {
        "message": {
            "data": base64.b64encode(json.dumps(data).encode()).decode(),
            "messageId": message_id,
            "attributes": {"source": "shop"},
        },
        "subscription": "projects/demo/subscriptions/wfe",
    }
    headers = {
        "ce-id": message_id,
        "ce-specversion": "1.0",
        "ce-type": "google.cloud.pubsub.topic.v1.messagePublished",
        "ce-source": "//pubsub.googleapis.com/projects/demo/topics/orders",
        "content-type": "application/json",
    }
    return headers, json.dumps(body).encode()


def _executions(base: str, workflow_id: str) -> list[dict[str, Any]]:
    items = httpx.get(f"{base}/api/v1/executions", params={"workflow_id": workflow_id}).json()
    return list(items["items"])


def test_pubsub_cloudevent_twice_starts_one_execution(server: str, invoker: dict[str, str]) -> None:
    workflow_id = _create(server, FLOW)
    headers, body = _cloud_event("msg-1", {"amount": 250})
    headers.update(invoker)
    unsigned = httpx.post(f"{server}/triggers/pubsub", headers=_without_auth(headers), content=body)
    assert unsigned.status_code == 401, unsigned.text
    for _ in range(2):
        answer = httpx.post(f"{server}/triggers/pubsub", headers=headers, content=body)
        assert answer.status_code == 200, answer.text
    small_headers, small = _cloud_event("msg-2", {"amount": 5})
    small_headers.update(invoker)
    assert (
        httpx.post(f"{server}/triggers/pubsub", headers=small_headers, content=small).status_code
        == 200
    )
    executions = _executions(server, workflow_id)
    assert len(executions) == 1
    assert executions[0]["input"]["event"]["data"] == {"amount": 250}


def _without_auth(headers: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() != "authorization"}


def test_scheduler_call_starts_one_execution_per_tick(server: str, invoker: dict[str, str]) -> None:
    workflow_id = _create(server, REPORT)
    headers = {
        "X-CloudScheduler-JobName": f"wfe-{workflow_id}",
        "X-CloudScheduler-ScheduleTime": "2026-11-26T07:00:00Z",
        **invoker,
    }
    for _ in range(2):
        answer = httpx.post(f"{server}/triggers/schedule/{workflow_id}", headers=headers)
        assert answer.status_code == 200, answer.text
    later = {**headers, "X-CloudScheduler-ScheduleTime": "2026-11-27T07:00:00Z"}
    assert httpx.post(f"{server}/triggers/schedule/{workflow_id}", headers=later).is_success
    assert len(_executions(server, workflow_id)) == 2


def test_examples_are_loaded_and_run(server: str) -> None:
    names = {
        w["name"]: w["id"]
        for w in httpx.get(f"{server}/api/v1/workflows", params={"limit": 100}).json()["items"]
    }
    assert {"order-fulfilment", "expense-approval", "lead-enrichment"} <= set(names)
    started = httpx.post(
        f"{server}/api/v1/workflows/{names['order-fulfilment']}/execute", json={"input": {}}
    ).json()
    for _ in range(100):
        execution = httpx.get(f"{server}/api/v1/executions/{started['id']}").json()
        if execution["status"] not in ("pending", "running", "waiting"):
            break
        time.sleep(0.1)
    assert execution["status"] == "succeeded", execution
