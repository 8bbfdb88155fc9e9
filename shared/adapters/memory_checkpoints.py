"""LangGraph checkpoints in process memory: the memory store's companion and the fake
of the tests (one process; nothing survives it)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from langgraph.checkpoint.base import writes_sort_key

from shared.ports.checkpoints import (
    CheckpointListing,
    CheckpointRecord,
    CheckpointWrite,
    execution_of,
)

__all__ = ["MemoryCheckpointStore", "listing_matches"]

_Key = tuple[str, str, str]
"""(thread_id, checkpoint_ns, checkpoint_id)."""


def listing_matches(record: CheckpointRecord, listing: CheckpointListing) -> bool:
    """Whether ``record`` is one ``listing`` asks for (the limit aside)."""
    return (
        (listing.thread_id is None or record.thread_id == listing.thread_id)
        and (listing.checkpoint_ns is None or record.checkpoint_ns == listing.checkpoint_ns)
        and (listing.checkpoint_id is None or record.checkpoint_id == listing.checkpoint_id)
        and (listing.before is None or record.checkpoint_id < listing.before)
    )


class MemoryCheckpointStore:
    """Checkpoints and writes in dicts, guarded by one lock."""

    def __init__(self) -> None:
        self._checkpoints: dict[_Key, CheckpointRecord] = {}
        self._writes: dict[_Key, dict[tuple[str, int], CheckpointWrite]] = {}
        self._lock = asyncio.Lock()

    async def put_checkpoint(self, record: CheckpointRecord) -> None:
        execution_of(record.thread_id)
        async with self._lock:
            key = (record.thread_id, record.checkpoint_ns, record.checkpoint_id)
            self._checkpoints[key] = record

    async def get_checkpoint(
        self, thread_id: str, checkpoint_ns: str, checkpoint_id: str | None
    ) -> CheckpointRecord | None:
        async with self._lock:
            if checkpoint_id is not None:
                return self._checkpoints.get((thread_id, checkpoint_ns, checkpoint_id))
            ids = [
                key[2]
                for key in self._checkpoints
                if key[0] == thread_id and key[1] == checkpoint_ns
            ]
            return self._checkpoints[(thread_id, checkpoint_ns, max(ids))] if ids else None

    async def list_checkpoints(self, listing: CheckpointListing) -> list[CheckpointRecord]:
        async with self._lock:
            found = [r for r in self._checkpoints.values() if listing_matches(r, listing)]
        found.sort(key=lambda r: (r.checkpoint_id, r.thread_id, r.checkpoint_ns), reverse=True)
        return found if listing.limit is None else found[: max(listing.limit, 0)]

    async def put_writes(self, writes: list[CheckpointWrite]) -> None:
        for write in writes:
            execution_of(write.thread_id)
        async with self._lock:
            for write in writes:
                outer = self._writes.setdefault(
                    (write.thread_id, write.checkpoint_ns, write.checkpoint_id), {}
                )
                inner = (write.task_id, write.idx)
                if write.idx >= 0 and inner in outer:
                    continue
                outer[inner] = write

    async def get_writes(
        self, thread_id: str, checkpoint_ns: str, checkpoint_id: str
    ) -> list[CheckpointWrite]:
        async with self._lock:
            stored = list(self._writes.get((thread_id, checkpoint_ns, checkpoint_id), {}).values())
        return sorted(stored, key=lambda w: writes_sort_key(w.task_path, w.task_id, w.idx))

    async def delete_thread(self, thread_id: str) -> None:
        async with self._lock:
            self._drop(lambda key: key[0] == thread_id)

    async def delete_for_execution(self, execution_id: str) -> int:
        async with self._lock:
            return self._drop(lambda key: execution_of(key[0]) == execution_id)

    def _drop(self, doomed: Callable[[_Key], bool]) -> int:
        gone = [key for key in self._checkpoints if doomed(key)]
        for key in gone:
            del self._checkpoints[key]
        for key in [key for key in self._writes if doomed(key)]:
            del self._writes[key]
        return len(gone)

    async def close(self) -> None:
        """Nothing to release."""
