"""Temporary re-export of the event feed names, which moved: goes away once the edge
imports them from their new homes (the port in ``shared.ports``, the implementations
in ``shared.adapters.store_feed`` and ``shared.adapters.firestore_feed``)."""

from shared.adapters.firestore_feed import FirestoreWatchFeed, Watchable
from shared.adapters.store_feed import StoreFeed
from shared.ports import EventFeed, EventSource
from shared.ports import FeedKey as Key
from shared.ports import FeedPublish as Publish

__all__ = [
    "EventFeed",
    "EventSource",
    "FirestoreWatchFeed",
    "Key",
    "Publish",
    "StoreFeed",
    "Watchable",
]
