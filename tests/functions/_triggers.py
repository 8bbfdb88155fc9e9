"""Builders shared by the trigger-handler and execute-step tests."""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path
from typing import Any

import httpx
from edge_fixtures import invoker_headers

from shared.api.edge import Edge
from shared.app.service import WorkflowApp
from shared.composition.edge import FUNCTION_APPS
from shared.models import WorkflowExecution

REPO = Path(__file__).resolve().parents[2]
PROJECT = "demo"
PUBSUB_TYPE = "google.cloud.pubsub.topic.v1.messagePublished"


def function_client(edge: Edge, name: str, *, invoker: bool = True) -> httpx.AsyncClient:
    """The app function ``name`` serves, in-process over the test's edge; ``invoker``:
    every request carries an invoker's ID token signed by the edge's dev key (in local
    mode one dev account and audience stand for the tasks, scheduler and push ones)."""
    app = FUNCTION_APPS[name](edge)
    headers = invoker_headers(edge) if invoker else {}
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://fn.test", headers=headers
    )


def steps() -> list[dict[str, Any]]:
    """One transform step that copies the trigger's input into ``vars.seen``."""
    return [{"id": "record", "type": "transform", "config": {"set": {"seen": "${input}"}}}]


async def workflow(app: WorkflowApp, trigger: dict[str, Any], **fields: Any) -> str:
    definition = await app.create_workflow(
        {
            "name": fields.pop("name", f"wf-{uuid.uuid4().hex[:8]}"),
            "trigger": trigger,
            "steps": steps(),
            **fields,
        }
    )
    return definition.id


async def executions(app: WorkflowApp, workflow_id: str) -> list[WorkflowExecution]:
    return (await app.list_executions(workflow_id=workflow_id, limit=100)).items


def envelope(
    data: Any, message_id: str, attributes: dict[str, str] | None = None
) -> dict[str, Any]:
    """The Pub/Sub push envelope (also the data of Eventarc's CloudEvent)."""
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return {
        "message": {
            "data": base64.b64encode(raw).decode(),
            "attributes": attributes or {},
            "messageId": message_id,
            "publishTime": "2025-01-01T10:00:00.123Z",
        },
        "subscription": f"projects/{PROJECT}/subscriptions/eventarc-sub",
    }


def source(topic: str) -> str:
    return f"//pubsub.googleapis.com/projects/{PROJECT}/topics/{topic}"


def binary_event(topic: str, body: dict[str, Any], event_id: str) -> tuple[dict[str, str], bytes]:
    """Headers and body of a binary-mode CloudEvent, as Eventarc sends it."""
    headers = {
        "ce-specversion": "1.0",
        "ce-type": PUBSUB_TYPE,
        "ce-source": source(topic),
        "ce-id": event_id,
        "ce-time": "2025-01-01T10:00:00.123Z",
        "content-type": "application/json",
    }
    return headers, json.dumps(body).encode()


def structured_event(
    topic: str, body: dict[str, Any], event_id: str
) -> tuple[dict[str, str], bytes]:
    """Headers and body of a structured-mode CloudEvent."""
    event = {
        "specversion": "1.0",
        "type": PUBSUB_TYPE,
        "source": source(topic),
        "id": event_id,
        "datacontenttype": "application/json",
        "data": body,
    }
    return {"content-type": "application/cloudevents+json"}, json.dumps(event).encode()
