"""The trigger-handler function: Pub/Sub, Cloud Scheduler and webhooks, in-process."""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from _triggers import (
    binary_event,
    envelope,
    executions,
    function_client,
    structured_event,
    workflow,
)
from edge_fixtures import invoker_headers
from starlette.applications import Starlette
from starlette.routing import Mount

from shared.api.edge import Edge
from shared.api.triggers import create_trigger_app
from shared.app.service import WorkflowApp
from shared.app.triggers import trigger_execution_id
from shared.app.webhooks import sign
from shared.composition import LocalRuntime
from shared.errors import Conflict

ORDERS = {"type": "event", "topic": "orders", "filter": "data.amount > 10"}


@pytest.fixture
async def client(runtime: LocalRuntime, edge: Edge) -> AsyncIterator[httpx.AsyncClient]:
    async with function_client(edge, "trigger-handler") as http:
        yield http
    # let the started executions finish before the runtime stops under them
    assert await runtime.queue.join(timeout=5)


@pytest.fixture
def app(runtime: LocalRuntime) -> WorkflowApp:
    return runtime.app


# -- Pub/Sub ---------------------------------------------------------------------------


async def test_binary_cloudevent_starts_the_matching_workflow(
    client: httpx.AsyncClient, app: WorkflowApp
) -> None:
    matching = await workflow(app, ORDERS)
    other_topic = await workflow(app, {"type": "event", "topic": "invoices"})
    manual = await workflow(app, {"type": "manual"})
    headers, body = binary_event("orders", envelope({"amount": 42}, "m-1", {"k": "v"}), "m-1")

    response = await client.post("/", headers=headers, content=body)

    assert response.status_code == 200, response.text
    assert response.json()["executions"] == [
        {
            "workflowId": matching,
            "status": "started",
            "executionId": trigger_execution_id(matching, "pubsub", "m-1"),
        }
    ]
    [execution] = await executions(app, matching)
    assert execution.id == trigger_execution_id(matching, "pubsub", "m-1")
    assert execution.trigger == {
        "type": "event",
        "topic": "projects/demo/topics/orders",
        "messageId": "m-1",
    }
    assert execution.input == {
        "event": {
            "data": {"amount": 42},
            "attributes": {"k": "v"},
            "messageId": "m-1",
            "publishTime": "2025-01-01T10:00:00.123Z",
            "topic": "projects/demo/topics/orders",
        }
    }
    assert await executions(app, other_topic) == []
    assert await executions(app, manual) == []


async def test_structured_cloudevent_starts_the_matching_workflow(
    client: httpx.AsyncClient, app: WorkflowApp
) -> None:
    workflow_id = await workflow(app, ORDERS)
    headers, body = structured_event("orders", envelope({"amount": 11}, "m-2"), "m-2")

    response = await client.post("/", headers=headers, content=body)

    assert response.status_code == 200, response.text
    [execution] = await executions(app, workflow_id)
    assert execution.input["event"]["data"] == {"amount": 11}
    assert execution.input["event"]["messageId"] == "m-2"


async def test_raw_push_takes_the_topic_from_the_query_or_an_attribute(
    client: httpx.AsyncClient, app: WorkflowApp
) -> None:
    workflow_id = await workflow(app, ORDERS)

    by_query = await client.post("/pubsub?topic=orders", json=envelope({"amount": 50}, "p-1"))
    by_attribute = await client.post(
        "/pubsub", json=envelope({"amount": 60}, "p-2", {"topic": "orders"})
    )
    no_topic = await client.post("/pubsub", json=envelope({"amount": 70}, "p-3"))

    assert (by_query.status_code, by_attribute.status_code) == (200, 200)
    assert no_topic.status_code == 400
    assert no_topic.json()["error"]["code"] == "INVALID_INPUT"
    started = sorted(e.input["event"]["messageId"] for e in await executions(app, workflow_id))
    assert started == ["p-1", "p-2"]


