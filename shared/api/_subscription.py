"""A subscriber's bounded buffer of live events, and the workflow resume cursor."""

from __future__ import annotations

import asyncio
import functools
from collections import deque
from collections.abc import Mapping
from urllib.parse import quote, unquote

from shared.errors import InputInvalid, WorkflowError
from shared.models import ExecutionEvent

TERMINAL_EVENTS = frozenset(
    {"execution.succeeded", "execution.failed", "execution.cancelled", "execution.timed_out"}
)
"""Event types after which a stream of one execution ends."""

MAX_CURSOR_ENTRIES = 500
SINCE_KEY = "@"
"""Cursor entry ``@:<epoch ms>``: when the workflow stream last delivered an event."""


class SlowConsumer(WorkflowError):
    """The subscriber fell more than its queue size behind the live events; reconnect."""

    code = "SLOW_CONSUMER"
    retryable = True


class Subscription:
    """Live events of one execution or one workflow, buffered for one consumer.

    ``offer`` never blocks: when the buffer is full the subscription is cut off
    (buffer dropped, ``overflowed`` set) and the consumer's next ``get`` raises
    ``SlowConsumer``. Only the event loop that created it may touch it.
    """

    def __init__(self, key: tuple[str, str], max_queue: int) -> None:
        self.key = key
        self.max_queue = max_queue
        self.overflowed = asyncio.Event()
        self._buffer: deque[ExecutionEvent] = deque()
        self._wakeup = asyncio.Event()

    def offer(self, event: ExecutionEvent) -> bool:
        """Buffer ``event``; False once the subscriber is cut off."""
        if self.overflowed.is_set():
            return False
        if len(self._buffer) >= self.max_queue:
            self._buffer.clear()
            self.overflowed.set()
            self._wakeup.set()
            return False
        self._buffer.append(event)
        self._wakeup.set()
        return True

    async def get(self, timeout: float | None = None) -> ExecutionEvent | None:
        """The oldest buffered event; ``None`` after ``timeout`` seconds without one."""
        while not self._buffer:
            self.raise_if_cut_off()
            self._wakeup.clear()
            if timeout is None:
                await self._wakeup.wait()
                continue
            try:
                await asyncio.wait_for(self._wakeup.wait(), timeout)
            except TimeoutError:
                return None
        self.raise_if_cut_off()
        return self._buffer.popleft()

    def has_newer(self, execution_id: str, seq: int) -> bool:
        """Whether an event of ``execution_id`` after ``seq`` is already buffered."""
        return any(e.execution_id == execution_id and e.seq > seq for e in self._buffer)

    def raise_if_cut_off(self) -> None:
        if self.overflowed.is_set():
            raise SlowConsumer(
                f"subscriber fell more than {self.max_queue} events behind; "
                "reconnect with the last sequence number received to resume"
            )


def parse_cursor(text: str | None) -> dict[str, int]:
    """``<executionId>:<seq>,...`` (ids percent-encoded) to ``{execution_id: seq}``.

    An optional ``@:<epoch ms>`` entry (key ``SINCE_KEY``) tells when the stream
    last delivered an event, so executions started after it are replayed too.
    """
    if not text:
        return {}
    cursor: dict[str, int] = {}
    for part in text.split(","):
        execution_id, sep, seq = part.strip().rpartition(":")
        if not sep or not execution_id or not _is_uint(seq):
            raise InputInvalid(
                f"invalid resume cursor entry {part!r}: expected <executionId>:<seq>",
                path="/after",
            )
        cursor[execution_id if execution_id == SINCE_KEY else unquote(execution_id)] = int(seq)
    if len(cursor) > MAX_CURSOR_ENTRIES:
        raise InputInvalid(
            f"resume cursor names more than {MAX_CURSOR_ENTRIES} executions", path="/after"
        )
    return cursor


def format_cursor(cursor: Mapping[str, int]) -> str:
    """The inverse of ``parse_cursor``."""
    return ",".join(f"{_quoted(eid)}:{seq}" for eid, seq in cursor.items())


@functools.lru_cache(maxsize=16_384)
def _quoted(execution_id: str) -> str:
    """An execution id as a cursor names it (percent-encoded), remembered: a workflow SSE
    stream formats the same ids in frame after frame."""
    return execution_id if execution_id == SINCE_KEY else quote(execution_id, safe="")


def parse_after(text: str | None) -> int:
    """A sequence number given by a client (``after``, ``Last-Event-ID``, ``resume``)."""
    if text is None or text == "":
        return 0
    text = text.strip()
    if not _is_uint(text):
        raise InputInvalid(f"'after' must be a non-negative integer, got {text!r}", path="/after")
    return int(text)


def _is_uint(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= 18
