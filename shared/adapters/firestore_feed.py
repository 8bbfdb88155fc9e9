"""The ``EventFeed`` of gcp mode: Firestore listeners on the events others commit.

A status-stream instance sees the events execute-step instances commit. One listener
per watched key, shared by all the subscribers of that key in this process: a query
on one execution's ``events`` subcollection, or a collection-group query on the
``workflowId`` of the events for a workflow stream. It starts with the key's first
subscriber and stops (off the event loop: the SDK joins its thread) with the last.
Each listener reads only the events of its key, so the cost grows with what is
watched, not with the whole project's traffic (see ``docs/gcp.md``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from shared.errors import WorkflowError
from shared.models import ExecutionEvent
from shared.ports import FeedKey, FeedPublish

__all__ = ["FirestoreWatchFeed", "Watchable"]

log = logging.getLogger(__name__)


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


class FirestoreWatchFeed:
    """One Firestore listener per watched key, started and stopped with its subscribers."""

    def __init__(self, store: Watchable) -> None:
        self.source = store
        self._publish: FeedPublish | None = None
        self._stops: dict[FeedKey, Callable[[], None]] = {}

    @property
    def watched(self) -> frozenset[FeedKey]:
        """The keys with a live listener."""
        return frozenset(self._stops)

    def start(self, publish: FeedPublish) -> None:
        self._publish = publish

    def stop(self) -> None:
        stops, self._stops = list(self._stops.values()), {}
        self._publish = None
        _stop_off_loop(stops)

    def watch(self, key: FeedKey) -> None:
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

    def unwatch(self, key: FeedKey) -> None:
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
