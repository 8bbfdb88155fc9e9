"""Stream clients of bench/api.py: WebSocket, SSE and GraphQL-subscription subscribers
that record, for every live event, its commit-to-receipt latency.

The latency of an event is the client's receive time (``time.time()`` taken as soon as
the frame or line is handed over, before parsing) minus the event's ``at``, the time
the engine stamped on it in the transaction that commits it. Both clocks are this
machine's wall clock. The receive time includes the bench client's own queueing: it
shares the machine's cores with the server.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import websockets

__all__ = ["TERMINAL", "Subscriber", "graphql_subscriber", "sse_subscriber", "ws_subscriber"]

TERMINAL = frozenset(
    {"execution.succeeded", "execution.failed", "execution.cancelled", "execution.timed_out"}
)

GRAPHQL_EVENTS = (
    "subscription ($id: ID!) { executionEvents(executionId: $id) { executionId seq type at } }"
)


@dataclass
class Subscriber:
    """What one subscriber saw."""

    latencies_ms: list[float] = field(default_factory=list)
    terminals: int = 0
    replayed: int = 0
    """Events committed before this subscriber's subscription was open (not measured)."""
    errors: list[str] = field(default_factory=list)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when the subscription is open (events committed from then on are live)."""


def _at(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(str(event["at"])).timestamp()


def _record(sub: Subscriber, received: float, event: dict[str, Any], since: float) -> None:
    committed = _at(event)
    if committed < since:
        sub.replayed += 1
    else:
        sub.latencies_ms.append((received - committed) * 1000)
    if event.get("type") in TERMINAL:
        sub.terminals += 1


async def ws_subscriber(
    ws_base: str, workflow_id: str, expected: int, sub: Subscriber, timeout: float
) -> None:
    """``/ws/workflows/{id}``: every event of the workflow's executions, live."""
    url = f"{ws_base}/ws/workflows/{workflow_id}"
    async with websockets.connect(url, max_queue=None) as socket_:
        since = time.time()
        sub.ready.set()
        deadline = time.monotonic() + timeout
        while sub.terminals < expected:
            raw = await asyncio.wait_for(socket_.recv(), max(0.01, deadline - time.monotonic()))
            received = time.time()
            event = json.loads(raw)
            kind = event.get("type")
            if kind == "keepalive":
                continue
            if kind == "error":
                sub.errors.append(str(event.get("error")))
                return
            _record(sub, received, event, since)


async def sse_subscriber(
    base: str, workflow_id: str, expected: int, sub: Subscriber, timeout: float
) -> None:
    """``/sse/workflows/{id}``: the same as server-sent events."""
    async with (
        httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=30)) as client,
        client.stream("GET", f"{base}/sse/workflows/{workflow_id}") as response,
    ):
        if response.status_code != 200:
            sub.errors.append(f"HTTP {response.status_code}")
            sub.ready.set()
            return
        since = time.time()
        sub.ready.set()
        event_name = ""
        async with asyncio.timeout(timeout):
            async for line in response.aiter_lines():
                received = time.time()
                if line.startswith("event:"):
                    event_name = line[6:].strip()
                elif line.startswith("data:"):
                    if event_name == "error":
                        sub.errors.append(line[5:].strip())
                        return
                    _record(sub, received, json.loads(line[5:]), since)
                    if sub.terminals >= expected:
                        return
                elif not line:
                    event_name = ""


async def graphql_subscriber(
    ws_base: str, execution_ids: list[str], sub: Subscriber, timeout: float
) -> None:
    """One ``graphql-transport-ws`` connection, one ``executionEvents`` subscription per
    execution (there is no workflow-wide subscription); each ends after its terminal
    event. Events committed before a subscription was sent are replays, not measured."""
    async with websockets.connect(
        f"{ws_base}/graphql",
        subprotocols=[websockets.Subprotocol("graphql-transport-ws")],
        max_queue=None,
    ) as socket_:
        await socket_.send(json.dumps({"type": "connection_init", "payload": {}}))
        ack = json.loads(await asyncio.wait_for(socket_.recv(), 30))
        if ack.get("type") != "connection_ack":
            sub.errors.append(f"no connection_ack: {ack}")
            sub.ready.set()
            return
        since: dict[str, float] = {}
        for index, execution_id in enumerate(execution_ids):
            key = str(index)
            since[key] = time.time()
            payload = {"query": GRAPHQL_EVENTS, "variables": {"id": execution_id}}
            await socket_.send(json.dumps({"id": key, "type": "subscribe", "payload": payload}))
        sub.ready.set()
        open_ = set(since)
        deadline = time.monotonic() + timeout
        while open_:
            raw = await asyncio.wait_for(socket_.recv(), max(0.01, deadline - time.monotonic()))
            received = time.time()
            message = json.loads(raw)
            kind = message.get("type")
            if kind == "next":
                payload = message["payload"]
                if payload.get("errors"):
                    sub.errors.append(str(payload["errors"]))
                    open_.discard(message["id"])
                    continue
                event = payload["data"]["executionEvents"]
                _record(sub, received, event, since[message["id"]])
            elif kind == "complete":
                open_.discard(message["id"])
            elif kind == "error":
                sub.errors.append(str(message.get("payload")))
                open_.discard(message.get("id", ""))
            elif kind == "ping":
                await socket_.send(json.dumps({"type": "pong"}))
