"""What feeds an ``EventBroker`` with committed events: two implementations.

- ``StoreFeed`` (local mode): the embedded store's listener registry. Every process
  that commits also serves its streams, so the store's own notifications are complete.
- ``FirestoreWatchFeed`` (gcp mode): Firestore listeners (``watch_events``), so a
  status-stream instance sees the events execute-step instances commit. One listener
  per watched key, shared by all the subscribers of that key in this process: a
  query on one execution's ``events`` subcollection, or a collection-group query on
  the ``workflowId`` of the events for a workflow stream. It starts with the key's
  first subscriber and stops (off the event loop: the SDK joins its thread) with the
  last. Each listener reads only the events of its key, so the cost grows with what
  is watched, not with the whole project's traffic (see ``docs/gcp.md``).

A broker tells its feed when a key gains its first subscriber (``watch``) and loses
its last (``unwatch``); the feed hands events to ``publish(events, key)`` (``key``
None: every subscriber the events concern). Events may repeat or arrive out of order:
the streams drop what they delivered already and fill holes from the store.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol

from shared.errors import WorkflowError
from shared.models import ExecutionEvent

__all__ = ["EventFeed", "EventSource", "FirestoreWatchFeed", "Key", "StoreFeed", "Watchable"]

log = logging.getLogger(__name__)

Key = tuple[str, str]
"""``("execution", id)`` or ``("workflow", id)``."""
Publish = Callable[[Sequence[ExecutionEvent], Key | None], None]


class EventSource(Protocol):
    """The embedded stores' listener registry."""

    def add_listener(self, callback: Callable[[list[ExecutionEvent]], None]) -> None: ...

    def remove_listener(self, callback: Callable[[list[ExecutionEvent]], None]) -> None: ...


class Watchable(Protocol):
    """A store with listeners on the events other processes commit (``FirestoreStore``)."""

    def watch_events(
        self,
        execution_id: str | None,
        workflow_id: str | None,
        callback: Callable[[list[ExecutionEvent]], None],
        *,
        since: datetime | None = None,
    ) -> Callable[[], None]: ...


class EventFeed(Protocol):
    @property
    def source(self) -> object:
        """The store the events come from."""

    def start(self, publish: Publish) -> None:
        """Begin handing events to ``publish``."""

    def stop(self) -> None:
        """Stop for good; ``publish`` is not called afterwards."""

    def watch(self, key: Key) -> None:
        """``key`` got its first subscriber (called on the broker's event loop)."""

    def unwatch(self, key: Key) -> None:
        """``key`` lost its last subscriber."""


class StoreFeed:
    """Every transaction the store commits, from its listener registry."""

    def __init__(self, source: EventSource) -> None:
        self.source = source
        self._publish: Publish | None = None

    def start(self, publish: Publish) -> None:
        self._publish = publish
        self.source.add_listener(self._deliver)

    def stop(self) -> None:
        self.source.remove_listener(self._deliver)
        self._publish = None

    def _deliver(self, events: list[ExecutionEvent]) -> None:
        if self._publish is not None:
            self._publish(events, None)

    def watch(self, key: Key) -> None:
        pass  # the listener hears every commit already

    def unwatch(self, key: Key) -> None:
        pass


class FirestoreWatchFeed:
    """One Firestore listener per watched key, started and stopped with its subscribers."""

    def __init__(self, store: Watchable) -> None:
        self.source = store
        self._publish: Publish | None = None
        self._stops: dict[Key, Callable[[], None]] = {}

    @property
    def watched(self) -> frozenset[Key]:
        """The keys with a live listener."""
        return frozenset(self._stops)

    def start(self, publish: Publish) -> None:
        self._publish = publish

    def stop(self) -> None:
        stops, self._stops = list(self._stops.values()), {}
        self._publish = None
        _stop_off_loop(stops)

    def watch(self, key: Key) -> None:
        if key in self._stops or self._publish is None:
            return
        publish = self._publish
        kind, ident = key

        def deliver(events: list[ExecutionEvent]) -> None:
            if key in self._stops:  # events already queued when the key was unwatched
                publish(events, key)

        try:
            if kind == "execution":
                stop = self.source.watch_events(ident, None, deliver)
            else:
                stop = self.source.watch_events(None, ident, deliver)
        except WorkflowError as exc:  # an id no document can have: nothing to watch
            log.debug("not watching %s %r: %s", kind, ident, exc)
            return
        self._stops[key] = stop

    def unwatch(self, key: Key) -> None:
        stop = self._stops.pop(key, None)
        if stop is not None:
            _stop_off_loop([stop])


def _stop_off_loop(stops: list[Callable[[], None]]) -> None:
    """Run the listeners' unsubscribe functions on a thread: each may block up to a
    second (the SDK joins its consumer thread)."""
    if not stops:
        return

    def run() -> None:
        for stop in stops:
            try:
                stop()
            except Exception:
                log.exception("stopping a Firestore listener failed")

    threading.Thread(target=run, name="wfe-unwatch", daemon=True).start()
