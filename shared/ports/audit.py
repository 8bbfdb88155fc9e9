"""The audit log port: append entries, list them newest first."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from shared.models.audit import AuditEntry
from shared.ports.retention import AuditRetention
from shared.ports.stores import Page

__all__ = ["AuditLog", "AuditQuery"]


@dataclass(frozen=True)
class AuditQuery:
    """Filters of an audit listing; every one set must match."""

    tenant: str
    action: str | None = None
    subject: str | None = None
    target: str | None = None
    since: datetime | None = None
    """Entries at or after this time."""
    until: datetime | None = None
    """Entries before this time."""
    limit: int = 50
    cursor: str | None = None


class AuditLog(AuditRetention, Protocol):
    """Where audit entries are kept (the store's database: SQLite table, Firestore
    collection ``audit``, or memory); the retention sweep trims it (``delete_before``)."""

    async def record(self, entry: AuditEntry) -> None:
        """Append ``entry`` (ids are unique: recording one twice keeps one)."""
        ...

    async def query(self, query: AuditQuery) -> Page[AuditEntry]:
        """Entries of ``query.tenant`` matching the filters, newest first, paginated."""
        ...

    async def close(self) -> None:
        """Release connections (idempotent)."""
        ...
