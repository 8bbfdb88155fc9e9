"""PubSubEventBus and LifecyclePublisher against the Pub/Sub emulator, and push
subscriptions delivering to an HTTP endpoint and to the real trigger-handler."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import uvicorn
from _recorder import recording
from google.pubsub_v1 import PublisherClient, PushConfig, SubscriberClient
from starlette.types import Message, Receive, Scope, Send

from shared.adapters.pubsub_bus import DEDUP_ATTRIBUTE, LifecyclePublisher, PubSubEventBus
from shared.api.triggers import create_trigger_app
from shared.app.service import StartRequest
from shared.composition import LocalRuntime, build_local
from shared.composition.edge import build_edge
from shared.settings import Settings

pytestmark = pytest.mark.emulator


def make_topic(project: str, topic: str, push_endpoint: str = "") -> str:
    """Create ``topic`` and a subscription ``{topic}-sub`` (push when an endpoint is given)."""
    publisher, subscriber = PublisherClient(), SubscriberClient()
    path = publisher.topic_path(project, topic)
    publisher.create_topic(name=path)
    subscription = subscriber.subscription_path(project, f"{topic}-sub")
    push = PushConfig(push_endpoint=push_endpoint) if push_endpoint else None
    subscriber.create_subscription(
        name=subscription, topic=path, push_config=push, ack_deadline_seconds=10
    )
    return subscription


def pull(subscription: str, expected: int, timeout: float = 20.0) -> list[Any]:
    """Pull and ack until ``expected`` messages arrived."""
    subscriber = SubscriberClient()
    received: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(received) < expected:
        assert time.monotonic() < deadline, f"{len(received)} of {expected} messages"
        response = subscriber.pull(subscription=subscription, max_messages=100, timeout=10)
        if response.received_messages:
            subscriber.acknowledge(
                subscription=subscription,
                ack_ids=[m.ack_id for m in response.received_messages],
            )
        received.extend(m.message for m in response.received_messages)
    return received


async def test_publish_and_pull_back(pubsub_project: str) -> None:
    subscription = make_topic(pubsub_project, "orders")
    bus = PubSubEventBus(pubsub_project)
    try:
        first = await bus.publish(
            "orders", {"amount": 120, "item": "é"}, {"source": "shop"}, "run-1"
        )
        again = await bus.publish("orders", {"amount": 120}, {"source": "shop"}, "run-1")
        other = await bus.publish("orders", "plain", {}, "")
    finally:
        await bus.close()
    assert first == again, "a publish retried in this process keeps its message id"
    messages = {m.message_id: m for m in await asyncio.to_thread(pull, subscription, 2)}
    assert set(messages) == {first, other}
    assert json.loads(messages[first].data) == {"amount": 120, "item": "é"}
    assert dict(messages[first].attributes) == {"source": "shop", DEDUP_ATTRIBUTE: "run-1"}
    assert json.loads(messages[other].data) == "plain"
    assert dict(messages[other].attributes) == {}


async def test_publishing_to_a_missing_topic_is_not_retryable(pubsub_project: str) -> None:
    bus = PubSubEventBus(pubsub_project)
    try:
        with pytest.raises(Exception) as caught:
            await bus.publish("nowhere", {}, {}, "k")
    finally:
        await bus.close()
    assert getattr(caught.value, "code", None) == "PUBLISH_FAILED"
    assert getattr(caught.value, "retryable", None) is False


LINEAR = {
    "name": "lifecycle",
    "steps": [
        {"id": "one", "type": "transform", "config": {"set": {"x": 1}}, "nextSteps": ["nap"]},
        {"id": "nap", "type": "wait", "config": {"seconds": 0.1}, "nextSteps": ["two"]},
        {"id": "two", "type": "transform", "config": {"output": {"x": "${vars.x}"}}},
    ],
}


@pytest.fixture
async def runtime() -> AsyncIterator[LocalRuntime]:
    local = build_local(Settings.local_mode(), memory=True)
    await local.start(recover=False)
    try:
        yield local
    finally:
        await local.stop()


async def test_lifecycle_events_of_an_execution(pubsub_project: str, runtime: LocalRuntime) -> None:
    subscription = make_topic(pubsub_project, "lifecycle")
    bus = PubSubEventBus(pubsub_project)
    lifecycle = LifecyclePublisher(bus, "lifecycle")
    runtime.store.add_listener(lifecycle)
    try:
        definition = await runtime.app.create_workflow(LINEAR)
        execution = await runtime.app.start_execution(StartRequest(definition.id, {}))
        assert await runtime.queue.join(timeout=10)
        assert await lifecycle.drain(timeout=10)
    finally:
        runtime.store.remove_listener(lifecycle)
        await bus.close()
    messages = await asyncio.to_thread(pull, subscription, lifecycle.published)
    events = sorted((json.loads(m.data) for m in messages), key=lambda e: e["seq"])
    kinds = [(e["type"], e.get("stepId")) for e in events]
    assert kinds == [
        ("execution.started", None),
        ("step.succeeded", "one"),
        ("step.waiting", "nap"),
        ("step.succeeded", "nap"),
        ("step.succeeded", "two"),
        ("execution.succeeded", None),
    ]
    assert lifecycle.failed == 0
    by_seq = {int(m.attributes["seq"]): m for m in messages}
    last = by_seq[events[-1]["seq"]]
    assert last.attributes["eventType"] == "execution.succeeded"
    assert last.attributes["executionId"] == execution.id
    assert last.attributes["workflowId"] == definition.id
    assert last.attributes[DEDUP_ATTRIBUTE] == f"{execution.id}:{events[-1]['seq']}"


async def test_a_push_subscription_delivers_to_an_http_endpoint(pubsub_project: str) -> None:
    with recording() as recorder:
        make_topic(pubsub_project, "orders", f"{recorder.url}/pubsub?topic=orders")
        bus = PubSubEventBus(pubsub_project)
        try:
            message_id = await bus.publish("orders", {"amount": 5}, {"k": "v"}, "run-7")
        finally:
            await bus.close()
        (got,) = await asyncio.to_thread(recorder.wait_for, 1)
    assert (got.method, got.path) == ("POST", "/pubsub?topic=orders")
    body = json.loads(got.body)
    assert body["subscription"].endswith("/subscriptions/orders-sub")
    assert body["message"]["messageId"] == message_id
    assert json.loads(base64.b64decode(body["message"]["data"])) == {"amount": 5}
    assert body["message"]["attributes"] == {"k": "v", DEDUP_ATTRIBUTE: "run-7"}


# -- push to the real trigger-handler ----------------------------------------------------

App = Callable[[Scope, Receive, Send], Awaitable[None]]


async def _serve(app: App) -> tuple[uvicorn.Server, asyncio.Task[None], str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning"))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    return server, serving, f"http://127.0.0.1:{sock.getsockname()[1]}"


async def test_pushed_twice_starts_one_execution(
    pubsub_project: str, runtime: LocalRuntime
) -> None:
    """The first push is processed but answered 503 (as if the instance died before
    answering): Pub/Sub pushes the same message again, which starts nothing new."""
    answers: list[dict[str, Any]] = []
    edge = build_edge(runtime.settings, runtime=runtime)
    app = create_trigger_app(edge, lifespan=False)
    # The emulator pushes without the OIDC token Pub/Sub sends: add the push account's
    # (signed by the edge's dev key), so the trigger-handler's check still runs.
    token = f"Bearer {edge.identity.token_for('pubsub')}".encode()

    async def trigger_handler(scope: Scope, receive: Receive, send: Send) -> None:
        messages: list[Message] = []
        scope = {**scope, "headers": [*scope["headers"], (b"authorization", token)]}

        async def keep(message: Message) -> None:
            messages.append(message)

        await app(scope, receive, keep)
        answers.append(json.loads(b"".join(m.get("body", b"") for m in messages)))
        if len(answers) == 1:  # processed, but the answer is lost: a 503 instead
            body = b'{"lost":true}'
            headers = [(b"content-type", b"application/json")]
            messages = [
                {"type": "http.response.start", "status": 503, "headers": headers},
                {"type": "http.response.body", "body": body},
            ]
        for message in messages:
            await send(message)

    workflow = {**LINEAR, "name": "on-orders", "trigger": {"type": "event", "topic": "orders"}}
    definition = await runtime.app.create_workflow(workflow)
    server, serving, url = await _serve(trigger_handler)
    bus = PubSubEventBus(pubsub_project)
    try:
        await asyncio.to_thread(make_topic, pubsub_project, "orders", f"{url}/pubsub?topic=orders")
        message_id = await bus.publish("orders", {"amount": 9}, {}, "run-9")
        for _ in range(300):
            if len(answers) >= 2:
                break
            await asyncio.sleep(0.1)
        assert await runtime.queue.join(timeout=10)
        executions = await runtime.app.list_executions(workflow_id=definition.id)
    finally:
        await bus.close()
        server.should_exit = True
        await serving
    assert [a["executions"][0]["status"] for a in answers[:2]] == ["started", "duplicate"]
    (execution,) = executions.items
    assert execution.status == "succeeded"
    assert execution.input["event"]["data"] == {"amount": 9}
    assert execution.input["event"]["messageId"] == message_id
