"""The event broker: stored events, then live ones, to every stream subscriber.

One ``EventBroker`` per process (the edge's) is fed by the runtime's ``EventFeed``
port: the store's change notifications in local mode, Firestore listeners in the
cloud, both through ``publish``. A stream of one
execution replays the stored events after the client's cursor and continues with
live ones, without gap or duplicate: it subscribes before replaying, buffers, drops
what it already delivered and fills any hole from the store. A stream of one workflow
carries the live events of all its executions, and replays the executions named in a
resume cursor (``<executionId>:<seq>,...``) first.

Each subscriber has a bounded queue: publishing never blocks the engine, and a
consumer that falls ``max_queue`` events behind is cut off with ``SlowConsumer``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass

from shared.api._event_stream import EventStream
from shared.api._subscription import SlowConsumer, Subscription, parse_cursor
from shared.app import WorkflowApp
from shared.errors import InputInvalid
from shared.models import ExecutionEvent
from shared.ports import EventFeed, FeedKey

__all__ = ["EventBroker", "EventStream", "SlowConsumer"]


@dataclass
class BrokerStats:
    published: int = 0
    """Events handed to ``publish``."""
    delivered: int = 0
    """Events buffered for a subscriber (one per subscriber)."""
    cut_off: int = 0
    """Subscribers disconnected for falling behind."""


class EventBroker:
    """Fans committed execution events out to stream subscribers."""

    def __init__(self, app: WorkflowApp, *, max_queue: int = 1000, page_size: int = 500) -> None:
        if max_queue < 1 or page_size < 1:
            raise ValueError("max_queue and page_size must be positive")
        self.app = app
        self.max_queue = max_queue
        """Live events buffered per subscriber before it is cut off."""
        self.page_size = page_size
        """Stored events read per query while replaying."""
        self.stats = BrokerStats()
        self.feed: EventFeed | None = None
        self._subs: dict[tuple[str, str], set[Subscription]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- feed ----------------------------------------------------------------------

    @property
    def source(self) -> object | None:
        """The store the feed reads, if attached."""
        return None if self.feed is None else self.feed.source

    def attach_feed(self, feed: EventFeed) -> None:
        """Receive events from ``feed``, telling it which keys have subscribers."""
        self.detach()
        self.feed = feed
        feed.start(self.publish)
        for key in self._subs:
            feed.watch(key)

    def detach(self) -> None:
        if self.feed is not None:
            self.feed.stop()
            self.feed = None

    def publish(self, events: Sequence[ExecutionEvent], key: FeedKey | None = None) -> None:
        """Hand committed events to the subscribers (of ``key`` only, when given);
        never blocks, callable from any thread."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return  # nobody ever subscribed in this process
        if _running_loop() is loop:
            self._dispatch(events, key)
        else:
            loop.call_soon_threadsafe(self._dispatch, list(events), key)

    def _dispatch(self, events: Sequence[ExecutionEvent], only: FeedKey | None = None) -> None:
        self.stats.published += len(events)
        for event in events:
            for key in (("execution", event.execution_id), ("workflow", event.workflow_id)):
                if only is not None and key != only:
                    continue
                for sub in list(self._subs.get(key, ())):
                    if sub.offer(event):
                        self.stats.delivered += 1
                    else:
                        self.stats.cut_off += 1
                        self._unsubscribe(sub)

    # -- subscribers ---------------------------------------------------------------

    @property
    def subscriber_count(self) -> int:
        return sum(len(subs) for subs in self._subs.values())

    def _subscribe(self, key: tuple[str, str]) -> Subscription:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            if self._subs:
                raise RuntimeError("an EventBroker serves the subscribers of one event loop")
            self._loop = loop
        sub = Subscription(key, self.max_queue)
        first = key not in self._subs
        self._subs.setdefault(key, set()).add(sub)
        if first and self.feed is not None:
            self.feed.watch(key)
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.key)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.key]
                if self.feed is not None:
                    self.feed.unwatch(sub.key)

    def open(
        self,
        *,
        tenant: str,
        execution_id: str | None = None,
        workflow_id: str | None = None,
        after: int = 0,
        cursor: str | Mapping[str, int] | None = None,
    ) -> EventStream:
        """A stream with ``start``/``next(timeout)``/``overflowed`` for the HTTP edges.

        Use it as ``async with broker.open(...) as events``; see ``stream`` for the rest.
        """
        if (execution_id is None) == (workflow_id is None):
            raise InputInvalid("give exactly one of execution_id and workflow_id")
        if after < 0:
            raise InputInvalid("'after' must be a non-negative integer", path="/after")
        if cursor is not None and workflow_id is None:
            raise InputInvalid("a resume cursor applies to workflow streams", path="/after")
        parsed = parse_cursor(cursor) if isinstance(cursor, str) else dict(cursor or {})
        return EventStream(
            self.app.for_tenant(tenant),
            subscribe=self._subscribe,
            unsubscribe=self._unsubscribe,
            page_size=self.page_size,
            execution_id=execution_id,
            workflow_id=workflow_id,
            after=after,
            cursor=parsed,
        )

    async def stream(
        self,
        *,
        tenant: str,
        execution_id: str | None = None,
        workflow_id: str | None = None,
        after: int = 0,
        cursor: str | Mapping[str, int] | None = None,
    ) -> AsyncIterator[ExecutionEvent]:
        """Events of one execution (from seq ``after``) or one workflow, in order.

        One execution: stored events with ``seq > after``, then live ones, each
        exactly once, ending after the execution's terminal event. One workflow:
        live events of all its executions, after replaying those named in
        ``cursor`` (``<executionId>:<seq>,...`` or a mapping); it never ends.
        Raises NotFound for an unknown id or one of another tenant, InputInvalid
        for a bad cursor, SlowConsumer when the consumer fell too far behind.
        """
        async with self.open(
            tenant=tenant,
            execution_id=execution_id,
            workflow_id=workflow_id,
            after=after,
            cursor=cursor,
        ) as events:
            async for event in events:
                yield event


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
