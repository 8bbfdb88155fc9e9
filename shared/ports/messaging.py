"""Messaging ports: the task queue that moves step runs, the bus that publishes events."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

__all__ = ["EventBus", "OutgoingMessage", "PublishedMessage", "StepTask", "TaskQueue"]


@dataclass(frozen=True)
class StepTask:
    """The payload of one task: ids only, the store holds the rest."""

    execution_id: str
    run_id: str
    due_at: datetime
    wake_seq: int = 0
    trace: str | None = field(default=None, compare=False)
    """W3C ``traceparent`` of the hop that enqueued the task, so one execution is one
    trace across hops. Not part of equality or the task name: the same run and wake-up
    is the same task whoever traced it."""

    tag: str = ""
    """Tells apart a second task for the same run and wake-up (a check at a lease's
    expiry): part of the name, not of the payload."""

    cheap: bool = field(default=False, compare=False)
    """A hint of the hop that enqueued it: the run's step does no I/O, so its delivery
    reads the run and claims it in the commit that records it (one transaction, not a
    claim and a commit). Checked against the definition: a wrong hint costs a read."""

    tenant: str = field(default="", compare=False)
    """The execution's tenant, as the engine that enqueued the task knew it: in-process
    only (never on the wire, so a task that came over HTTP has none), it spares the
    local queue's fairness bucket and the tenant's step quota a read of the execution
    each. Empty: they read it."""

    @property
    def name(self) -> str:
        """Deterministic task name: one task per run, wake-up and tag."""
        base = f"{self.run_id}-{self.wake_seq}"
        return f"{base}-{self.tag}" if self.tag else base


class TaskQueue(Protocol):
    """Moves step runs forward (Cloud Tasks in the cloud, a local dispatcher locally)."""

    async def enqueue(self, task: StepTask) -> None:
        """Deliver ``task`` at or after ``due_at``, at least once."""


@dataclass(frozen=True)
class PublishedMessage:
    """A message as a subscriber receives it."""

    topic: str
    data: Any
    attributes: dict[str, str] = field(default_factory=dict)
    message_id: str = ""


OutgoingMessage = tuple[Any, dict[str, str], str]
"""(data, attributes, dedup key) of one message to publish."""


class EventBus(Protocol):
    """Publishes messages to topics (Pub/Sub in the cloud, in-process locally)."""

    async def publish(
        self, topic: str, data: Any, attributes: dict[str, str], dedup_key: str
    ) -> str:
        """Publish and return the message id; ``dedup_key`` names the logical message."""

    async def publish_many(self, topic: str, messages: Sequence[OutgoingMessage]) -> list[str]:
        """Publish ``messages`` (in one call where the backend allows); their ids in order."""

    async def close(self) -> None:
        """Release clients and stop deliveries still running."""
