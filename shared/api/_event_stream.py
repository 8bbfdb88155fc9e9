"""One consumer's stream: stored events after a cursor, then live ones, once each.

Built by ``EventBroker.open``; see ``shared.api.broker`` for the guarantees.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from collections.abc import Callable

from shared.api._subscription import SINCE_KEY, TERMINAL_EVENTS, Subscription, format_cursor
from shared.app import WorkflowApp
from shared.errors import InputInvalid, NotFound
from shared.models import ExecutionEvent, WorkflowExecution

MAX_TRACKED_EXECUTIONS = 10_000
"""Per workflow stream: executions whose last delivered seq is remembered (LRU)."""
START_MARGIN_SECONDS = 2.0
"""Resuming a workflow stream: executions started this long before ``@`` are replayed too
(clock skew between instances)."""
MAX_STARTED_SINCE = 500
"""Resuming a workflow stream: at most this many executions started since ``@`` replayed."""


class EventStream:
    """One consumer's view: replay after a cursor, then live, in seq order, once each."""

    def __init__(
        self,
        app: WorkflowApp,
        *,
        subscribe: Callable[[tuple[str, str]], Subscription],
        unsubscribe: Callable[[Subscription], None],
        page_size: int,
        execution_id: str | None,
        workflow_id: str | None,
        after: int,
        cursor: dict[str, int],
    ) -> None:
        self._app = app
        self._subscribe = subscribe
        self._unsubscribe = unsubscribe
        self._page_size = page_size
        self.execution_id = execution_id
        self.workflow_id = workflow_id
        self.execution: WorkflowExecution | None = None
        """The execution as read when the stream started (execution streams)."""
        self._after = after
        self._cursor = dict(cursor)
        self._since_ms = self._cursor.pop(SINCE_KEY, None)
        self._sub: Subscription | None = None
        self._last: OrderedDict[str, int] = OrderedDict()
        self._replay: deque[str] = deque()
        self._pending: deque[ExecutionEvent] = deque()
        self._terminal_seen = False
        self._closed = False

    @property
    def overflowed(self) -> asyncio.Event:
        """Set when the broker cut this stream off; the next ``next`` raises SlowConsumer."""
        if self._sub is None:
            raise RuntimeError("stream not started")
        return self._sub.overflowed

    def cursor(self, limit: int = 100) -> str:
        """Resume cursor of the ``limit`` most recently active executions."""
        # The newest ``limit`` only, from the end: a workflow SSE stream names its cursor
        # in every frame's ``id``, and copying up to 10,000 tracked executions per frame
        # was most of the server's time with 100 subscribers.
        newest: list[tuple[str, int]] = []
        for execution_id in reversed(self._last):
            if len(newest) == limit:
                break
            newest.append((execution_id, self._last[execution_id]))
        recent = dict(reversed(newest))
        if self._since_ms is not None:
            recent = {SINCE_KEY: self._since_ms, **recent}
        return format_cursor(recent)

    async def start(self) -> None:
        """Subscribe, then check the target exists in the tenant; idempotent."""
        if self._sub is not None or self._closed:
            return
        key = (
            ("execution", self.execution_id)
            if self.execution_id
            else ("workflow", self.workflow_id or "")
        )
        self._sub = self._subscribe(key)
        try:
            if self.execution_id is not None:
                await self._start_execution(self.execution_id)
            else:
                await self._start_workflow(self.workflow_id or "")
        except BaseException:
            await self.aclose()
            raise

    async def _start_execution(self, execution_id: str) -> None:
        execution = await self._app.get_execution(execution_id)
        if self._after > execution.event_seq:
            raise InputInvalid(
                f"'after' ({self._after}) is beyond the execution's last event "
                f"({execution.event_seq})",
                path="/after",
            )
        self.execution = execution
        self._last[execution_id] = self._after
        self._replay.append(execution_id)
        self._terminal_seen = execution.status.terminal and self._after >= execution.event_seq

    async def _start_workflow(self, workflow_id: str) -> None:
        await self._app.get_workflow(workflow_id)
        for execution_id, seq in self._cursor.items():
            try:
                execution = await self._app.get_execution(execution_id)
            except NotFound:
                continue
            if execution.workflow_id == workflow_id:
                self._last[execution_id] = seq
                self._replay.append(execution_id)
        if self._since_ms is not None:
            await self._replay_started_since(workflow_id, self._since_ms / 1000)

    async def _replay_started_since(self, workflow_id: str, since: float) -> None:
        """Executions started while the client was away (not in its cursor): from seq 0."""
        found: list[str] = []
        page_cursor: str | None = None
        while len(found) < MAX_STARTED_SINCE:
            page = await self._app.list_executions(
                workflow_id=workflow_id, limit=100, cursor=page_cursor
            )
            page_cursor = page.next_cursor
            for execution in page.items:  # newest first
                if execution.started_at.timestamp() < since - START_MARGIN_SECONDS:
                    page_cursor = None
                    break
                if execution.id not in self._last:
                    found.append(execution.id)
            if page_cursor is None:
                break
        for execution_id in reversed(found[:MAX_STARTED_SINCE]):
            self._last[execution_id] = 0
            self._replay.append(execution_id)

    async def next(self, timeout: float | None = None) -> ExecutionEvent | None:
        """The next event; ``None`` when ``timeout`` seconds pass without a live one.

        Raises StopAsyncIteration when the stream ended. Cancelling it loses nothing.
        """
        await self.start()
        sub = self._sub
        while True:
            if self._closed or sub is None:
                raise StopAsyncIteration
            sub.raise_if_cut_off()
            if self._pending:
                event = self._pending.popleft()
                if self._is_new(event):
                    return self._deliver(event)
                continue
            if self._replay:
                await self._replay_page(self._replay[0])
                continue
            if self._terminal_seen and self.execution_id is not None:
                if not sub.has_newer(self.execution_id, self._last[self.execution_id]):
                    await self.aclose()
                    raise StopAsyncIteration
                self._terminal_seen = False
            live = await sub.get(timeout)
            if live is None:
                return None
            await self._fill_gap(live)
            self._pending.append(live)

    def _is_new(self, event: ExecutionEvent) -> bool:
        last = self._last.get(event.execution_id)
        return last is None or event.seq > last

    def _deliver(self, event: ExecutionEvent) -> ExecutionEvent:
        self._last[event.execution_id] = event.seq
        self._last.move_to_end(event.execution_id)
        if len(self._last) > MAX_TRACKED_EXECUTIONS:
            self._last.popitem(last=False)
        if self.execution_id is not None:
            self._terminal_seen = event.type in TERMINAL_EVENTS
        else:
            self._since_ms = max(self._since_ms or 0, int(event.at.timestamp() * 1000))
        return event

    async def _replay_page(self, execution_id: str) -> None:
        size = self._page_size
        page = await self._app.events(execution_id, self._last[execution_id], size)
        if len(page) < size:
            self._replay.popleft()
        self._pending.extend(page)

    async def _fill_gap(self, live: ExecutionEvent) -> None:
        """Read from the store what a live event skipped (a feed may reorder or lag)."""
        last = self._last.get(live.execution_id)
        if last is None or live.seq <= last + 1:
            return
        limit = min(live.seq - last - 1, self._page_size)
        missing = await self._app.events(live.execution_id, last, limit)
        self._pending.extend(event for event in missing if event.seq < live.seq)

    async def aclose(self) -> None:
        """Unsubscribe; the stream then ends."""
        self._closed = True
        if self._sub is not None:
            self._unsubscribe(self._sub)

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> ExecutionEvent:
        while True:
            event = await self.next()
            if event is not None:
                return event

    async def __aenter__(self) -> EventStream:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
