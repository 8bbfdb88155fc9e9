"""The event feed port: what hands committed events to a process's stream broker.

Local mode feeds from the store's own listener registry (every process that commits
also serves its streams); gcp mode from Firestore listeners, so a status-stream
instance sees the events that execute-step instances commit. Each runtime names its
feed (``Runtime.event_feed()``): callers never ask which runtime they hold.

A broker tells its feed when a key gains its first subscriber (``watch``) and loses
its last (``unwatch``); the feed hands events to ``publish(events, key)`` (``key``
None: every subscriber the events concern). Events may repeat or arrive out of order:
the streams drop what they delivered already and fill holes from the store.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from shared.models import ExecutionEvent

__all__ = ["EventFeed", "FeedKey", "FeedPublish"]

FeedKey = tuple[str, str]
"""``("execution", id)`` or ``("workflow", id)``."""

FeedPublish = Callable[[Sequence[ExecutionEvent], FeedKey | None], None]
"""Where a feed hands events: to the subscribers of the key, or (None) of every key."""


class EventFeed(Protocol):
    """Committed events for one process's subscribers."""

    @property
    def source(self) -> object:
        """The store the events come from."""

    def start(self, publish: FeedPublish) -> None:
        """Begin handing events to ``publish``."""

    def stop(self) -> None:
        """Stop for good; ``publish`` is not called afterwards."""

    def watch(self, key: FeedKey) -> None:
        """``key`` got its first subscriber (called on the broker's event loop)."""

    def unwatch(self, key: FeedKey) -> None:
        """``key`` lost its last subscriber."""
