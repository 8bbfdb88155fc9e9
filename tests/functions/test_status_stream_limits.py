"""status-stream limits over real sockets: unknown ids, authentication, slow consumers."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from _stream_server import (
    ServerThread,
    chain,
    cut_off_count,
    small_broker,
    start_run,
    stored_on,
    workflow,
    ws_read,
)
from starlette.requests import HTTPConnection
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Origin

from shared.api.auth import Forbidden, Principal, Role, Unauthenticated
from shared.app.service import StartRequest

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerThread]:
    running = ServerThread(tmp_path / "streams.db", keepalive=0.3).start()
    try:
        yield running
    finally:
        running.stop()


async def test_unknown_or_foreign_ids_close_4404_and_bad_cursors_4400(
    server: ServerThread,
) -> None:
    flow_id, execution_id = await start_run(server, workflow(0.05))
    cases = [
        ("/ws/executions/nope", {}, 4404),
        ("/ws/workflows/nope", {}, 4404),
        (f"/ws/executions/{execution_id}", {"X-Tenant": "acme"}, 4404),
        (f"/ws/workflows/{flow_id}", {"X-Tenant": "acme"}, 4404),
        (f"/ws/executions/{execution_id}?after=-1", {}, 4400),
    ]
    for path, headers, code in cases:
        async with connect(f"{server.ws_url}{path}", additional_headers=headers) as ws:
            messages, closed = await ws_read(ws)
        assert closed == code, path
        assert messages[0]["type"] == "error" and messages[0]["error"]["code"] in (
            "NOT_FOUND",
            "INVALID_INPUT",
        )


async def test_cross_origin_browsers_need_an_allowed_origin(tmp_path: Path) -> None:
    server = ServerThread(tmp_path / "origins.db", allowed_origins=["https://dash.example"])
    server.start()
    try:
        _, execution_id = await start_run(server, workflow(0.05))
        url = f"{server.ws_url}/ws/executions/{execution_id}"
        with pytest.raises(InvalidStatus) as refused:  # cross-site WebSocket hijacking
            async with connect(url, origin=Origin("https://evil.example")):
                pass
        assert refused.value.response.status_code == 403
        for origin in ("https://dash.example", f"http://127.0.0.1:{server.port}"):
            async with connect(url, origin=Origin(origin)) as ws:
                messages, code = await ws_read(ws)
            assert code == 1000 and messages, origin
        async with httpx.AsyncClient(base_url=server.url) as client:
            response = await client.get(
                f"/sse/executions/{execution_id}", headers={"Origin": "https://dash.example"}
            )
        assert response.headers["access-control-allow-origin"] == "https://dash.example"
    finally:
        server.stop()


class KeyAuthenticator:
    """``X-Key: good`` is let in, ``blocked`` is refused, anything else is unknown."""

    async def authenticate(self, connection: HTTPConnection) -> Principal:
        key = connection.headers.get("x-key")
        if key == "good":
            return Principal("alice", role=Role.VIEWER)
        if key == "blocked":
            raise Forbidden("this key is suspended")
        raise Unauthenticated("missing or invalid key")


async def test_auth_failures_close_4401_and_4403(server: ServerThread) -> None:
    _, execution_id = await start_run(server, workflow(0.05))
    server.use_authenticator(KeyAuthenticator())
    path = f"/ws/executions/{execution_id}"
    for headers, code in (({}, 4401), ({"X-Key": "blocked"}, 4403), ({"X-Key": "good"}, 1000)):
        async with connect(f"{server.ws_url}{path}", additional_headers=headers) as ws:
            _, closed = await ws_read(ws)
        assert closed == code
    async with httpx.AsyncClient(base_url=server.url) as client:
        assert (await client.get(f"/sse/executions/{execution_id}")).status_code == 401


async def test_a_burst_beyond_the_queue_cuts_the_consumer_off_with_1013(
    server: ServerThread,
) -> None:
    await server.call(small_broker(server, 4))
    flow = await server.app(lambda rt: rt.app.create_workflow(chain(30, "burst")))
    async with connect(f"{server.ws_url}/ws/workflows/{flow.id}") as ws:
        execution = await server.app(lambda rt: rt.app.start_execution(StartRequest(flow.id, {})))
        messages, code = await ws_read(ws)  # a burst of 30+ events in one commit
    assert code == 1013
    assert messages[-1]["type"] == "error" and messages[-1]["error"]["code"] == "SLOW_CONSUMER"
    for _ in range(100):
        current = await server.app(lambda rt: rt.app.get_execution(execution.id))
        if current.status.terminal:
            break
        await asyncio.sleep(0.02)
    assert current.status.value == "succeeded"
    expected = await stored_on(server, execution.id)
    resume_at = len(expected) - 5
    async with connect(f"{server.ws_url}/ws/executions/{execution.id}?after={resume_at}") as ws:
        tail, code = await ws_read(ws)  # the server still serves, and resuming works
    assert code == 1000 and tail == expected[resume_at:]


STALLED_REQUESTS = {
    "ws": (
        "GET /ws/workflows/{id} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n",
        b"HTTP/1.1 101",
    ),
    "sse": ("GET /sse/workflows/{id} HTTP/1.1\r\nHost: x\r\n\r\n", b"HTTP/1.1 200"),
}


@pytest.mark.parametrize("kind", sorted(STALLED_REQUESTS))
async def test_a_stalled_client_is_cut_off_and_released(tmp_path: Path, kind: str) -> None:
    """A client that stops reading: the socket fills, sends block, the broker cuts it off."""
    server = ServerThread(tmp_path / "stall.db", send_buffer=4096).start()
    stalled = socket.socket()
    try:
        await server.call(small_broker(server, 200))
        flow = await server.app(lambda rt: rt.app.create_workflow(chain(5)))
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.connect(("127.0.0.1", server.port))
        request, status_line = STALLED_REQUESTS[kind]
        stalled.sendall(request.format(id=flow.id).encode())
        assert stalled.recv(12) == status_line  # then it never reads again
        started = time.monotonic()
        ids = [
            (await server.app(lambda rt: rt.app.start_execution(StartRequest(flow.id, {})))).id
            for _ in range(100)
        ]
        async with httpx.AsyncClient(base_url=server.url) as client:
            for _ in range(200):
                health = (await client.get("/health")).json()
                last = await server.app(lambda rt: rt.app.get_execution(ids[-1]))
                if health["subscribers"] == 0 and last.status.terminal:
                    break
                await asyncio.sleep(0.02)
        assert health["subscribers"] == 0 and last.status.value == "succeeded"
        assert time.monotonic() - started < 5  # the engine never waited for the client
        assert await server.call(cut_off_count(server)) == 1
    finally:
        stalled.close()
        server.stop()
