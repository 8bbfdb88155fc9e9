"""status-stream: SSE in-process and through functions-framework, then the real thing:
uvicorn on a free port, the ``websockets`` client and httpx streaming over sockets."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _stream_server import (
    TERMINAL,
    ServerThread,
    events_of,
    read_sse,
    start_run,
    stored,
    stored_on,
    workflow,
    ws_read,
)
from websockets.asyncio.client import connect

from shared.api.edge import Edge
from shared.api.streams import create_stream_app
from shared.app.service import StartRequest
from shared.composition import LocalRuntime

pytestmark = pytest.mark.timeout(30)
REPO = Path(__file__).resolve().parents[2]
MAIN = REPO / "functions" / "status-stream" / "main.py"


async def finished(runtime: LocalRuntime, definition: dict[str, Any]) -> str:
    """Run a new execution of ``definition`` to its end; its id."""
    flow = await runtime.app.create_workflow(definition)
    execution = await runtime.app.start_execution(StartRequest(flow.id, {}))
    for _ in range(300):
        if (await runtime.app.get_execution(execution.id)).status.terminal:
            return execution.id
        await asyncio.sleep(0.02)
    raise AssertionError("execution did not finish")


# -- in process -------------------------------------------------------------------


@pytest.fixture
async def streams(edge: Edge) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_stream_app(edge, lifespan=False))
    async with httpx.AsyncClient(transport=transport, base_url="http://streams.test") as client:
        yield client


async def test_sse_replays_a_finished_execution_and_ends(
    runtime: LocalRuntime, streams: httpx.AsyncClient
) -> None:
    execution_id = await finished(runtime, workflow(0.05))
    async with streams.stream("GET", f"/sse/executions/{execution_id}") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        frames = await read_sse(response)
    assert frames[0]["retry"] == "2000" and all("retry" not in f for f in frames[1:])
    expected = await stored(runtime, execution_id)
    assert events_of(frames) == expected
    assert [f["id"] for f in frames] == [str(e["seq"]) for e in expected]
    assert [f["event"] for f in frames] == [e["type"] for e in expected]
    assert expected[-1]["type"] == "execution.succeeded"


async def test_sse_resumes_from_last_event_id_or_after(
    runtime: LocalRuntime, streams: httpx.AsyncClient
) -> None:
    execution_id = await finished(runtime, workflow(0.05))
    expected = await stored(runtime, execution_id)
    url = f"/sse/executions/{execution_id}"
    for headers, params, first in (
        ({"Last-Event-ID": "3"}, {}, 4),
        ({}, {"after": "5"}, 6),
        ({"Last-Event-ID": "2"}, {"after": "5"}, 3),  # a reconnecting browser: the header wins
    ):
        async with streams.stream("GET", url, headers=headers, params=params) as response:
            assert events_of(await read_sse(response)) == expected[first - 1 :]


async def test_sse_errors_are_json_before_streaming(
    runtime: LocalRuntime, streams: httpx.AsyncClient
) -> None:
    execution_id = await finished(runtime, workflow(0.05))
    cases = [
        ("/sse/executions/nope", {}, 404, "NOT_FOUND"),
        ("/sse/workflows/nope", {}, 404, "NOT_FOUND"),
        (f"/sse/executions/{execution_id}", {"X-Tenant": "acme"}, 404, "NOT_FOUND"),
        (f"/sse/executions/{execution_id}?after=x", {}, 400, "INVALID_INPUT"),
        (f"/sse/executions/{execution_id}?after=999", {}, 400, "INVALID_INPUT"),
        ("/sse/workflows/w?after=broken", {}, 400, "INVALID_INPUT"),
    ]
    for url, headers, status, code in cases:
        response = await streams.get(url, headers=headers)
        assert (response.status_code, response.json()["error"]["code"]) == (status, code), url
    assert (await streams.get("/health")).json()["status"] == "ok"
    assert (await streams.post("/graphql", json={"query": "{x}"})).status_code == 405


def test_main_builds_the_app_at_import_and_starts_nothing(tmp_path: Path) -> None:
    database = tmp_path / "fresh" / "streams.db"
    code = (
        "import main\n"
        "assert main.host._lifespan is None  # started by the lifespan, not at import\n"
        "assert main.host.app.state.edge.broker.feed is None  # the edge has not started\n"
        "print(type(main.app).__name__, main.status_stream.__name__)\n"
    )
    result = subprocess.run(  # as `uvicorn --app-dir functions/status-stream main:app` does
        [sys.executable, "-c", code],
        cwd=MAIN.parent,
        capture_output=True,
        text=True,
        check=False,
        env={"PYTHONPATH": str(REPO), "WFE_DB_PATH": str(database)},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["Starlette", "status_stream"]


# -- the real thing: uvicorn on a port ----------------------------------------------


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerThread]:
    running = ServerThread(tmp_path / "streams.db", keepalive=0.3).start()
    try:
        yield running
    finally:
        running.stop()


async def test_ws_streams_every_event_in_order_until_terminal(server: ServerThread) -> None:
    _, execution_id = await start_run(server, workflow(0.5))
    async with connect(f"{server.ws_url}/ws/executions/{execution_id}") as ws:
        messages, code = await ws_read(ws)
    assert code == 1000
    expected = await stored_on(server, execution_id)
    assert messages == expected
    assert [m["seq"] for m in messages] == list(range(1, len(messages) + 1))
    assert messages[-1]["type"] in TERMINAL
    steps = {(m["stepId"], m["type"]) for m in messages if "stepId" in m}
    assert {
        ("pause", "step.waiting"),
        ("pause", "step.succeeded"),
        ("finish", "step.succeeded"),
    } <= steps
    assert set(messages[0]) >= {"type", "seq", "executionId", "workflowId", "status", "data", "at"}


async def test_ws_reconnect_after_k_mid_run_loses_and_repeats_nothing(
    server: ServerThread,
) -> None:
    _, execution_id = await start_run(server, held_workflow())
    url = f"{server.ws_url}/ws/executions/{execution_id}"
    async with connect(url) as ws:
        before, _ = await ws_read(ws, until=lambda m: m["type"] == "step.waiting")
    async with connect(f"{url}?after={before[-1]['seq']}") as ws:
        running = await server.app(lambda rt: rt.app.get_execution(execution_id))
        assert not running.status.terminal  # reconnected mid-run
        await server.app(lambda rt: rt.app.send_event(execution_id, "go"))
        after, code = await ws_read(ws)
    assert code == 1000 and before and after
    assert before + after == await stored_on(server, execution_id)


async def test_sse_reconnect_with_last_event_id_mid_run(server: ServerThread) -> None:
    _, execution_id = await start_run(server, held_workflow())
    url = f"/sse/executions/{execution_id}"
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        async with client.stream("GET", url) as response:
            first = await read_sse(response, until=lambda f: f.get("event") == "step.waiting")
        last_id = first[-1]["id"]
        async with client.stream("GET", url, headers={"Last-Event-ID": last_id}) as response:
            lines = response.aiter_lines()
            idle = await read_sse(lines, until=lambda f: f.get("comment") == "keepalive")
            await server.app(lambda rt: rt.app.send_event(execution_id, "go"))
            rest = idle + await read_sse(lines)
    assert idle[-1] == {"comment": "keepalive"}  # idle while the step waits
    received = events_of(first) + events_of(rest)
    assert received == await stored_on(server, execution_id)
    assert received[-1]["type"] == "execution.succeeded"
    assert events_of(rest)[0]["seq"] == int(last_id) + 1


async def test_workflow_streams_see_every_execution(server: ServerThread) -> None:
    flow = await server.app(lambda rt: rt.app.create_workflow(workflow(0.3)))
    async with (
        connect(f"{server.ws_url}/ws/workflows/{flow.id}") as ws,
        httpx.AsyncClient(base_url=server.url, timeout=10) as client,
        client.stream("GET", f"/sse/workflows/{flow.id}") as response,
    ):
        ids = [
            (await server.app(lambda rt: rt.app.start_execution(StartRequest(flow.id, {})))).id
            for _ in range(2)
        ]
        done: set[str] = set()

        def both_over(message: dict[str, Any]) -> bool:
            if message.get("type") in TERMINAL or message.get("event") in TERMINAL:
                done.add(message.get("executionId") or message["data"]["executionId"])
            return len(done) == 2

        messages, _ = await ws_read(ws, until=both_over)
        done.clear()
        frames = await read_sse(response, until=both_over)
    for execution_id in ids:
        expected = await stored_on(server, execution_id)
        assert [m for m in messages if m["executionId"] == execution_id] == expected
        assert [e for e in events_of(frames) if e["executionId"] == execution_id] == expected
    cursor = dict(part.split(":") for part in frames[-1]["id"].split(","))
    assert cursor.pop("@").isdigit()  # when the last event was delivered
    assert cursor == {i: str(len(await stored_on(server, i))) for i in ids}
    # resume the workflow stream from a cursor: the named execution is replayed
    async with connect(f"{server.ws_url}/ws/workflows/{flow.id}?after={ids[0]}:2") as ws:
        replayed, _ = await ws_read(ws, until=lambda m: m["type"] in TERMINAL)
    assert replayed == (await stored_on(server, ids[0]))[2:]


def held_workflow() -> dict[str, Any]:
    """transform -> wait for a ``go`` event -> transform: it ends when the test says so."""
    return {
        "name": "held",
        "steps": [
            {
                "id": "prepare",
                "type": "transform",
                "config": {"set": {"n": 1}},
                "nextSteps": ["hold"],
            },
            {
                "id": "hold",
                "type": "wait_for_event",
                "config": {"event": "go", "timeoutSeconds": 60},
                "nextSteps": ["finish"],
            },
            {"id": "finish", "type": "transform", "config": {"set": {"done": True}}},
        ],
    }


async def test_ws_sends_keepalives_while_idle(server: ServerThread) -> None:
    _, execution_id = await start_run(server, held_workflow())
    async with connect(f"{server.ws_url}/ws/executions/{execution_id}") as ws:
        kinds: list[str] = []
        while "keepalive" not in kinds:
            kinds.append(json.loads(await ws.recv())["type"])
    assert "step.waiting" in kinds  # idle while the step waits (keepalive is 0.3 s here)


async def test_client_resume_message_replays_from_the_given_seq(server: ServerThread) -> None:
    # The execution is held in a wait for an event until the replay has been seen: a
    # timed wait could end (and the server close 1000) before the resume is read.
    _, execution_id = await start_run(server, held_workflow())
    async with connect(f"{server.ws_url}/ws/executions/{execution_id}") as ws:
        head, _ = await ws_read(ws, until=lambda m: m["type"] == "step.waiting")
        await ws.send(json.dumps({"oops": True}))
        error, _ = await ws_read(ws, until=lambda m: m["type"] == "error")
        await ws.send(json.dumps({"resume": 999}))  # beyond the last event: refused
        error += (await ws_read(ws, until=lambda m: m["type"] == "error"))[0]
        await ws.send(json.dumps({"resume": 1}))
        replayed, _ = await ws_read(ws, until=lambda m: m["type"] == "step.waiting")
        await server.app(lambda rt: rt.app.send_event(execution_id, "go", {"ok": True}))
        rest, code = await ws_read(ws)
    assert [m["error"]["code"] for m in error] == ["INVALID_INPUT"] * 2
    expected = await stored_on(server, execution_id)
    waiting = [e["type"] for e in expected].index("step.waiting") + 1
    assert head == expected[:waiting] and code == 1000
    assert replayed == expected[1:waiting]  # from seq 2 again, in order
    assert rest == expected[waiting:] and rest[-1]["type"] == "execution.succeeded"


async def test_graphql_subscription_over_graphql_transport_ws(server: ServerThread) -> None:
    _, execution_id = await start_run(server, workflow(0.3))
    query = "subscription($id: ID!) { workflowStatus(executionId: $id) }"
    protocols: Any = ["graphql-transport-ws"]
    async with connect(f"{server.ws_url}/graphql", subprotocols=protocols) as ws:
        await ws.send(json.dumps({"type": "connection_init"}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(
            json.dumps(
                {
                    "id": "1",
                    "type": "subscribe",
                    "payload": {"query": query, "variables": {"id": execution_id}},
                }
            )
        )
        statuses = []
        while (message := json.loads(await ws.recv()))["type"] == "next":
            statuses.append(message["payload"]["data"]["workflowStatus"])
    assert message["type"] == "complete", message
    assert statuses[-1] == "SUCCEEDED" and len(statuses) >= 2
