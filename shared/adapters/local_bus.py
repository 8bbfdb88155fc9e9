"""An in-process ``EventBus`` standing in for Pub/Sub in local mode and tests.

Message ids are derived from ``(topic, dedup_key)``, so publishing the same logical
message again returns the same id and is delivered only once (the bus remembers the
last ``max_seen`` keys). An empty ``dedup_key`` means "no deduplication": the message
gets a random id. Subscribers run in their own asyncio tasks after ``publish``
returns; their exceptions are logged, never raised to the publisher.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import logging
import uuid
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from shared.ports import OutgoingMessage, PublishedMessage

__all__ = ["LocalEventBus", "Subscriber", "message_id_for"]

logger = logging.getLogger(__name__)

Subscriber = Callable[[PublishedMessage], Awaitable[None]]


def message_id_for(topic: str, dedup_key: str) -> str:
    """The deterministic, Pub/Sub-like (decimal) message id of a logical message."""
    digest = hashlib.sha256(f"{topic}\x00{dedup_key}".encode()).hexdigest()
    return str(int(digest[:15], 16))


class LocalEventBus:
    """Publishes to in-process subscribers and keeps recent messages per topic."""

    def __init__(self, *, history: int = 1000, max_seen: int = 100_000) -> None:
        if history < 0 or max_seen < 1:
            raise ValueError("history must be >= 0 and max_seen >= 1")
        self._history = history
        self._max_seen = max_seen
        self._seen: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._messages: dict[str, deque[PublishedMessage]] = {}
        self._subscribers: dict[str, list[Subscriber]] = {}
        self._deliveries: set[asyncio.Task[None]] = set()
        self.published = 0
        """Messages accepted (re-publications of a seen key not counted)."""
        self.duplicates = 0
        """Publications ignored because their dedup key was seen."""

    async def publish(
        self, topic: str, data: Any, attributes: dict[str, str], dedup_key: str
    ) -> str:
        """Publish and return the message id; a seen ``dedup_key`` is not delivered again."""
        if dedup_key:
            seen_id = self._seen.get((topic, dedup_key))
            if seen_id is not None:
                self.duplicates += 1
                return seen_id
            message_id = message_id_for(topic, dedup_key)
            self._remember((topic, dedup_key), message_id)
        else:
            message_id = str(uuid.uuid4().int >> 68)
        # Pub/Sub serialises the payload: subscribers must not share the caller's objects.
        message = PublishedMessage(
            topic=topic,
            data=copy.deepcopy(data),
            attributes=dict(attributes),
            message_id=message_id,
        )
        self.published += 1
        if self._history:
            self._messages.setdefault(topic, deque(maxlen=self._history)).append(message)
        for callback in list(self._subscribers.get(topic, ())):
            task = asyncio.create_task(self._deliver(callback, message))
            self._deliveries.add(task)
            task.add_done_callback(self._deliveries.discard)
        return message_id

    async def publish_many(self, topic: str, messages: Sequence[OutgoingMessage]) -> list[str]:
        """Publish each message in order; their ids in order."""
        return [await self.publish(topic, *message) for message in messages]

    def subscribe(self, topic: str, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback`` for every later message on ``topic``; returns an unsubscriber."""
        self._subscribers.setdefault(topic, []).append(callback)

        def unsubscribe() -> None:
            callbacks = self._subscribers.get(topic, [])
            if callback in callbacks:
                callbacks.remove(callback)

        return unsubscribe

    def messages(self, topic: str) -> list[PublishedMessage]:
        """The last ``history`` messages published on ``topic``, oldest first."""
        return list(self._messages.get(topic, ()))

    def topics(self) -> list[str]:
        """Topics that have at least one kept message, sorted."""
        return sorted(self._messages)

    async def drain(self, timeout: float | None = None) -> bool:
        """Wait for running subscriber deliveries; False if ``timeout`` ran out first."""
        try:
            async with asyncio.timeout(timeout):
                while self._deliveries:
                    # wait() rather than gather(): a timeout must not cancel subscribers.
                    await asyncio.wait(set(self._deliveries))
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        """Cancel subscriber deliveries still running and wait for them to end."""
        tasks = list(self._deliveries)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _remember(self, key: tuple[str, str], message_id: str) -> None:
        self._seen[key] = message_id
        while len(self._seen) > self._max_seen:
            self._seen.popitem(last=False)

    async def _deliver(self, callback: Subscriber, message: PublishedMessage) -> None:
        try:
            await callback(message)
        except Exception:
            logger.exception(
                "subscriber %r failed on message %s of topic %s",
                callback,
                message.message_id,
                message.topic,
            )
