"""Analytics rollups: pre-aggregated counters per tenant, workflow and time bucket.

The engine adds a ``RollupDelta`` to the same store transaction as the commit that
records what it counts (an execution's start, its end, a redrive), so a rollup is
exactly-once like the rest of the engine's state: a duplicate delivery or a failed
commit writes no delta. Each delta is added to two rows, the hour and the day bucket
of the execution's start; a store may shard a row (Firestore: by a hash of the
execution id) and a read merges the shards. A row is a flat map of counters
(``status|succeeded``, ``step|fetch|h|41`` ...): merging rows is adding counters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol, runtime_checkable

__all__ = [
    "GRAINS",
    "Grain",
    "RollupDelta",
    "RollupQuery",
    "RollupRow",
    "RollupStore",
    "bucket_start",
    "merge_counters",
]

Grain = Literal["hour", "day"]
GRAINS: dict[Grain, timedelta] = {"hour": timedelta(hours=1), "day": timedelta(days=1)}


def bucket_start(at: datetime, grain: Grain) -> datetime:
    """The UTC start of the ``grain`` bucket holding ``at``."""
    at = at.astimezone(UTC)
    if grain == "day":
        return at.replace(hour=0, minute=0, second=0, microsecond=0)
    return at.replace(minute=0, second=0, microsecond=0)


def merge_counters(into: dict[str, float], counters: dict[str, float]) -> dict[str, float]:
    """Add ``counters`` to ``into`` (in place) and return it."""
    for key, value in counters.items():
        into[key] = into.get(key, 0) + value
    return into


@dataclass(frozen=True)
class RollupDelta:
    """Counters to add to the rows of one execution's workflow and start time."""

    tenant: str
    workflow_id: str
    execution_id: str
    """Picks the shard on stores that shard rows."""
    at: datetime
    """The execution's start: every delta of one execution lands in the same buckets."""
    counters: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class RollupRow:
    """The counters of one (tenant, workflow, grain, bucket), shards merged."""

    tenant: str
    workflow_id: str
    grain: Grain
    bucket: datetime
    counters: dict[str, float]


@dataclass(frozen=True)
class RollupQuery:
    """Rows of a tenant (one workflow, or all) whose bucket starts in [start, end)."""

    tenant: str
    grain: Grain
    start: datetime
    end: datetime
    workflow_id: str | None = None


@runtime_checkable
class RollupStore(Protocol):
    """Reads rollup rows; bulk-adds deltas outside an execution transaction."""

    async def read_rollups(self, query: RollupQuery) -> list[RollupRow]:
        """The rows matching ``query``, one per (workflow, bucket), oldest first."""

    async def add_rollups(self, deltas: list[RollupDelta]) -> None:
        """Add deltas in bulk (backfills and benchmarks; the engine adds them in its
        transactions through ``ExecutionTx.add_rollup``)."""
