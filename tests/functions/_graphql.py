"""Definitions, documents and a small client shared by the GraphQL tests."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx

from shared.composition import LocalRuntime

TERMINAL = {"SUCCEEDED", "FAILED", "CANCELLED", "TIMED_OUT"}

WORKFLOW_FIELDS = """
  id name description version isActive tags owner
  trigger { type cron }
  steps { id type config nextSteps onError { strategy retry { maxAttempts } } }
"""


def doubler(name: str = "doubler", tags: list[str] | None = None) -> dict[str, Any]:
    """A ``WorkflowInput``: one transform step, ``result == {"doubled": input.n * 2}``."""
    return {
        "name": name,
        "tags": tags or [],
        "steps": [
            {
                "id": "double",
                "type": "transform",
                "config": {"set": {"doubled": "${input.n * 2}"}},
                "onError": {"strategy": "RETRY", "retry": {"maxAttempts": 2}},
            }
        ],
        "output": {"doubled": "${vars.doubled}"},
    }


def sleeper(seconds: float = 0.5) -> dict[str, Any]:
    """A ``WorkflowInput`` that parks on a durable ``wait`` between two transforms."""
    return {
        "name": f"sleeper-{uuid.uuid4().hex[:8]}",  # names are unique in a tenant
        "steps": [
            {
                "id": "before",
                "type": "transform",
                "config": {"set": {"a": 1}},
                "nextSteps": ["nap"],
            },
            {"id": "nap", "type": "wait", "config": {"seconds": seconds}, "nextSteps": ["after"]},
            {"id": "after", "type": "transform", "config": {"set": {"b": 2}}},
        ],
    }


def approval() -> dict[str, Any]:
    """A ``WorkflowInput`` that waits for the ``approval`` event."""
    return {
        "name": "approval",
        "steps": [
            {
                "id": "wait_for_approval",
                "type": "wait_for_event",
                "config": {"event": "approval", "timeoutSeconds": 60},
                "nextSteps": ["record"],
            },
            {"id": "record", "type": "transform", "config": {"set": {"by": "${prev.payload.by}"}}},
        ],
    }


async def post(
    client: httpx.AsyncClient,
    query: str,
    variables: dict[str, Any] | None = None,
    *,
    tenant: str = "default",
) -> dict[str, Any]:
    """POST one operation to ``/graphql``; the whole GraphQL response body."""
    response = await client.post(
        "/graphql", json={"query": query, "variables": variables}, headers={"X-Tenant": tenant}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def data(
    client: httpx.AsyncClient,
    query: str,
    variables: dict[str, Any] | None = None,
    *,
    tenant: str = "default",
) -> dict[str, Any]:
    """``data`` of an operation that must not fail."""
    body = await post(client, query, variables, tenant=tenant)
    assert "errors" not in body, body["errors"]
    result: dict[str, Any] = body["data"]
    return result


async def create(
    client: httpx.AsyncClient, workflow: dict[str, Any], tenant: str = "default"
) -> str:
    created = await data(
        client,
        "mutation($w: WorkflowInput!) { createWorkflow(input: $w) { id } }",
        {"w": workflow},
        tenant=tenant,
    )
    workflow_id: str = created["createWorkflow"]["id"]
    return workflow_id


async def execute(
    client: httpx.AsyncClient, workflow_id: str, input: dict[str, Any] | None = None
) -> str:
    started = await data(
        client,
        "mutation($id: ID!, $in: ExecutionInput!) {"
        " executeWorkflow(id: $id, input: $in) { id status workflowVersion } }",
        {"id": workflow_id, "in": {"input": input or {}}},
    )
    execution_id: str = started["executeWorkflow"]["id"]
    return execution_id


async def wait_for_status(
    client: httpx.AsyncClient, execution_id: str, wanted: set[str], timeout: float = 10
) -> dict[str, Any]:
    """Poll ``execution(id)`` until its status is in ``wanted``."""
    deadline = time.monotonic() + timeout
    while True:
        found = await data(
            client, "query($id: ID!) { execution(id: $id) { id status } }", {"id": execution_id}
        )
        execution: dict[str, Any] = found["execution"]
        if execution["status"] in wanted:
            return execution
        assert time.monotonic() < deadline, f"still {execution['status']}"
        await asyncio.sleep(0.02)


async def settle(runtime: LocalRuntime, timeout: float = 10) -> None:
    """Wait until no delivery is due or in flight: stopping mid-commit can hang the store."""
    deadline = time.monotonic() + timeout
    quiet = 0
    while quiet < 3:
        due = runtime.queue.next_due()
        idle = due is None or due > datetime.now(UTC)
        quiet = quiet + 1 if idle and runtime.queue.in_flight_count() == 0 else 0
        assert time.monotonic() < deadline, "deliveries still in flight"
        await asyncio.sleep(0.01)


def codes(body: dict[str, Any]) -> list[str]:
    """``extensions.code`` of every error of a response (or the code of the edge's error
    body, for a request refused before GraphQL saw it: size, media type, origin)."""
    if "error" in body:
        return [body["error"]["code"]]
    return [error["extensions"]["code"] for error in body.get("errors", [])]
