"""The cloud path end to end, with real processes: the four functions each in its own
process on the Firestore, Pub/Sub and Cloud Tasks emulators.

A workflow created through ``create``'s REST API (an event trigger on a topic) is
started by a message published with the real Pub/Sub client: two push subscriptions
deliver it (through a tap that records trigger-handler's answers), so it is pushed
twice. Its steps hop through the Tasks emulator to execute-step, including an http
step retried after a 503 and a parallel branch; one of its tasks is created a second
time under another name while it waits, and delivered too. WebSocket clients of
status-stream see every event from the Firestore listeners, in seq order.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import httpx
import pytest
import websockets
from _gcp_stack import (
    Function,
    Helper,
    Tasks,
    helper_server,
    start_function,
    stop_function,
    wait_ready,
)
from google.pubsub_v1 import PublisherClient, PubsubMessage
from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport

from shared.dev.emulators import free_port
from shared.dev.on_emulators import create_push_topics, create_queue, dev_environment

pytestmark = [pytest.mark.emulator, pytest.mark.slow, pytest.mark.timeout(90)]

TOPIC = "orders"
TERMINAL = {"execution.succeeded", "execution.failed", "execution.cancelled", "execution.timed_out"}
READY = {"create": "/api/v1/workflows", "execute-step": "/healthz"}
READY |= {"trigger-handler": "/healthz", "status-stream": "/health"}


def flow(flaky_url: str) -> dict[str, Any]:
    return {
        "name": "e2e-gcp",
        "trigger": {"type": "event", "topic": TOPIC, "filter": "data.amount > 100"},
        "steps": [
            {
                "id": "prepare",
                "type": "transform",
                "config": {"set": {"n": 1}},
                "nextSteps": ["fetch"],
            },
            {
                "id": "fetch",
                "type": "http",
                "config": {"url": f"{flaky_url}/flaky", "timeoutSeconds": 5},
                "onError": {
                    "strategy": "retry",
                    "retry": {"maxAttempts": 3, "initialDelaySeconds": 1.5, "jitter": 0},
                },
                "nextSteps": ["both"],
            },
            {
                "id": "both",
                "type": "parallel",
                "config": {"branches": [{"name": "a", "start": "a"}, {"name": "b", "start": "b"}]},
                "nextSteps": ["done"],
            },
            {"id": "a", "type": "transform", "config": {"output": "A"}},
            {"id": "b", "type": "wait", "config": {"seconds": 0.2}},
            {"id": "done", "type": "transform", "config": {"output": {"ok": "${prev.a == 'A'}"}}},
        ],
    }


@pytest.fixture(scope="module")
def stack(
    firestore_emulator_host: str,
    pubsub_emulator_host: str,
    tasks_emulator_host: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[dict[str, Function], Helper, Tasks, str]]:
    """Every piece started; yields (functions by name, helper, tasks, project)."""
    project = f"e2e-{uuid.uuid4().hex[:10]}"
    queue = create_queue(tasks_emulator_host, project, "us-central1", "steps")
    logs = tmp_path_factory.mktemp("functions")
    with helper_server() as helper:
        ports = {name: free_port() for name in READY}
        helper.trigger_url = f"http://127.0.0.1:{ports['trigger-handler']}"
        env = dev_environment(
            project=project,
            location="us-central1",
            queue="steps",
            port=ports["execute-step"],
            firestore=firestore_emulator_host,
            pubsub=pubsub_emulator_host,
            tasks=tasks_emulator_host,
        )
        env["WFE_EXECUTE_STEP_URL"] = f"http://127.0.0.1:{ports['execute-step']}/"
        env["WFE_HTTP_ALLOWED_HOSTS"] = "127.0.0.1"
        functions = {name: start_function(name, env, logs, port) for name, port in ports.items()}
        tasks = Tasks(tasks_emulator_host, queue)
        try:
            for name, function in functions.items():
                wait_ready(function, READY[name])
            tap = f"{helper.url}/push"
            create_push_topics(pubsub_emulator_host, project, [TOPIC], tap)  # {topic}-wfe
            create_push_topics(pubsub_emulator_host, project, [TOPIC], tap, suffix="-again")
            yield functions, helper, tasks, project
        finally:
            tasks.close()
            for function in functions.values():
                stop_function(function)


def publish(host: str, project: str, data: dict[str, Any]) -> str:
    channel = grpc.insecure_channel(host)
    try:
        publisher = PublisherClient(transport=PublisherGrpcTransport(channel=channel))
        message = PubsubMessage(data=json.dumps(data).encode())
        topic = publisher.topic_path(project, TOPIC)
        return str(publisher.publish(topic=topic, messages=[message]).message_ids[0])
    finally:
        channel.close()


async def until(check: Any, timeout: float = 30.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = await asyncio.to_thread(check)
        if found:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def watch(url: str, execution: asyncio.Future[str] | None = None) -> list[dict[str, Any]]:
    """Events from a status-stream WebSocket until the (given) execution's terminal one."""
    events: list[dict[str, Any]] = []
    async with websockets.connect(url) as socket_:
        async for raw in socket_:
            event = json.loads(raw)
            if event.get("type") == "keepalive":
                continue
            events.append(event)
            if event["type"] in TERMINAL and (
                execution is None or event["executionId"] == await execution
            ):
                return events
    return events


