"""Server-sent events: an ``EventStream`` written as ``text/event-stream``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from shared.api._subscription import SlowConsumer
from shared.api.broker import EventStream
from shared.errors import WorkflowError
from shared.models import ExecutionEvent

log = logging.getLogger(__name__)

KEEPALIVE_SECONDS = 15.0
RETRY_MILLISECONDS = 2000
"""Reconnection delay suggested to browsers (the ``retry:`` field)."""
_FINAL_SEND_SECONDS = 1.0


def event_frame(event: ExecutionEvent, event_id: str) -> str:
    """``id:``, ``event:`` and one ``data:`` line (JSON has no raw newlines)."""
    data = json.dumps(event.to_json_dict(), separators=(",", ":"))
    return f"id: {event_id}\nevent: {event.type}\ndata: {data}\n\n"


def error_frame(error: WorkflowError) -> str:
    data = json.dumps({"error": error.to_dict()}, separators=(",", ":"))
    return f"event: error\ndata: {data}\n\n"


class EventSourceResponse(Response):
    """Streams events until the stream ends, the client leaves or it is cut off.

    A comment line every ``keepalive`` seconds keeps proxies from closing an idle
    connection. A consumer too slow to take its events (the broker cut it off) gets
    an ``error`` event with code SLOW_CONSUMER if the connection can still take it.
    """

    media_type = "text/event-stream"

    def __init__(
        self,
        events: EventStream,
        *,
        event_id: Callable[[ExecutionEvent], str],
        keepalive: float = KEEPALIVE_SECONDS,
    ) -> None:
        super().__init__(headers={"cache-control": "no-cache", "x-accel-buffering": "no"})
        # An endless body: no Content-Length (the base class declares 0 for no content).
        self.raw_headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]
        self.events = events
        self.event_id = event_id
        self.keepalive = keepalive

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": self.status_code,
                    "headers": self.raw_headers,
                }
            )
            await self._serve(receive, send)
        finally:
            await self.events.aclose()

    async def _serve(self, receive: Receive, send: Send) -> None:
        pump = asyncio.create_task(self._pump(send))
        left = asyncio.create_task(_wait_disconnect(receive))
        cut_off = asyncio.create_task(self.events.overflowed.wait())
        tasks = {pump, left, cut_off}
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        error = pump.exception() if pump.done() and not pump.cancelled() else None
        if left.done() and not left.cancelled():
            return
        if cut_off.done() and not cut_off.cancelled() and not pump.done():
            error = SlowConsumer("subscriber too slow: cut off; reconnect to resume")
        closing = error_frame(error) if isinstance(error, WorkflowError) else ""
        if error is not None and not isinstance(error, WorkflowError):
            log.error("event stream failed", exc_info=error)
        with contextlib.suppress(TimeoutError, OSError):
            # A cut-off client may not read at all: do not wait on it for long.
            await asyncio.wait_for(_body(send, closing, more=False), _FINAL_SEND_SECONDS)

    async def _pump(self, send: Send) -> None:
        # The reconnection delay rides on the first event: a frame of its own would
        # reach some clients as an event without data.
        retry = f"retry: {RETRY_MILLISECONDS}\n"
        while True:
            try:
                event = await self.events.next(timeout=self.keepalive)
            except StopAsyncIteration:
                return
            if event is None:
                await _body(send, ": keepalive\n\n")
            else:
                await _body(send, retry + event_frame(event, self.event_id(event)))
                retry = ""


async def _body(send: Send, text: str, *, more: bool = True) -> None:
    message: dict[str, Any] = {
        "type": "http.response.body",
        "body": text.encode(),
        "more_body": more,
    }
    await send(message)


async def _wait_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
