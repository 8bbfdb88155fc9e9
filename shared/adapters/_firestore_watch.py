"""Firestore listeners on execution events, for feeding status streams in the cloud.

The async client of google-cloud-firestore has no listeners (``on_snapshot`` exists on
the sync client only), so watching uses a sync ``firestore.Client`` created on first
use. Its callbacks arrive on the SDK's background thread; they are handed to the event
loop that was running when the watch started (``loop.call_soon_threadsafe``), or
called on that thread when there was none.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from google.cloud.firestore import Client, Watch
from google.cloud.firestore_v1.watch import ChangeType

from shared.adapters._firestore_codec import Collections
from shared.adapters._firestore_queries import watch_execution, watch_workflow
from shared.adapters._store_common import EventListener
from shared.errors import InputInvalid
from shared.models import ExecutionEvent

__all__ = ["Watches"]

logger = logging.getLogger(__name__)


def _safe_call(callback: EventListener, events: list[ExecutionEvent]) -> None:
    try:
        callback(events)
    except Exception:
        logger.exception("event watcher %r failed", callback)


def _deliverer(callback: EventListener) -> Callable[[list[ExecutionEvent]], None]:
    """Calls ``callback`` on the running event loop's thread, if a loop is running."""
    try:
        loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        loop = None

    def deliver(events: list[ExecutionEvent]) -> None:
        if loop is None:
            _safe_call(callback, events)
            return
        try:
            loop.call_soon_threadsafe(_safe_call, callback, events)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            logger.debug("dropping %d watched events: event loop closed", len(events))

    return deliver


def _added_events(changes: list[Any]) -> list[ExecutionEvent]:
    """The events among a snapshot's changes (events never change once written)."""
    events = [
        ExecutionEvent.model_validate_json(change.document.get("doc"))
        for change in changes
        if change.type == ChangeType.ADDED
    ]
    return sorted(events, key=lambda event: (event.execution_id, event.seq))


class Watches:
    """The live listeners of one store, on a sync client of their own."""

    def __init__(
        self, client_factory: Callable[[], Client], names: Collections, margin: float
    ) -> None:
        self._client_factory = client_factory
        self._names = names
        self._margin = margin
        self._client: Client | None = None
        self._live: dict[int, Callable[[], None]] = {}
        self._lock = threading.Lock()

    def watch(
        self,
        execution_id: str | None,
        workflow_id: str | None,
        callback: EventListener,
        since: datetime | None = None,
    ) -> Callable[[], None]:
        """Start a listener; see ``FirestoreStore.watch_events``."""
        if (execution_id is None) == (workflow_id is None):
            raise InputInvalid("watch one execution or one workflow: give exactly one id")
        start = since or datetime.now(UTC) - timedelta(seconds=self._margin)
        client = self._sync_client()
        if execution_id is not None:
            query = watch_execution(client, self._names, execution_id, start)
        else:
            query = watch_workflow(client, self._names, str(workflow_id), start)
        deliver = _deliverer(callback)

        def on_snapshot(docs: Any, changes: list[Any], read_time: Any) -> None:
            events = _added_events(changes)
            if events:
                deliver(events)

        watch: Watch = query.on_snapshot(on_snapshot)
        stop = cast(Callable[[], None], watch.unsubscribe)  # untyped in the SDK
        with self._lock:
            self._live[id(watch)] = stop

        def unsubscribe() -> None:
            with self._lock:
                live = self._live.pop(id(watch), None)
            if live is not None:
                live()

        return unsubscribe

    def close(self) -> None:
        """Stop every listener and close the sync client's channel."""
        with self._lock:
            live, self._live = list(self._live.values()), {}
            client, self._client = self._client, None
        for stop in live:
            stop()
        if client is not None:
            # The SDK has no public close(); the transport owns the gRPC channel.
            client._firestore_api.transport.close()

    def _sync_client(self) -> Client:
        with self._lock:
            if self._client is None:
                self._client = self._client_factory()
            return self._client