async def test_published_message_runs_through_the_emulators_once(
    stack: tuple[dict[str, Function], Helper, Tasks, str], pubsub_emulator_host: str
) -> None:
    functions, helper, tasks, project = stack
    api = functions["create"].url + "/api/v1"
    streams = functions["status-stream"].url.replace("http", "ws", 1)
    async with httpx.AsyncClient(timeout=30) as client:
        created = await client.post(f"{api}/workflows", json=flow(helper.url))
        assert created.status_code == 201, created.text
        workflow_id = created.json()["id"]
        found: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        whole = asyncio.create_task(watch(f"{streams}/ws/workflows/{workflow_id}", found))
        await asyncio.sleep(0.5)  # the workflow stream is live before the message
        message_id = await asyncio.to_thread(
            publish, pubsub_emulator_host, project, {"amount": 250}
        )

        def executions() -> list[dict[str, Any]]:
            listing = httpx.get(f"{api}/executions", params={"workflow_id": workflow_id})
            return list(listing.json()["items"])

        (execution,) = await until(executions, what="the execution")
        found.set_result(execution["id"])
        single = asyncio.create_task(watch(f"{streams}/ws/executions/{execution['id']}"))

        def retry_task() -> Any:  # the fetch step's retry, due in about 1.5 s
            later = datetime.now(UTC) + timedelta(seconds=0.3)
            return next((t for t in tasks.pending() if t.schedule_time > later), None)

        pending = await until(retry_task, what="the retry's task")
        duplicate = await asyncio.to_thread(tasks.duplicate, pending, f"dup-{uuid.uuid4().hex}")
        live, replayed = await asyncio.wait_for(asyncio.gather(whole, single), 60)

        await until(lambda: duplicate not in {t.name for t in tasks.pending()}, what="dup")
        await until(lambda: len(helper.answered()) >= 2, what="both pushes answered")
        body = bytes(pending.http_request.body)
        again = await asyncio.gather(
            *(client.post(functions["execute-step"].url, content=body) for _ in range(2))
        )
        stored = (await client.get(f"{api}/executions/{execution['id']}/events")).json()["items"]
        steps = (await client.get(f"{api}/executions/{execution['id']}/steps")).json()["items"]
        final = (await client.get(f"{api}/executions/{execution['id']}")).json()
        assert len(executions()) == 1

    seqs = [e["seq"] for e in stored]
    assert seqs == list(range(1, len(stored) + 1))
    assert [e["seq"] for e in replayed] == seqs, "execution stream: every event, in order"
    mine = [e["seq"] for e in live if e["executionId"] == execution["id"]]
    assert mine == seqs, "workflow stream: every event, live from the Firestore listener"
    assert final["status"] == "succeeded", final
    succeeded = sorted(e["stepId"] for e in stored if e["type"] == "step.succeeded")
    assert succeeded == ["a", "b", "both", "done", "fetch", "prepare"]
    assert [e["stepId"] for e in stored if e["type"] == "step.retrying"] == ["fetch"]
    attempts = sorted((s["stepId"], s["attempt"]) for s in steps)
    assert attempts == [
        ("a", 1),
        ("b", 1),
        ("both", 1),
        ("done", 1),
        ("fetch", 1),
        ("fetch", 2),
        ("prepare", 1),
    ]
    assert helper.flaky_calls == 2, "the 503, then one 200: the duplicate task ran nothing"
    assert [r.status_code for r in again] == [200, 200]
    assert {r.json()["status"] for r in again} == {"duplicate"}
    # One 200 per subscription (a 503, e.g. on contention, is pushed again).
    outcomes = sorted(p["executions"][0]["status"] for p in helper.answered())
    assert outcomes == ["duplicate", "started"], helper.pushes
    assert {p["messageId"] for p in helper.pushes} == {message_id}
    for function in functions.values():
        assert "Traceback" not in function.log.read_text(errors="replace"), function.tail()
