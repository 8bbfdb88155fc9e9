"""The broker's feeds: the store listener (local) and Firestore listeners (gcp).

``FakeWatches`` stands in for ``FirestoreStore.watch_events``: it records the watches
and calls their callbacks from a foreign thread, as the SDK does. Events are committed
to the memory store without notifying the broker (another process commits them), so
a stream sees them only through the watch feed or its replay of the store.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest
from test_event_broker import emit, start

from shared.adapters.firestore_feed import FirestoreWatchFeed
from shared.adapters.memory_store import MemoryStore
from shared.adapters.store_feed import StoreFeed
from shared.api.broker import EventBroker
from shared.composition import LocalRuntime, build_gcp, build_local
from shared.errors import InputInvalid, NotFound
from shared.models import ExecutionEvent
from shared.ports import FeedKey as Key
from shared.settings import GcpSettings, Settings

pytestmark = pytest.mark.timeout(20)

Callback = Callable[[list[ExecutionEvent]], None]


@dataclass
class FakeWatches:
    """``watch_events`` of a store: live watches by key, and the keys stopped."""

    live: dict[Key, Callback] = field(default_factory=dict)
    started: list[Key] = field(default_factory=list)
    stopped: list[Key] = field(default_factory=list)
    refuse: bool = False

    def watch_events(
        self,
        execution_id: str | None,
        workflow_id: str | None,
        callback: Callback,
        *,
        since: datetime | None = None,
    ) -> Callable[[], None]:
        if self.refuse:
            raise InputInvalid("not a document id")
        key: Key = ("execution", execution_id) if execution_id else ("workflow", workflow_id or "")
        self.live[key] = callback
        self.started.append(key)

        def stop() -> None:
            self.live.pop(key, None)
            self.stopped.append(key)

        return stop

    def deliver(self, key: Key, events: list[ExecutionEvent]) -> None:
        """Call the watch's callback on another thread, like the SDK."""
        feeder = threading.Thread(target=self.live[key], args=(events,))
        feeder.start()
        feeder.join()

    async def stopped_soon(self, key: Key) -> bool:
        for _ in range(200):  # the feed stops listeners on a thread of its own
            if key in self.stopped:
                return True
            await asyncio.sleep(0.01)
        return False


@pytest.fixture
async def runtime() -> AsyncIterator[LocalRuntime]:
    local = build_local(memory=True)
    try:
        yield local
    finally:
        await local.store.close()


def watched(runtime: LocalRuntime, watches: FakeWatches) -> tuple[EventBroker, FirestoreWatchFeed]:
    broker = EventBroker(runtime.app)
    feed = FirestoreWatchFeed(watches)
    broker.attach_feed(feed)
    return broker, feed


async def test_one_listener_per_key_started_and_stopped_with_its_subscribers(
    runtime: LocalRuntime,
) -> None:
    workflow_id, execution_id = await start(runtime)
    watches = FakeWatches()
    broker, feed = watched(runtime, watches)
    first = broker.open(tenant="default", execution_id=execution_id)
    second = broker.open(tenant="default", execution_id=execution_id)
    flow = broker.open(tenant="default", workflow_id=workflow_id)
    for stream in (first, second, flow):
        await stream.start()
    key = ("execution", execution_id)
    assert watches.started == [key, ("workflow", workflow_id)]
    assert feed.watched == {key, ("workflow", workflow_id)}

    await first.aclose()
    assert feed.watched == {key, ("workflow", workflow_id)}
    await second.aclose()
    assert feed.watched == {("workflow", workflow_id)}
    assert await watches.stopped_soon(key)

    broker.detach()
    assert await watches.stopped_soon(("workflow", workflow_id))
    assert broker.feed is None and feed.watched == frozenset()


async def test_events_of_another_process_resume_after_a_seq_in_order_once(
    runtime: LocalRuntime,
) -> None:
    _, execution_id = await start(runtime)
    await emit(runtime, execution_id, "step.started", "step.succeeded")
    watches = FakeWatches()
    broker, _ = watched(runtime, watches)
    stream = broker.open(tenant="default", execution_id=execution_id, after=1)
    async with stream:
        key = ("execution", execution_id)
        assert [(await stream.next()).seq for _ in range(2)] == [2, 3]  # type: ignore[union-attr]
        assert await stream.next(timeout=0.05) is None
        later = await emit(runtime, execution_id, "step.started", "step.succeeded")
        early = await runtime.app.events(execution_id)
        watches.deliver(key, early[:3] + later)  # the listener's first snapshot repeats some
        assert [(await stream.next()).seq for _ in range(2)] == [4, 5]  # type: ignore[union-attr]
        gap = await emit(runtime, execution_id, "step.started", "execution.succeeded")
        watches.deliver(key, gap[1:])  # 6 missing from the feed: read from the store
        assert [event.seq async for event in stream] == [6, 7]
    assert broker.subscriber_count == 0


async def test_watched_events_reach_the_subscribers_of_their_key_only(
    runtime: LocalRuntime,
) -> None:
    workflow_id, execution_id = await start(runtime)
    watches = FakeWatches()
    broker, _ = watched(runtime, watches)
    single = broker.open(tenant="default", execution_id=execution_id)
    flow = broker.open(tenant="default", workflow_id=workflow_id)
    async with single, flow:
        assert (await single.next()).seq == 1  # type: ignore[union-attr]
        events = await emit(runtime, execution_id, "step.started")
        watches.deliver(("workflow", workflow_id), events)
        assert (await flow.next(timeout=1)).seq == 2  # type: ignore[union-attr]
        assert await single.next(timeout=0.05) is None  # the workflow watch is not its feed
        watches.deliver(("execution", execution_id), events)
        assert (await single.next(timeout=1)).seq == 2  # type: ignore[union-attr]
        assert await flow.next(timeout=0.05) is None  # nor is the execution watch the flow's
    assert broker.stats.delivered == 2


async def test_an_id_no_listener_can_watch_is_simply_not_found(runtime: LocalRuntime) -> None:
    watches = FakeWatches(refuse=True)
    broker, feed = watched(runtime, watches)
    with pytest.raises(NotFound):
        await anext(broker.stream(tenant="default", execution_id="no/such"))
    assert feed.watched == frozenset() and broker.subscriber_count == 0


async def test_a_feed_attached_late_watches_the_keys_already_subscribed(
    runtime: LocalRuntime,
) -> None:
    _, execution_id = await start(runtime)
    broker = EventBroker(runtime.app)
    async with broker.open(tenant="default", execution_id=execution_id):
        watches = FakeWatches()
        broker.attach_feed(FirestoreWatchFeed(watches))
        assert watches.started == [("execution", execution_id)]


class WatchableStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.watches = FakeWatches()

    def watch_events(self, *args: Any, **kwargs: Any) -> Callable[[], None]:
        return self.watches.watch_events(*args, **kwargs)


async def test_each_runtime_names_its_feed(runtime: LocalRuntime) -> None:
    local = EventBroker(runtime.app)
    local.attach_feed(runtime.event_feed())
    assert isinstance(local.feed, StoreFeed) and local.source is runtime.store

    settings = Settings(
        backend="gcp", gcp=GcpSettings(project="demo", execute_step_url="http://127.0.0.1:9/x")
    )
    cloud = build_gcp(settings, store=WatchableStore())
    try:
        broker = EventBroker(cloud.app)
        broker.attach_feed(cloud.event_feed())
        assert isinstance(broker.feed, FirestoreWatchFeed) and broker.source is cloud.store
        broker.detach()
    finally:
        local.detach()
        await cloud.stop()
