"""Issue 10: browsers open streams with a short-lived, single-purpose stream token.

A browser cannot set headers on an ``EventSource`` or a ``WebSocket``; an API key in a
URL would end up in logs and history. ``POST /api/v1/stream-tokens`` mints a token for
one execution's or workflow's stream, valid about a minute. The attacks: using it on
another execution, another workflow, the REST API or after it expired; forging its
claims (another tenant) or minting one for another tenant's execution; each refused
with a stable code and nothing served.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from shared.api.auth import ApiKeyAuthenticator, Principal, Role, hash_api_key
from shared.api.edge import Edge
from shared.api.rest import create_management_app
from shared.api.stream_tokens import StreamTokens
from shared.api.streams import create_stream_app
from shared.app.service import StartRequest
from shared.composition import LocalRuntime
from tests.edge_fixtures import client_for
from tests.functions._stream_server import ServerThread, start_run, ws_read

pytestmark = pytest.mark.timeout(30)

SALT = "stream-token-suite"
KEYS = {
    "alice-key": ("alice", "default", Role.VIEWER),
    "mallory-key": ("mallory", "acme", Role.OWNER),
}
STEPS = [{"id": "only", "type": "transform", "config": {"set": {"done": True}}}]


@pytest.fixture
def authenticator() -> ApiKeyAuthenticator:
    principals = {
        hash_api_key(key, SALT): Principal(subject, tenant, role)
        for key, (subject, tenant, role) in KEYS.items()
    }
    return ApiKeyAuthenticator(principals, SALT)


@pytest.fixture
async def clients(edge: Edge) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    async with (
        client_for(create_management_app(edge, lifespan=False)) as api,
        client_for(
            create_stream_app(edge, keepalive=0.2, lifespan=False), "http://streams.test"
        ) as streams,
    ):
        yield api, streams


async def _finished(runtime: LocalRuntime, tenant: str = "default") -> tuple[str, str]:
    app = runtime.app.for_tenant(tenant)
    flow = await app.create_workflow({"name": f"streamed-{uuid.uuid4().hex[:8]}", "steps": STEPS})
    execution = await app.start_execution(StartRequest(flow.id, {}))
    for _ in range(250):
        if (await app.get_execution(execution.id)).status.terminal:
            return flow.id, execution.id
        await asyncio.sleep(0.02)
    raise AssertionError("execution did not finish")


async def _mint(api: httpx.AsyncClient, key: str, **target: str) -> httpx.Response:
    return await api.post("/api/v1/stream-tokens", json=target, headers={"X-API-Key": key})


def _code(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, str(response.json()["error"]["code"])


async def test_a_token_opens_its_own_stream_and_nothing_else(
    runtime: LocalRuntime, clients: tuple[httpx.AsyncClient, httpx.AsyncClient]
) -> None:
    api, streams = clients
    flow_id, execution_id = await _finished(runtime)
    _, other_execution = await _finished(runtime)
    minted = await _mint(api, "alice-key", executionId=execution_id)
    assert minted.status_code == 201, minted.text
    body = minted.json()
    token = body["token"]
    assert body["sse"] == f"/sse/executions/{execution_id}?token={token}"
    assert body["websocket"] == f"/ws/executions/{execution_id}?token={token}"

    opened = await streams.get(body["sse"])  # no API key: the token is the credential
    assert opened.status_code == 200 and "execution.succeeded" in opened.text

    misuses = [
        f"/sse/executions/{other_execution}?token={token}",
        f"/sse/workflows/{flow_id}?token={token}",
    ]
    for path in misuses:
        assert _code(await streams.get(path)) == (401, "UNAUTHENTICATED"), path
    as_key = await api.get(
        f"/api/v1/executions/{execution_id}", headers={"Authorization": f"Bearer {token}"}
    )
    assert _code(as_key) == (401, "UNAUTHENTICATED")
    no_credentials = await streams.get(f"/sse/executions/{execution_id}")
    assert _code(no_credentials) == (401, "UNAUTHENTICATED")


async def test_expired_and_forged_tokens_are_refused(
    runtime: LocalRuntime, edge: Edge, clients: tuple[httpx.AsyncClient, httpx.AsyncClient]
) -> None:
    api, streams = clients
    _, execution_id = await _finished(runtime)
    now = [1_000_000.0]
    edge.stream_tokens = StreamTokens(b"k" * 32, ttl_seconds=60, clock=lambda: now[0])
    token = (await _mint(api, "alice-key", executionId=execution_id)).json()["token"]
    path = f"/sse/executions/{execution_id}?token="
    assert (await streams.get(path + token)).status_code == 200
    now[0] += 61
    assert _code(await streams.get(path + token)) == (401, "UNAUTHENTICATED")

    now[0] -= 61
    version, claims, mac = token.split(".")
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4))
    )
    decoded.update(ten="acme", rol="owner", exp=now[0] + 3600)
    forged_claims = base64.urlsafe_b64encode(json.dumps(decoded).encode()).rstrip(b"=").decode()
    forgeries = [f"{version}.{forged_claims}.{mac}", f"{version}.{claims}.{mac[:-2]}AA", "x.y.z"]
    for forged in forgeries:
        assert _code(await streams.get(path + forged)) == (401, "UNAUTHENTICATED"), forged
    other_key = StreamTokens(b"o" * 32, clock=lambda: now[0])
    alien = other_key.mint(Principal("alice"), "execution", execution_id, Role.VIEWER).token
    assert _code(await streams.get(path + alien)) == (401, "UNAUTHENTICATED")


async def test_no_token_for_another_tenants_execution_and_bad_bodies_refused(
    runtime: LocalRuntime, clients: tuple[httpx.AsyncClient, httpx.AsyncClient]
) -> None:
    api, _ = clients
    _, execution_id = await _finished(runtime)  # tenant default
    foreign = await _mint(api, "mallory-key", executionId=execution_id)  # mallory: acme
    assert _code(foreign) == (404, "NOT_FOUND")
    assert _code(await _mint(api, "nobody", executionId=execution_id)) == (401, "UNAUTHENTICATED")
    both = await _mint(api, "alice-key", executionId=execution_id, workflowId="w")
    neither = await api.post("/api/v1/stream-tokens", json={}, headers={"X-API-Key": "alice-key"})
    for refused in (both, neither):
        assert _code(refused) == (422, "VALIDATION_FAILED"), refused.text
        assert "exactly one of executionId and workflowId" in refused.json()["error"]["message"]


# -- WebSocket, on a real server: the token as a subprotocol -------------------------


@pytest.fixture
def server(tmp_path: Path, authenticator: ApiKeyAuthenticator) -> Iterator[ServerThread]:
    running = ServerThread(tmp_path / "streams.db", keepalive=0.3).start()
    running.use_authenticator(authenticator)
    try:
        yield running
    finally:
        running.stop()


async def test_websocket_takes_the_token_as_a_subprotocol(server: ServerThread) -> None:
    flow = {"name": "ws", "steps": STEPS}
    _, execution_id = await start_run(server, flow)
    _, other_id = await start_run(server, flow)
    assert server.edge is not None
    token = server.edge.stream_tokens.mint(
        Principal("alice"), "execution", execution_id, Role.VIEWER
    ).token
    protocols: Any = ["wfe-events", f"wfe-stream-token.{token}"]
    url = f"{server.ws_url}/ws/executions/{execution_id}"
    async with connect(url, subprotocols=protocols) as ws:
        assert ws.subprotocol == "wfe-events"  # the token is not echoed back
        messages, code = await ws_read(ws)
    assert code == 1000 and messages[-1]["type"] == "execution.succeeded"

    async with connect(f"{server.ws_url}/ws/executions/{other_id}", subprotocols=protocols) as ws:
        messages, code = await ws_read(ws)
    assert code == 4401 and messages[0]["error"]["code"] == "UNAUTHENTICATED"
    async with connect(url) as ws:  # no token, no key
        _, code = await ws_read(ws)
    assert code == 4401
    async with connect(f"{url}?token={token}") as ws:  # the query parameter works too
        messages, code = await ws_read(ws)
    assert code == 1000 and messages[-1]["type"] == "execution.succeeded"


async def test_a_workflow_token_opens_the_workflow_stream_only(server: ServerThread) -> None:
    flow_id, execution_id = await start_run(server, {"name": "ws", "steps": STEPS})
    assert server.edge is not None
    token = server.edge.stream_tokens.mint(Principal("alice"), "workflow", flow_id, Role.VIEWER)
    protocols: Any = ["wfe-events", f"wfe-stream-token.{token.token}"]
    async with connect(f"{server.ws_url}/ws/workflows/{flow_id}", subprotocols=protocols) as ws:
        started = await server.app(lambda rt: rt.app.start_execution(StartRequest(flow_id, {})))
        messages, _ = await ws_read(
            ws,
            until=lambda m: m["type"] == "execution.succeeded" and m["executionId"] == started.id,
        )
    assert messages[-1]["executionId"] == started.id
    path = f"{server.ws_url}/ws/executions/{execution_id}"
    async with connect(path, subprotocols=protocols) as ws:
        _, code = await ws_read(ws)
    assert code == 4401
