"""The ``EventBus`` of the cloud (Pub/Sub) and the execution lifecycle publisher.

``PubSubEventBus`` publishes with google-cloud-pubsub's generated async client
(``google.pubsub_v1.PublisherAsyncClient``): one awaited Publish call per message.
The high-level ``PublisherClient`` batches on a background thread and returns before
the message is sent; a Cloud Function's CPU is throttled once it answers, so the
``publish`` step awaits the server's message id instead. ``PUBSUB_EMULATOR_HOST``
points it at the emulator, as for every Pub/Sub client.

Messages: ``data`` is compact JSON (``bytes`` are sent as they are); the attributes as
given plus ``dedupKey`` (the logical message, e.g. the publishing step run's id) and
``traceparent`` (the publishing span, when there is one). No
ordering key is set. Pub/Sub itself does not deduplicate publishes: a publish
retried within this process returns the first message id (recent keys are
remembered); across processes, consumers dedupe on the ``dedupKey`` attribute.

``LifecyclePublisher`` is a store listener: it publishes the lifecycle events of every
committed transaction (execution started, step finished, waiting, execution
finished) to one topic, best effort: a failure is logged, never raised.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections import OrderedDict
from collections.abc import Callable, Collection, Sequence
from typing import Any

from google.api_core import exceptions as gexc
from google.pubsub_v1 import PublisherAsyncClient, PubsubMessage
from google.pubsub_v1.services.publisher.transports import PublisherGrpcAsyncIOTransport
from grpc import aio

from shared.adapters._gapic import async_client, translate
from shared.models import ExecutionEvent
from shared.observability import TRACEPARENT, current_traceparent
from shared.ports import EventBus, OutgoingMessage

__all__ = [
    "DEDUP_ATTRIBUTE",
    "LIFECYCLE_TYPES",
    "LifecyclePublisher",
    "PubSubEventBus",
    "encode_data",
    "lifecycle_message",
]

log = logging.getLogger(__name__)

DEDUP_ATTRIBUTE = "dedupKey"
LIFECYCLE_TYPES = frozenset(
    {
        "execution.started",
        "step.succeeded",
        "step.failed",
        "step.skipped",
        "step.waiting",
        "execution.waiting",
        "execution.succeeded",
        "execution.failed",
        "execution.cancelled",
        "execution.timed_out",
    }
)
"""Events other services hear about: execution started, step finished, waiting,
execution finished. Step starts and retries stay on the status stream."""

Message = OutgoingMessage
"""(data, attributes, dedup key) of one message to publish."""


def encode_data(data: Any) -> bytes:
    """The message body: compact JSON, or ``data`` itself when it is bytes."""
    if isinstance(data, bytes | bytearray):
        return bytes(data)
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


class PubSubEventBus:
    """``EventBus`` on Pub/Sub topics of one project."""

    def __init__(
        self,
        project: str,
        *,
        emulator_host: str | None = None,
        interceptors: Sequence[aio.ClientInterceptor] = (),
        timeout_seconds: float = 30.0,
        remember: int = 10_000,
        client_factory: Callable[[], PublisherAsyncClient] | None = None,
    ) -> None:
        """Args:
        project: the project of short topic names (``orders``).
        emulator_host: an emulator (default: ``PUBSUB_EMULATOR_HOST``).
        timeout_seconds: overall deadline of one publish, the client's retries included.
        remember: how many recent (topic, dedup key) pairs keep their message id.
        """
        if not project:
            raise ValueError("a project is needed to publish to Pub/Sub")
        self.project = project
        self._endpoint = (
            os.environ.get("PUBSUB_EMULATOR_HOST", "") if emulator_host is None else emulator_host
        )
        self._interceptors = list(interceptors)
        self._timeout = timeout_seconds
        self._remember = max(1, remember)
        self._seen: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._factory = client_factory
        self._client: PublisherAsyncClient | None = None

    def topic_path(self, topic: str) -> str:
        """``projects/P/topics/T`` for a short name; a full name is kept."""
        return topic if topic.startswith("projects/") else f"projects/{self.project}/topics/{topic}"

    def _get_client(self) -> PublisherAsyncClient:
        if self._client is None:
            if self._factory is not None:
                self._client = self._factory()
            else:
                self._client = async_client(
                    PublisherAsyncClient,
                    PublisherGrpcAsyncIOTransport,
                    endpoint=self._endpoint,
                    interceptors=self._interceptors,
                )
        return self._client

    async def publish(
        self, topic: str, data: Any, attributes: dict[str, str], dedup_key: str
    ) -> str:
        """Publish one message and return the server's message id."""
        (message_id,) = await self.publish_many(topic, [(data, attributes, dedup_key)])
        return message_id

    async def publish_many(self, topic: str, messages: Sequence[Message]) -> list[str]:
        """Publish ``messages`` in one call; their ids in order (remembered ones reused)."""
        path = self.topic_path(topic)
        ids: list[str | None] = [
            self._seen.get((path, key)) if key else None for *_, key in messages
        ]
        fresh = [i for i, known in enumerate(ids) if known is None]
        if fresh:
            batch = [_message(*messages[i]) for i in fresh]
            try:
                response = await self._get_client().publish(
                    topic=path, messages=batch, timeout=self._timeout
                )
            except gexc.GoogleAPICallError as exc:
                raise translate(exc, f"Pub/Sub publish to {path}", "PUBLISH_FAILED") from exc
            for i, message_id in zip(fresh, response.message_ids, strict=True):
                ids[i] = message_id
                if messages[i][2]:
                    self._keep((path, messages[i][2]), message_id)
        return [message_id or "" for message_id in ids]

    def _keep(self, key: tuple[str, str], message_id: str) -> None:
        self._seen[key] = message_id
        while len(self._seen) > self._remember:
            self._seen.popitem(last=False)

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.transport.close()  # type: ignore[no-untyped-call]


