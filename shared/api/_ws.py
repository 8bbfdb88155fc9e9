"""The plain JSON WebSocket session: events out, ``{"resume": ...}`` in."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from shared.api._subscription import SlowConsumer
from shared.api.broker import EventStream
from shared.api.errors import status_for
from shared.errors import InputInvalid, WorkflowError

log = logging.getLogger(__name__)

OpenStream = Callable[[str | None], Awaitable[EventStream]]
"""Opens the session's stream from a resume position (``None``: from the start)."""

NORMAL_CLOSURE = 1000
TRY_AGAIN_LATER = 1013
INTERNAL_ERROR = 1011
_FINAL_SEND_SECONDS = 1.0
_CLOSE_SECONDS = 10.0


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


async def serve_session(websocket: WebSocket, open_stream: OpenStream, keepalive: float) -> None:
    """Accept, stream until the end (close 1000), an error, a cut-off or the client leaves."""
    try:
        stream = await open_stream(websocket.query_params.get("after"))
    except WorkflowError as error:
        await websocket.accept()
        await close_with_error(websocket, error)
        return
    await websocket.accept()
    session = _Session(websocket, open_stream, keepalive)
    try:
        await session.run(stream)
    except WebSocketDisconnect:
        pass
    except WorkflowError as error:
        await close_with_error(websocket, error)
    finally:
        await session.stop()


class _Session:
    def __init__(self, websocket: WebSocket, open_stream: OpenStream, keepalive: float) -> None:
        self.websocket = websocket
        self.open_stream = open_stream
        self.keepalive = keepalive
        self.stream: EventStream | None = None
        self.tasks: list[asyncio.Task[Any]] = []

    async def run(self, stream: EventStream) -> None:
        receiver = asyncio.create_task(self._command())
        self.tasks = [receiver]
        pump, cut_off = self._start(stream)
        while True:
            await asyncio.wait({pump, cut_off, receiver}, return_when=asyncio.FIRST_COMPLETED)
            if pump.done():
                pump.result()  # the stream's error, or the client left
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self.websocket.close(NORMAL_CLOSURE, "execution finished"), _CLOSE_SECONDS
                    )
                return
            if cut_off.done():
                raise SlowConsumer("subscriber too slow: cut off; reconnect to resume")
            try:  # a bad command or resume position is answered; the stream goes on
                resumed = await self.open_stream(receiver.result())
            except InputInvalid as error:
                await self.websocket.send_text(
                    json.dumps({"type": "error", "error": error.to_dict()})
                )
                resumed = None
            receiver = asyncio.create_task(self._command())
            self.tasks.append(receiver)
            if resumed is not None:
                await self._cancel(pump, cut_off)
                if self.stream is not None:
                    await self.stream.aclose()
                pump, cut_off = self._start(resumed)

    def _start(self, stream: EventStream) -> tuple[asyncio.Task[None], asyncio.Task[Any]]:
        self.stream = stream
        self.tasks = [task for task in self.tasks if not task.done()]
        pump = asyncio.create_task(self._pump(stream))
        cut_off = asyncio.create_task(stream.overflowed.wait())
        self.tasks += [pump, cut_off]
        return pump, cut_off

    async def _pump(self, stream: EventStream) -> None:
        while True:
            try:
                event = await stream.next(timeout=self.keepalive)
            except StopAsyncIteration:
                return
            if event is None:
                await self.websocket.send_text('{"type":"keepalive"}')
            else:
                await self.websocket.send_text(json.dumps(event.to_json_dict()))

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

    async def _cancel(self, *tasks: asyncio.Task[Any]) -> None:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def stop(self) -> None:
        await self._cancel(*self.tasks)
        if self.stream is not None:
            await self.stream.aclose()
