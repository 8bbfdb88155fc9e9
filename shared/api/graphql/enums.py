"""GraphQL enums mirroring the model enums (names on the wire, model values inside)."""

from __future__ import annotations

from enum import Enum

import strawberry


@strawberry.enum(description="Lifecycle of an execution; the last four are terminal.")
class ExecutionStatus(Enum):
    PENDING = "pending"
    RUNNING = "running"
    WAITING = "waiting"
    PAUSED = "paused"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"


@strawberry.enum(description="Lifecycle of one step run (one attempt of one step).")
class StepRunStatus(Enum):
    SCHEDULED = "scheduled"
    RUNNING = "running"
    WAITING = "waiting"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


@strawberry.enum(description="What happens when a step fails for good (after its retries).")
class ErrorStrategy(Enum):
    FAIL = "fail"
    RETRY = "retry"
    CONTINUE = "continue"
    FALLBACK = "fallback"
