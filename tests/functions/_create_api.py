"""Definitions and helpers shared by the ``create`` function tests."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

API = "/api/v1"
TERMINAL = {"succeeded", "failed", "cancelled", "timed_out"}


def doubler(name: str = "doubler", tags: list[str] | None = None) -> dict[str, Any]:
    """A one-step workflow: ``result == {"doubled": input.n * 2}``."""
    return {
        "name": name,
        "tags": tags or [],
        "steps": [
            {
                "id": "double",
                "type": "transform",
                "config": {"set": {"doubled": "${input.n * 2}"}},
            }
        ],
        "output": {"doubled": "${vars.doubled}"},
    }


def approval(timeout_seconds: float = 60) -> dict[str, Any]:
    """Waits for the ``approval`` event, then records who approved."""
    return {
        "name": "approval",
        "steps": [
            {
                "id": "wait_for_approval",
                "type": "wait_for_event",
                "config": {"event": "approval", "timeoutSeconds": timeout_seconds},
                "nextSteps": ["record"],
            },
            {
                "id": "record",
                "type": "transform",
                "config": {"set": {"approvedBy": "${prev.payload.by}"}},
            },
        ],
        "output": {"approvedBy": "${vars.approvedBy}"},
    }


APPROVAL_YAML = """\
name: approval
steps:
  - id: wait_for_approval
    type: wait_for_event
    config: {event: approval, timeoutSeconds: 60}
    nextSteps: [record]
  - id: record
    type: transform
    config:
      set: {approvedBy: "${prev.payload.by}"}
"""


async def create(api: httpx.AsyncClient, definition: dict[str, Any], **headers: str) -> str:
    """Create a workflow; its id."""
    response = await api.post(f"{API}/workflows", json=definition, headers=headers)
    assert response.status_code == 201, response.text
    workflow_id: str = response.json()["id"]
    return workflow_id


async def execute(api: httpx.AsyncClient, workflow_id: str, **body: Any) -> dict[str, Any]:
    """Start an execution; the 202 body."""
    response = await api.post(f"{API}/workflows/{workflow_id}/execute", json=body)
    assert response.status_code == 202, response.text
    execution: dict[str, Any] = response.json()
    return execution


async def wait_for(
    api: httpx.AsyncClient, execution_id: str, statuses: set[str], timeout: float = 10
) -> dict[str, Any]:
    """Poll ``GET /executions/{id}`` until its status is one of ``statuses``."""
    deadline = time.monotonic() + timeout
    while True:
        response = await api.get(f"{API}/executions/{execution_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        if body["status"] in statuses:
            return body
        assert body["status"] not in TERMINAL, f"ended {body['status']}: {body.get('error')}"
        assert time.monotonic() < deadline, f"still {body['status']} after {timeout}s"
        await asyncio.sleep(0.02)


def error_of(response: httpx.Response) -> dict[str, Any]:
    """The ``error`` object, checking that it is the only key of the body."""
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    return error