async def test_the_same_message_twice_starts_one_execution(
    client: httpx.AsyncClient, app: WorkflowApp
) -> None:
    workflow_id = await workflow(app, ORDERS)
    headers, body = binary_event("orders", envelope({"amount": 99}, "dup-1"), "dup-1")

    first = await client.post("/", headers=headers, content=body)
    second = await client.post("/", headers=headers, content=body)
    # the same message pushed raw (another subscription) is the same logical message
    third = await client.post("/pubsub?topic=orders", json=envelope({"amount": 99}, "dup-1"))

    assert [r.json()["executions"][0]["status"] for r in (first, second, third)] == [
        "started",
        "duplicate",
        "duplicate",
    ]
    assert len(await executions(app, workflow_id)) == 1


async def test_false_filter_and_inactive_workflow_start_nothing(
    client: httpx.AsyncClient, app: WorkflowApp
) -> None:
    filtered = await workflow(app, ORDERS)
    inactive = await workflow(app, {"type": "event", "topic": "orders"}, isActive=False)
    headers, body = binary_event("orders", envelope({"amount": 3}, "small"), "small")

    response = await client.post("/", headers=headers, content=body)

    assert response.status_code == 200
    assert response.json() == {
        "status": "processed",
        "executions": [],
        "filteredOut": [filtered],
        "filterErrors": {},
    }
    assert await executions(app, filtered) == []
    assert await executions(app, inactive) == []


async def test_a_failing_filter_does_not_block_other_workflows(
    client: httpx.AsyncClient, app: WorkflowApp
) -> None:
    broken = await workflow(
        app, {"type": "event", "topic": "orders", "filter": 'attributes.kind == "x"'}
    )
    plain = await workflow(app, {"type": "event", "topic": "orders"})
    text = await workflow(app, {"type": "event", "topic": "orders", "filter": 'data == "hi"'})
    headers, body = binary_event("orders", envelope(b"hi", "t-1"), "t-1")

    response = await client.post("/", headers=headers, content=body)

    assert response.status_code == 200
    assert list(response.json()["filterErrors"]) == [broken]
    assert await executions(app, broken) == []
    [execution] = await executions(app, plain)
    assert execution.input["event"]["data"] == "hi"  # not JSON: kept as text
    assert len(await executions(app, text)) == 1


async def test_undecodable_data_is_acknowledged_and_foreign_events_ignored(
    client: httpx.AsyncClient, app: WorkflowApp
) -> None:
    workflow_id = await workflow(app, {"type": "event", "topic": "orders"})
    poison = envelope({}, "bad-1")
    poison["message"]["data"] = "%%% not base64 %%%"

    rejected = await client.post("/pubsub?topic=orders", json=poison)
    headers, body = binary_event("orders", envelope({}, "x"), "x")
    foreign = await client.post(
        "/",
        headers={**headers, "ce-type": "google.cloud.storage.object.v1.finalized"},
        content=body,
    )
    not_pubsub = await client.post("/pubsub?topic=orders", json={"hello": "world"})

    assert (rejected.status_code, rejected.json()["status"]) == (200, "rejected")
    assert (foreign.status_code, foreign.json()["status"]) == (200, "ignored")
    assert not_pubsub.status_code == 400
    assert await executions(app, workflow_id) == []