def _message(data: Any, attributes: dict[str, str], dedup_key: str) -> PubsubMessage:
    attrs = {str(k): str(v) for k, v in attributes.items()}
    if dedup_key:
        attrs[DEDUP_ATTRIBUTE] = dedup_key
    if TRACEPARENT not in attrs:
        trace = current_traceparent()
        if trace:  # subscribers (the trigger handler) continue the publisher's trace
            attrs[TRACEPARENT] = trace
    return PubsubMessage(data=encode_data(data), attributes=attrs)


def lifecycle_message(event: ExecutionEvent) -> Message:
    """(data, attributes, dedup key) of one lifecycle event.

    The data is the event as the status stream sends it; the attributes let
    subscriptions filter without parsing it.
    """
    attributes = {
        "eventType": event.type,
        "executionId": event.execution_id,
        "workflowId": event.workflow_id,
        "seq": str(event.seq),
    }
    if event.step_id is not None:
        attributes["stepId"] = event.step_id
    if event.status is not None:
        attributes["status"] = event.status
    return event.to_json_dict(), attributes, f"{event.execution_id}:{event.seq}"


class LifecyclePublisher:
    """Publishes the lifecycle events of committed transactions; a store listener.

    ``store.add_listener(publisher)``: the store calls it (in the event loop) with the
    events of each transaction after it committed; publishing runs in a task of its
    own so the engine never waits for it. ``drain()`` waits for publishes in flight.
    """

    def __init__(
        self, bus: EventBus, topic: str, *, types: Collection[str] = LIFECYCLE_TYPES
    ) -> None:
        """``bus`` gets one ``publish_many`` call per transaction."""
        self.bus = bus
        self.topic = topic
        self.types = frozenset(types)
        self.published = 0
        self.failed = 0
        self._tasks: set[asyncio.Task[int]] = set()

    def __call__(self, events: list[ExecutionEvent]) -> None:
        selected = [event for event in events if event.type in self.types]
        if not selected:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            log.warning("lifecycle events outside an event loop were not published")
            return
        task = loop.create_task(self.publish_lifecycle(selected))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def publish_lifecycle(self, events: Sequence[ExecutionEvent]) -> int:
        """Publish the lifecycle ones among ``events`` now; how many were published."""
        messages = [lifecycle_message(event) for event in events if event.type in self.types]
        if not messages:
            return 0
        try:
            await self.bus.publish_many(self.topic, messages)
        except Exception:
            self.failed += len(messages)
            log.warning(
                "publishing %d lifecycle event(s) to %s failed",
                len(messages),
                self.topic,
                exc_info=True,
            )
            return 0
        self.published += len(messages)
        return len(messages)

    async def drain(self, timeout: float | None = None) -> bool:
        """Wait for publishes in flight; False when ``timeout`` ran out first."""
        if not self._tasks:
            return True
        _, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
        return not pending
