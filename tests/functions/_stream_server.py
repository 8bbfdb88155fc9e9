"""The status-stream app under a real uvicorn, in a background thread, and its helpers.

The runtime lives in the server's event loop (like in production, the engine and
the streams share one loop); tests hand it coroutines with ``ServerThread.call``
and talk to the server over real sockets.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import httpx
import uvicorn
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from shared.api.auth import Authenticator, LocalDevAuthenticator
from shared.api.broker import EventBroker
from shared.api.edge import Edge
from shared.api.streams import create_stream_app
from shared.app.service import StartRequest
from shared.composition import LocalRuntime, build_local
from shared.composition.edge import build_edge
from shared.settings import Settings

T = TypeVar("T")

TERMINAL = {"execution.succeeded", "execution.failed", "execution.cancelled", "execution.timed_out"}


def workflow(wait_seconds: float = 0.5, name: str = "stream") -> dict[str, Any]:
    """transform -> wait -> transform -> transform."""
    return {
        "name": name,
        "steps": [
            {
                "id": "prepare",
                "type": "transform",
                "config": {"set": {"n": 1}},
                "nextSteps": ["pause"],
            },
            {
                "id": "pause",
                "type": "wait",
                "config": {"seconds": wait_seconds},
                "nextSteps": ["work"],
            },
            {
                "id": "work",
                "type": "transform",
                "config": {"set": {"m": 2}},
                "nextSteps": ["finish"],
            },
            {"id": "finish", "type": "transform", "config": {"set": {"done": True}}},
        ],
    }


class ServerThread:
    """uvicorn serving ``create_stream_app(edge)`` on a free port over a local runtime."""

    def __init__(
        self,
        db_path: Path,
        keepalive: float = 15.0,
        send_buffer: int | None = None,
        allowed_origins: list[str] | None = None,
    ) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if send_buffer is not None:  # accepted connections inherit it (Linux)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        self.keepalive = keepalive
        self.allowed_origins = allowed_origins or []
        self.server: uvicorn.Server | None = None
        self.settings = Settings.local_mode(db_path=str(db_path))
        self.authenticator: Authenticator = LocalDevAuthenticator()
        self.loop = asyncio.new_event_loop()
        self.runtime: LocalRuntime | None = None
        self.edge: Edge | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stream-server", daemon=True)

    def start(self) -> ServerThread:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("stream server did not start")
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._main())
        finally:
            self.loop.close()

    async def _main(self) -> None:
        runtime = build_local(self.settings)
        self.runtime = runtime
        self.edge = build_edge(self.settings, runtime=runtime, authenticator=self.authenticator)
        self.edge.owns_runtime = True
        app = create_stream_app(
            self.edge, keepalive=self.keepalive, allowed_origins=self.allowed_origins
        )
        config = uvicorn.Config(
            app, lifespan="on", log_level="warning", ws_ping_interval=5, ws_ping_timeout=5
        )
        self.server = uvicorn.Server(config)
        serving = asyncio.create_task(self.server.serve(sockets=[self.sock]))
        while not self.server.started and not serving.done():
            await asyncio.sleep(0.01)
        self._ready.set()
        await serving

    async def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` in the server's loop (where the runtime lives) and wait for it."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    async def app(self, use: Callable[[LocalRuntime], Awaitable[T]]) -> T:
        """``await use(runtime)`` in the server's loop."""

        async def run() -> T:
            assert self.runtime is not None
            return await use(self.runtime)

        return await self.call(run())

    def use_authenticator(self, authenticator: Authenticator) -> None:
        """Let in whom ``authenticator`` lets in, from the next connection on."""
        assert self.edge is not None
        self.edge.authenticator = authenticator

    def stop(self) -> None:
        assert self.server is not None
        self.server.should_exit = True
        self._thread.join(15)
        self.sock.close()


async def read_sse(
    response: httpx.Response | AsyncIterator[str],
    *,
    until: Callable[[dict[str, Any]], bool] | None = None,
) -> list[dict[str, Any]]:
    """SSE frames as dicts (``id``, ``event``, ``retry``, ``data`` parsed, ``comment``).

    Reads to the end of the response, or until a frame for which ``until`` is true.
    To read one response in several parts, pass the same ``response.aiter_lines()``.
    """
    lines = response.aiter_lines() if isinstance(response, httpx.Response) else response
    frames: list[dict[str, Any]] = []
    frame: dict[str, Any] = {}
    async for line in lines:
        if line == "":
            if frame:
                frames.append(frame)
                if until is not None and until(frame):
                    break
            frame = {}
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "":
            frame["comment"] = value
        elif field == "data":
            frame["data"] = json.loads(value)
        else:
            frame[field] = value
    return frames


def events_of(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [f["data"] for f in frames if "data" in f and f.get("event") != "error"]


async def ws_read(
    ws: ClientConnection, *, until: Callable[[dict[str, Any]], bool] | None = None
) -> tuple[list[dict[str, Any]], int | None]:
    """Messages (keepalives left out) until the server closes or ``until`` holds."""
    messages: list[dict[str, Any]] = []
    try:
        while True:
            message = json.loads(await ws.recv())
            if message.get("type") == "keepalive":
                continue
            messages.append(message)
            if until is not None and until(message):
                break
    except ConnectionClosed:
        pass
    return messages, ws.close_code


async def stored(runtime: LocalRuntime, execution_id: str) -> list[dict[str, Any]]:
    return [event.to_json_dict() for event in await runtime.app.events(execution_id)]


async def start_run(server: ServerThread, definition: dict[str, Any]) -> tuple[str, str]:
    """(workflow id, execution id) of a new execution, started in the server's runtime (of
    a new workflow: the name gets a suffix, as names are unique in a tenant)."""
    definition = {**definition, "name": f"{definition['name']}-{uuid.uuid4().hex[:8]}"}
    flow = await server.app(lambda rt: rt.app.create_workflow(definition))
    execution = await server.app(lambda rt: rt.app.start_execution(StartRequest(flow.id, {})))
    return flow.id, execution.id


async def stored_on(server: ServerThread, execution_id: str) -> list[dict[str, Any]]:
    return await server.app(lambda rt: stored(rt, execution_id))


async def small_broker(server: ServerThread, max_queue: int) -> None:
    """Give the server's edge a broker with a small queue per subscriber (in its loop)."""
    assert server.edge is not None and server.runtime is not None
    broker = EventBroker(server.runtime.app, max_queue=max_queue)
    broker.attach_feed(server.runtime.event_feed())
    server.edge.broker.detach()
    server.edge.broker = broker


async def cut_off_count(server: ServerThread) -> int:
    assert server.edge is not None
    return server.edge.broker.stats.cut_off


def chain(length: int, name: str = "chain") -> dict[str, Any]:
    """``length`` transform steps in a row: one commit emits all their events."""
    steps = [
        {"id": f"s{i}", "type": "transform", "config": {"set": {"i": i}}}
        | ({"nextSteps": [f"s{i + 1}"]} if i < length - 1 else {})
        for i in range(length)
    ]
    return {"name": name, "steps": steps}
