"""Analytics rollup rows kept in a dict: the memory store's ``RollupStore`` half."""

from __future__ import annotations

from datetime import datetime

from shared.ports.analytics import (
    GRAINS,
    Grain,
    RollupDelta,
    RollupQuery,
    RollupRow,
    bucket_start,
    merge_counters,
)

__all__ = ["MemoryRollups"]

_Key = tuple[str, str, Grain, datetime]


class MemoryRollups:
    """Rows keyed by (tenant, workflow id, grain, bucket start); one shard each."""

    def __init__(self) -> None:
        self._rows: dict[_Key, dict[str, float]] = {}

    def add(self, delta: RollupDelta) -> None:
        """Add ``delta`` to its hour and day rows (call with the store's writes)."""
        for grain in GRAINS:
            key = (delta.tenant, delta.workflow_id, grain, bucket_start(delta.at, grain))
            merge_counters(self._rows.setdefault(key, {}), delta.counters)

    def read(self, query: RollupQuery) -> list[RollupRow]:
        """The rows matching ``query``, oldest first (copies)."""
        rows = [
            RollupRow(tenant, workflow_id, grain, bucket, dict(counters))
            for (tenant, workflow_id, grain, bucket), counters in self._rows.items()
            if tenant == query.tenant
            and grain == query.grain
            and query.start <= bucket < query.end
            and (query.workflow_id is None or workflow_id == query.workflow_id)
        ]
        rows.sort(key=lambda row: (row.bucket, row.workflow_id))
        return rows
