"""The ``EventFeed`` of local mode: the embedded store's own listener registry.

Every process that commits also serves its streams, so the store's notifications are
complete: the feed hears every transaction and ignores ``watch``/``unwatch``.
"""

from __future__ import annotations

from shared.models import ExecutionEvent
from shared.ports import EventSource, FeedKey, FeedPublish

__all__ = ["StoreFeed"]


class StoreFeed:
    """Every transaction the store commits, from its listener registry."""

    def __init__(self, source: EventSource) -> None:
        self.source = source
        self._publish: FeedPublish | None = None

    def start(self, publish: FeedPublish) -> None:
        self._publish = publish
        self.source.add_listener(self._deliver)

    def stop(self) -> None:
        self.source.remove_listener(self._deliver)
        self._publish = None

    def _deliver(self, events: list[ExecutionEvent]) -> None:
        if self._publish is not None:
            self._publish(events, None)

    def watch(self, key: FeedKey) -> None:
        pass  # the listener hears every commit already

    def unwatch(self, key: FeedKey) -> None:
        pass