async def test_transient_errors_answer_503_so_pubsub_redelivers(
    client: httpx.AsyncClient, app: WorkflowApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    workflow_id = await workflow(app, {"type": "event", "topic": "orders"})
    original = WorkflowApp.start_execution_once

    async def contended(self: WorkflowApp, request: Any) -> Any:
        raise Conflict("transaction contention")

    monkeypatch.setattr(WorkflowApp, "start_execution_once", contended)
    headers, body = binary_event("orders", envelope({}, "c-1"), "c-1")
    failed = await client.post("/", headers=headers, content=body)
    assert (failed.status_code, failed.json()["status"]) == (503, "retry")
    assert await executions(app, workflow_id) == []

    monkeypatch.setattr(WorkflowApp, "start_execution_once", original)
    redelivered = await client.post("/", headers=headers, content=body)
    assert redelivered.status_code == 200
    assert len(await executions(app, workflow_id)) == 1


# -- Cloud Scheduler -------------------------------------------------------------------


def scheduler_headers(
    at: str | None, job: str = "projects/demo/locations/eu/jobs/nightly"
) -> dict[str, str]:
    headers = {"X-CloudScheduler": "true", "X-CloudScheduler-JobName": job}
    if at is not None:
        headers["X-CloudScheduler-ScheduleTime"] = at
    return headers


async def test_scheduler_calls_start_one_execution_per_schedule_time(
    client: httpx.AsyncClient, app: WorkflowApp
) -> None:
    schedule = {"type": "schedule", "cron": "0 * * * *", "input": {"report": "hourly"}}
    workflow_id = await workflow(app, schedule)
    url = f"/schedule/{workflow_id}"

    first = await client.post(url, headers=scheduler_headers("2025-01-01T10:00:00Z"))
    again = await client.post(url, headers=scheduler_headers("2025-01-01T10:00:00.000Z"))
    later = await client.post(url, headers=scheduler_headers("2025-01-01T11:00:00+00:00"))

    assert [r.status_code for r in (first, again, later)] == [200, 200, 200]
    assert [r.json()["status"] for r in (first, again, later)] == [
        "started",
        "duplicate",
        "started",
    ]
    found = {e.id: e for e in await executions(app, workflow_id)}
    assert len(found) == 2
    execution = found[first.json()["executionId"]]
    assert execution.input == {"report": "hourly", "scheduledTime": "2025-01-01T10:00:00Z"}
    assert execution.trigger == {
        "type": "schedule",
        "jobName": "nightly",
        "scheduledTime": "2025-01-01T10:00:00Z",
    }


async def test_a_force_run_without_schedule_time_uses_the_current_minute(
    client: httpx.AsyncClient, app: WorkflowApp
) -> None:
    workflow_id = await workflow(app, {"type": "schedule", "cron": "0 0 1 1 *"})
    response = await client.post(f"/schedule/{workflow_id}", headers=scheduler_headers(None))
    assert response.status_code == 200
    [execution] = await executions(app, workflow_id)
    scheduled = datetime.fromisoformat(execution.input["scheduledTime"])
    assert scheduled.second == 0
    assert abs((datetime.now(UTC) - scheduled).total_seconds()) < 120
    again = await client.post(f"/schedule/{workflow_id}", headers=scheduler_headers(None))
    if again.json()["executionId"] == execution.id:  # same minute: the same run
        assert again.json()["status"] == "duplicate"


async def test_scheduler_refuses_unknown_and_unscheduled_workflows(
    client: httpx.AsyncClient, app: WorkflowApp
) -> None:
    manual = await workflow(app, {"type": "manual"})
    inactive = await workflow(app, {"type": "schedule", "cron": "* * * * *"}, isActive=False)
    at = scheduler_headers("2025-01-01T10:00:00Z")

    unknown = await client.post("/schedule/no-such-workflow", headers=at)
    not_scheduled = await client.post(f"/schedule/{manual}", headers=at)
    off = await client.post(f"/schedule/{inactive}", headers=at)
    bad_time = await client.post(f"/schedule/{inactive}", headers=scheduler_headers("noon"))

    assert (unknown.status_code, not_scheduled.status_code) == (404, 404)
    assert (off.status_code, off.json()["status"]) == (200, "inactive")
    assert bad_time.status_code == 400
    assert await executions(app, inactive) == []


# -- webhooks --------------------------------------------------------------------------

SECRET = "s3cr3t-webhook-key"


def signed(
    body: bytes, secret: str = SECRET, at: int | None = None, key: str | None = None
) -> dict[str, str]:
    timestamp = str(int(time.time()) if at is None else at)
    headers = {
        "X-Webhook-Timestamp": timestamp,
        "X-Webhook-Signature": sign(secret, timestamp, body, key),
        "Content-Type": "application/json",
    }
    return {**headers, "Idempotency-Key": key} if key else headers


@pytest.fixture
async def hook(app: WorkflowApp) -> str:
    os.environ["WFE_SECRET_TEST_WEBHOOK"] = SECRET  # restored by isolated_environ
    return await workflow(app, {"type": "webhook", "secretRef": "env:WFE_SECRET_TEST_WEBHOOK"})


async def test_a_signed_webhook_starts_an_execution(
    client: httpx.AsyncClient, app: WorkflowApp, hook: str
) -> None:
    body = json.dumps({"order": 7}).encode()
    headers = signed(body)

    response = await client.post(f"/webhooks/{hook}", content=body, headers=headers)

    assert response.status_code == 202, response.text
    assert response.json()["status"] == "started"
    [execution] = await executions(app, hook)
    assert execution.id == response.json()["executionId"]
    assert execution.input["webhook"]["body"] == {"order": 7}
    assert execution.trigger["type"] == "webhook"
    # the same signed request replayed inside the window is refused and starts nothing
    replay = await client.post(f"/webhooks/{hook}", content=body, headers=headers)
    assert replay.status_code == 409, replay.text
    assert replay.json()["error"]["code"] == "REPLAYED"
    assert len(await executions(app, hook)) == 1


async def test_bad_or_stale_signatures_are_refused(
    client: httpx.AsyncClient, app: WorkflowApp, hook: str
) -> None:
    body = b'{"order": 8}'
    wrong_key = signed(body, secret="not-the-secret")
    tampered = signed(b'{"order": 9}')
    stale = signed(body, at=int(time.time()) - 301)
    future = signed(body, at=int(time.time()) + 301)
    unsigned = {"Content-Type": "application/json"}

    for headers in (wrong_key, tampered, stale, future, unsigned):
        response = await client.post(f"/webhooks/{hook}", content=body, headers=headers)
        assert response.status_code == 401, (headers, response.text)
        assert response.json()["error"]["code"] == "UNAUTHENTICATED"
    assert await executions(app, hook) == []


async def test_idempotency_key_makes_one_execution(
    client: httpx.AsyncClient, app: WorkflowApp, hook: str
) -> None:
    first_body, second_body = b'{"try": 1}', b'{"try": 2}'
    key = "order-7-created"

    first = await client.post(
        f"/webhooks/{hook}", content=first_body, headers=signed(first_body, key=key)
    )
    second = await client.post(
        f"/webhooks/{hook}", content=second_body, headers=signed(second_body, key=key)
    )

    assert [first.json()["status"], second.json()["status"]] == ["started", "duplicate"]
    assert first.json()["executionId"] == second.json()["executionId"]
    [execution] = await executions(app, hook)
    assert execution.input["webhook"]["body"] == {"try": 1}
    assert execution.input["webhook"]["idempotencyKey"] == "order-7-created"


async def test_webhooks_of_unknown_or_other_workflows_are_not_found(
    client: httpx.AsyncClient, app: WorkflowApp
) -> None:
    manual = await workflow(app, {"type": "manual"})
    body = b"{}"
    for target in ("no-such-workflow", manual):
        response = await client.post(f"/webhooks/{target}", content=body, headers=signed(body))
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "NOT_FOUND"
    assert await executions(app, manual) == []


async def test_unresolvable_secret_is_a_server_error_not_a_start(
    client: httpx.AsyncClient, app: WorkflowApp
) -> None:
    workflow_id = await workflow(app, {"type": "webhook", "secretRef": "env:WFE_SECRET_TEST_UNSET"})
    response = await client.post(f"/webhooks/{workflow_id}", content=b"{}", headers=signed(b"{}"))
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "SECRET_UNAVAILABLE"
    assert await executions(app, workflow_id) == []


# -- routing ---------------------------------------------------------------------------


async def test_routing(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/")).status_code == 405
    assert (await client.post("/elsewhere", json={})).status_code == 404


async def test_the_app_can_be_mounted_under_a_prefix(app: WorkflowApp, edge: Edge) -> None:
    server = Starlette(routes=[Mount("/triggers", app=create_trigger_app(edge, lifespan=False))])
    workflow_id = await workflow(app, {"type": "schedule", "cron": "0 * * * *"})
    transport = httpx.ASGITransport(app=server)
    headers = {**scheduler_headers("2025-01-01T10:00:00Z"), **invoker_headers(edge, "scheduler")}
    async with httpx.AsyncClient(transport=transport, base_url="http://dev.test") as http:
        response = await http.post(f"/triggers/schedule/{workflow_id}", headers=headers)
    assert (response.status_code, response.json()["status"]) == (200, "started")
