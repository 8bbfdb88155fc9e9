"""Ports: what the core needs from the outside world, as Protocols and value types.

Adapters live in ``shared/adapters``: SQLite and in-process ones for local mode and
tests, Google ones (Firestore, Cloud Tasks, Pub/Sub, Scheduler) for the cloud. Every
port has one conformance suite in ``tests/contract`` run against every adapter.
Import from here (``from shared.ports import StepTask``); the modules group the ports
by concern: ``clock``, ``stores``, ``messaging``, ``feeds``, ``triggers``, ``limits``,
``audit``.
"""

from shared.ports.audit import AuditLog, AuditQuery
from shared.ports.checkpoints import CheckpointStore
from shared.ports.clock import Clock
from shared.ports.feeds import EventFeed, FeedKey, FeedPublish
from shared.ports.limits import Decision, RateLimit, RateLimiter
from shared.ports.messaging import EventBus, OutgoingMessage, PublishedMessage, StepTask, TaskQueue
from shared.ports.stores import (
    EventListener,
    EventSource,
    ExecutionQuery,
    ExecutionStore,
    ExecutionTx,
    Page,
    Store,
    WorkflowHead,
    WorkflowQuery,
    WorkflowStore,
)
from shared.ports.triggers import (
    DEFAULT_TENANT,
    JOB_PREFIX,
    PUBSUB_PATH,
    EventSpec,
    ReconcileReport,
    ScheduleSpec,
    TriggerBackend,
    TriggerSpec,
)

__all__ = [
    "DEFAULT_TENANT",
    "JOB_PREFIX",
    "PUBSUB_PATH",
    "AuditLog",
    "AuditQuery",
    "CheckpointStore",
    "Clock",
    "Decision",
    "EventBus",
    "EventFeed",
    "EventListener",
    "EventSource",
    "EventSpec",
    "ExecutionQuery",
    "ExecutionStore",
    "ExecutionTx",
    "FeedKey",
    "FeedPublish",
    "OutgoingMessage",
    "Page",
    "PublishedMessage",
    "RateLimit",
    "RateLimiter",
    "ReconcileReport",
    "ScheduleSpec",
    "StepTask",
    "Store",
    "TaskQueue",
    "TriggerBackend",
    "TriggerSpec",
    "WorkflowHead",
    "WorkflowQuery",
    "WorkflowStore",
]
