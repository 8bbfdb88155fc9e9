"""GraphQL subscriptions over a real socket: uvicorn in a thread, the ``gql`` client.

The server thread owns its event loop and its edge (as a function does); the test
talks to it only over HTTP and ``graphql-transport-ws``.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from _graphql import TERMINAL, create, data, execute, settle, sleeper
from gql import Client, GraphQLRequest
from gql.transport.exceptions import TransportQueryError
from gql.transport.websockets import WebsocketsTransport

from shared.api.rest import create_management_app
from shared.composition import build_local
from shared.composition.edge import build_edge
from shared.settings import Settings

STATUS = "subscription($id: ID!) { workflowStatus(executionId: $id) }"
EVENTS = """subscription($id: ID!, $after: Int) {
  executionEvents(executionId: $id, after: $after) { seq type stepId status data }
}"""


@dataclass
class Server:
    port: int
    http: str
    ws: str


def _serve(sock: socket.socket, db_path: Path, holder: dict[str, uvicorn.Server]) -> None:
    """The management app (GraphQL over HTTP and WebSocket) over its own edge, as the
    ``create`` function builds it; uvicorn runs the edge's lifespan."""

    async def main() -> None:
        settings = Settings.local_mode(db_path=str(db_path))
        runtime = build_local(settings)
        edge = build_edge(settings, runtime=runtime)
        edge.owns_runtime = True
        config = uvicorn.Config(
            create_management_app(edge), log_level="warning", ws="websockets-sansio"
        )
        holder["server"] = uvicorn.Server(config)
        try:
            await holder["server"].serve(sockets=[sock])
        finally:
            await settle(runtime)

    asyncio.run(main())


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))  # a free port, held until uvicorn takes the socket
    port = sock.getsockname()[1]
    db_path = tmp_path_factory.mktemp("gql-ws") / "wfe.db"
    holder: dict[str, uvicorn.Server] = {}
    thread = threading.Thread(target=_serve, args=(sock, db_path, holder), daemon=True)
    thread.start()
    for _ in range(1000):
        if "server" in holder and holder["server"].started:
            break
        threading.Event().wait(0.01)
    running = holder["server"]
    assert running.started, "uvicorn did not start"
    try:
        yield Server(port, f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}")
    finally:
        running.should_exit = True
        thread.join(timeout=10)
        sock.close()


def _client(url: str, tenant: str = "default") -> Client:
    transport = WebsocketsTransport(
        url=url,
        subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
        headers={"X-Tenant": tenant},
    )
    return Client(transport=transport)


async def _collect(
    url: str, query: str, variables: dict[str, Any], tenant: str = "default"
) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    async with asyncio.timeout(15), _client(url, tenant) as session:
        request = GraphQLRequest(query, variable_values=variables)
        async for result in session.subscribe(request):
            results.append(result)
    return results


def _held() -> dict[str, Any]:
    """transform -> wait for a ``go`` event -> transform: it ends when the test says so
    (a timed wait could end before the subscription is open, under load)."""
    flow = sleeper()
    flow["steps"][1] = {
        "id": "nap",
        "type": "wait_for_event",
        "config": {"event": "go", "timeoutSeconds": 60},
        "nextSteps": ["after"],
    }
    return flow


async def test_workflow_status_follows_an_execution(server: Server) -> None:
    async with httpx.AsyncClient(base_url=server.http) as http:
        workflow_id = await create(http, _held())
        execution_id = await execute(http, workflow_id)
        statuses: list[str] = []
        request = GraphQLRequest(STATUS, variable_values={"id": execution_id})
        async with asyncio.timeout(15), _client(f"{server.ws}/graphql") as session:
            async for result in session.subscribe(request):
                statuses.append(result["workflowStatus"])
                if statuses[-1] == "WAITING" and statuses.count("WAITING") == 1:
                    sent = await http.post(
                        f"/api/v1/executions/{execution_id}/events", json={"name": "go"}
                    )
                    assert sent.status_code == 202, sent.text
        # On a failure, say what the execution did (it once read ['SUCCEEDED'] alone).
        detail = (await http.get(f"/api/v1/executions/{execution_id}")).json()
        story = (statuses, [(s["stepId"], s["status"]) for s in detail.get("steps", [])])
        assert statuses[-1] == "SUCCEEDED", story
        assert "WAITING" in statuses and "RUNNING" in statuses, story
        assert all(a != b for a, b in itertools.pairwise(statuses)), statuses
        assert not TERMINAL & set(statuses[:-1])

        done = await _collect(f"{server.ws}/graphql", STATUS, {"id": execution_id})
        assert done == [{"workflowStatus": "SUCCEEDED"}]


async def test_execution_events_replay_then_end(server: Server) -> None:
    async with httpx.AsyncClient(base_url=server.http) as http:
        workflow_id = await create(http, sleeper(0.2))
        execution_id = await execute(http, workflow_id)
        live = await _collect(f"{server.ws}/graphql", EVENTS, {"id": execution_id, "after": 0})
        events = [r["executionEvents"] for r in live]
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        assert events[-1]["type"] == "execution.succeeded"
        assert {"stepId": "nap", "type": "step.waiting"}.items() <= next(
            e for e in events if e["type"] == "step.waiting"
        ).items()

        resumed = await _collect(
            f"{server.ws}/graphql", EVENTS, {"id": execution_id, "after": len(events) - 2}
        )
        assert [r["executionEvents"] for r in resumed] == events[-2:]
        stored = await data(
            http,
            "query($id: ID!) { execution(id: $id) { events { seq type } } }",
            {"id": execution_id},
        )
        assert [(e["seq"], e["type"]) for e in stored["execution"]["events"]] == [
            (e["seq"], e["type"]) for e in events
        ]


async def test_subscriptions_isolate_tenants(server: Server) -> None:
    async with httpx.AsyncClient(base_url=server.http) as http:
        workflow_id = await create(http, sleeper(0.05), tenant="acme")
        started = await data(
            http,
            "mutation($id: ID!) { executeWorkflow(id: $id, input: {}) { id } }",
            {"id": workflow_id},
            tenant="acme",
        )
        execution_id = started["executeWorkflow"]["id"]
        mine = await _collect(f"{server.ws}/graphql", STATUS, {"id": execution_id}, tenant="acme")
        assert mine[-1] == {"workflowStatus": "SUCCEEDED"}

        with pytest.raises(TransportQueryError) as refused:
            await _collect(f"{server.ws}/graphql", STATUS, {"id": execution_id}, tenant="globex")
        assert refused.value.errors is not None
        assert refused.value.errors[0]["extensions"]["code"] == "NOT_FOUND"
