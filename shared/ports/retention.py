"""Retention ports: deleting finished executions, trimming the audit log and idle buckets.

Nothing the engine writes is deleted by the engine itself. The retention sweep
(``shared/app/retention.py``) finds a tenant's executions that finished before its
retention horizon (through ``ExecutionStore.list_executions``) and deletes each with
``RetentionStore.delete_execution``, which releases its bytes from the tenant's storage
counter (``maxStorageBytes``) in the same transactions as the deletes.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Protocol

from shared.models import WorkflowExecution

__all__ = [
    "AuditRetention",
    "IdleBuckets",
    "PurgeCounts",
    "RetentionStore",
    "finished_at",
    "is_expired",
]


def finished_at(execution: WorkflowExecution) -> datetime:
    """When an execution ended: ``completedAt``, else its last update (naive is UTC)."""
    return _utc(execution.completed_at or execution.updated_at)


def is_expired(execution: WorkflowExecution, tenant: str, finished_before: datetime) -> bool:
    """Whether retention may delete ``execution`` for ``tenant``: the tenant's own, in a
    terminal status, and finished before ``finished_before``."""
    return (
        execution.tenant == tenant
        and execution.status.terminal
        and finished_at(execution) < _utc(finished_before)
    )


@dataclass(frozen=True)
class PurgeCounts:
    """What one deletion (or a whole sweep) removed."""

    executions: int = 0
    runs: int = 0
    """Step run documents."""
    events: int = 0
    signals: int = 0
    joins: int = 0
    """Join marks of fan-out runs."""
    checkpoints: int = 0
    """LangGraph checkpoints (counted by the sweep: they live in the checkpoint store)."""
    bytes_released: int = 0
    """Bytes taken off the tenant's storage counter (exactly what it had counted)."""

    def __add__(self, other: PurgeCounts) -> PurgeCounts:
        return PurgeCounts(
            **{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)}
        )

    def to_json(self) -> dict[str, int]:
        """camelCase counts, as the API and the log line report them."""
        return {
            "executions": self.executions,
            "runs": self.runs,
            "events": self.events,
            "signals": self.signals,
            "joins": self.joins,
            "checkpoints": self.checkpoints,
            "bytesReleased": self.bytes_released,
        }


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class RetentionStore(Protocol):
    """The store's side of retention (memory, SQLite, Firestore)."""

    async def stored_bytes(self, tenant: str) -> int:
        """Bytes the tenant's executions hold (the ``maxStorageBytes`` counter)."""
        ...

    async def stored_tenants(self) -> list[str]:
        """Every tenant that holds executions (or bytes on its storage counter)."""
        ...

    async def delete_execution(
        self, tenant: str, execution_id: str, finished_before: datetime
    ) -> PurgeCounts:
        """Delete one finished execution of ``tenant`` with its step runs, join marks,
        signals and events, and take its bytes off the tenant's storage counter.

        Deletes nothing (all counts 0) when the execution does not exist, belongs to
        another tenant, is not terminal (succeeded, failed, cancelled, timed out) or
        finished at or after ``finished_before`` (re-checked inside the deleting
        transactions: an execution redriven before the delete is left alone).
        Idempotent: a second call, or a concurrent one, deletes nothing more. Works in
        bounded transactions (at most a few hundred documents each) however large the
        execution; where it takes several (Firestore), the first marks the execution,
        a redrive of a marked one is refused (EXECUTION_BEING_DELETED) and a later call
        finishes a deletion a crash interrupted.
        """
        ...


class AuditRetention(Protocol):
    """The audit log's retention (every adapter of ``AuditLog``)."""

    async def delete_before(self, before: datetime, limit: int) -> int:
        """Delete up to ``limit`` entries (any tenant) recorded before ``before``;
        returns how many were deleted (fewer than ``limit``: none older is left)."""
        ...


class IdleBuckets(Protocol):
    """Rate-limit buckets kept in a table (SQLite) that nothing else expires."""

    async def purge_idle(self, idle_before: datetime) -> int:
        """Delete the buckets last used before ``idle_before`` (a bucket idle that
        long is full again: a new one is the same); returns how many."""
        ...
