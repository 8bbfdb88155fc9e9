"""The checkpoint port: where LangGraph checkpoints of AI steps are kept.

A checkpoint is scoped to one step run of one execution: its thread id is
``"{execution_id}/{run_id}"`` (``thread_id_for``), and the execution id is stored as a
field of its own so that an execution's retention deletes all of its checkpoints
(``delete_for_execution``). The payloads are opaque: the serialiser's type tag and
bytes (``SerializerProtocol.dumps_typed``), decoded only by the saver
(``shared/ai/checkpointer.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "CheckpointListing",
    "CheckpointRecord",
    "CheckpointStore",
    "CheckpointWrite",
    "execution_of",
    "thread_id_for",
]


def thread_id_for(execution_id: str, run_id: str) -> str:
    """The LangGraph thread id of a step run's graph."""
    if not execution_id or not run_id or "/" in execution_id or "/" in run_id:
        raise ValueError("execution and run ids must be non-empty and free of '/'")
    return f"{execution_id}/{run_id}"


def execution_of(thread_id: str) -> str:
    """The execution id of a thread id made by ``thread_id_for`` (ValueError otherwise)."""
    execution_id, sep, run_id = thread_id.partition("/")
    if not sep or not execution_id or not run_id or "/" in run_id:
        raise ValueError(f"thread id {thread_id!r} is not '<execution_id>/<run_id>'")
    return execution_id


@dataclass(frozen=True)
class CheckpointRecord:
    """One saved checkpoint, keyed by (thread_id, checkpoint_ns, checkpoint_id)."""

    thread_id: str
    """``"{execution_id}/{run_id}"``."""
    checkpoint_ns: str
    """LangGraph's namespace ("" for the root graph, one per subgraph)."""
    checkpoint_id: str
    """LangGraph's id (uuid6: ordered by creation within a thread)."""
    execution_id: str
    """The execution the thread belongs to (indexed, for retention)."""
    parent_checkpoint_id: str | None
    """The checkpoint this one follows, None for a thread's first."""
    checkpoint_type: str
    """Serialiser type tag of ``checkpoint``."""
    checkpoint: bytes
    """The serialised checkpoint, channel values included."""
    metadata_type: str
    """Serialiser type tag of ``metadata``."""
    metadata: bytes
    """The serialised checkpoint metadata."""


@dataclass(frozen=True)
class CheckpointWrite:
    """One pending write of a task against a checkpoint, keyed by
    (thread_id, checkpoint_ns, checkpoint_id, task_id, idx)."""

    thread_id: str
    checkpoint_ns: str
    checkpoint_id: str
    task_id: str
    idx: int
    """Position in the task's writes; negative for LangGraph's special channels
    (``WRITES_IDX_MAP``: error, scheduled, interrupt, resume)."""
    channel: str
    value_type: str
    """Serialiser type tag of ``value``."""
    value: bytes
    task_path: str = ""
    """The task's path (orders a super-step's writes: ``writes_sort_key``)."""


@dataclass(frozen=True)
class CheckpointListing:
    """Which checkpoints ``list_checkpoints`` returns, newest checkpoint id first."""

    thread_id: str | None = None
    """Only this thread (None: every thread)."""
    checkpoint_ns: str | None = None
    """Only this namespace (None: every namespace)."""
    checkpoint_id: str | None = None
    """Only this checkpoint."""
    before: str | None = None
    """Only checkpoint ids strictly below this one."""
    limit: int | None = None
    """At most this many (None: all)."""


class CheckpointStore(Protocol):
    """Checkpoint records and their pending writes (memory, SQLite, Firestore)."""

    async def put_checkpoint(self, record: CheckpointRecord) -> None:
        """Save ``record``, replacing a record with the same key."""
        ...

    async def get_checkpoint(
        self, thread_id: str, checkpoint_ns: str, checkpoint_id: str | None
    ) -> CheckpointRecord | None:
        """The record with this key, or the thread's newest in the namespace when
        ``checkpoint_id`` is None; None when there is none."""
        ...

    async def list_checkpoints(self, listing: CheckpointListing) -> list[CheckpointRecord]:
        """The records matching ``listing``, ordered by checkpoint id, newest first."""
        ...

    async def put_writes(self, writes: list[CheckpointWrite]) -> None:
        """Save pending writes in one transaction: a write whose key exists is kept
        when its ``idx`` is >= 0 (a retried task does not change what it wrote) and
        replaced when negative (special channels keep the latest)."""
        ...

    async def get_writes(
        self, thread_id: str, checkpoint_ns: str, checkpoint_id: str
    ) -> list[CheckpointWrite]:
        """The pending writes of one checkpoint, in ``writes_sort_key`` order
        (task_path, task_id, idx)."""
        ...

    async def delete_thread(self, thread_id: str) -> None:
        """Delete every checkpoint and write of the thread (all namespaces)."""
        ...

    async def delete_for_execution(self, execution_id: str) -> int:
        """Delete every checkpoint and write of the execution's threads (retention);
        returns how many checkpoints were deleted."""
        ...

    async def close(self) -> None:
        """Release connections (idempotent)."""
        ...
