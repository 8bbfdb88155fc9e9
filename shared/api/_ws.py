"""The plain JSON WebSocket session: events out, ``{"resume": ...}`` in.

One session is one ``asyncio.TaskGroup``: a pump sending the stream's events, a
watch on the broker cutting the stream off, and a reader of the client's commands.
Whichever ends the session (the terminal event, an error, a cut-off, the client
leaving) cancels the others; nothing outlives the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable

from starlette.websockets import WebSocket, WebSocketDisconnect

from shared.api._subscription import SlowConsumer
from shared.api.broker import EventStream
from shared.api.errors import status_for
from shared.errors import InputInvalid, WorkflowError

OpenStream = Callable[[str | None], Awaitable[EventStream]]
"""Opens the session's stream from a resume position (``None``: from the start)."""

NORMAL_CLOSURE = 1000
TRY_AGAIN_LATER = 1013
INTERNAL_ERROR = 1011
_FINAL_SEND_SECONDS = 1.0
_CLOSE_SECONDS = 10.0


class _Finished(Exception):
    """The stream ended: the session closes normally."""


def close_code(error: WorkflowError) -> int:
    """4000 + the HTTP status for client errors (4404, 4401, 4403, 4400...)."""
    status = status_for(error)
    if 400 <= status < 500:
        return 4000 + status
    return TRY_AGAIN_LATER if error.retryable else INTERNAL_ERROR


async def close_with_error(websocket: WebSocket, error: WorkflowError) -> None:
    """Send ``{"type": "error", "error": {...}}`` then close with the mapped code."""
    body = json.dumps({"type": "error", "error": error.to_dict()})
    # A consumer cut off for being slow may not read at all: do not wait on it for long.
    with contextlib.suppress(TimeoutError, WebSocketDisconnect, RuntimeError):
        await asyncio.wait_for(websocket.send_text(body), _FINAL_SEND_SECONDS)
    with contextlib.suppress(TimeoutError, WebSocketDisconnect, RuntimeError):
        await asyncio.wait_for(
            websocket.close(close_code(error), error.message[:120]), _FINAL_SEND_SECONDS
        )


async def serve_session(
    websocket: WebSocket,
    open_stream: OpenStream,
    keepalive: float,
    *,
    subprotocol: str | None = None,
) -> None:
    """Accept (selecting ``subprotocol``), stream until the end (close 1000), an error, a
    cut-off or the client leaves."""
    try:
        stream = await open_stream(websocket.query_params.get("after"))
    except WorkflowError as error:
        await websocket.accept(subprotocol)
        await close_with_error(websocket, error)
        return
    await websocket.accept(subprotocol)
    session = _Session(websocket, open_stream, keepalive)
    try:
        async with asyncio.TaskGroup() as group:
            session.group = group
            session.follow(stream)
            group.create_task(session.read_commands())
    except* (_Finished, WebSocketDisconnect):
        pass
    except* WorkflowError as failed:
        first = failed.exceptions[0]
        assert isinstance(first, WorkflowError)
        await close_with_error(websocket, first)
    finally:
        await session.close_stream()


class _Session:
    def __init__(self, websocket: WebSocket, open_stream: OpenStream, keepalive: float) -> None:
        self.websocket = websocket
        self.open_stream = open_stream
        self.keepalive = keepalive
        self.group: asyncio.TaskGroup | None = None
        self.stream: EventStream | None = None
        self.tasks: list[asyncio.Task[None]] = []

    def follow(self, stream: EventStream) -> None:
        """Send ``stream``'s events from now on (after a resume: instead of the last)."""
        assert self.group is not None
        self.stream = stream
        self.tasks = [
            self.group.create_task(self._pump(stream)),
            self.group.create_task(self._watch(stream)),
        ]

    async def _pump(self, stream: EventStream) -> None:
        while True:
            try:
                event = await stream.next(timeout=self.keepalive)
            except StopAsyncIteration:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self.websocket.close(NORMAL_CLOSURE, "execution finished"),
                        _CLOSE_SECONDS,
                    )
                raise _Finished from None
            if event is None:
                await self.websocket.send_text('{"type":"keepalive"}')
            else:
                await self.websocket.send_text(event.wire_json())

    async def _watch(self, stream: EventStream) -> None:
        """The broker cut the stream off (the pump may be stuck sending to the client)."""
        await stream.overflowed.wait()
        raise SlowConsumer("subscriber too slow: cut off; reconnect to resume")

    async def read_commands(self) -> None:
        while True:
            try:  # a bad command or resume position is answered; the stream goes on
                resumed = await self.open_stream(await self._command())
            except InputInvalid as error:
                await self.websocket.send_text(
                    json.dumps({"type": "error", "error": error.to_dict()})
                )
                continue
            for task in self.tasks:
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
            await self.close_stream()
            self.follow(resumed)

    async def _command(self) -> str:
        """The position of the next ``{"resume": N}`` (``"exec:N,..."`` for workflows)."""
        message = await self.websocket.receive()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000), message.get("reason"))
        text = message.get("text") or (message.get("bytes") or b"").decode(errors="replace")
        try:
            command = json.loads(text)
        except ValueError:
            command = None
        resume = command.get("resume") if isinstance(command, dict) else None
        if isinstance(resume, bool) or not isinstance(resume, int | str):
            raise InputInvalid('expected {"resume": <seq or cursor>}', path="/resume")
        return str(resume)

    async def close_stream(self) -> None:
        if self.stream is not None:
            await self.stream.aclose()
            self.stream = None
