"""How the Firestore store lays records out: collection names, document ids and fields.

Every record is kept whole as one JSON string field ``doc`` (the models' own JSON, the
same text the SQLite store keeps), exempt from indexing; the few fields queries need
are copied next to it. Times that listings compare or page on are epoch seconds
(doubles), so page cursors round-trip exactly as in the SQLite store.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from google.cloud.firestore import SERVER_TIMESTAMP, Minimum
from pydantic import TypeAdapter

from shared.adapters._store_common import epoch, epoch_or_none
from shared.errors import InputInvalid, WorkflowError
from shared.models import (
    ConcurrencySlot,
    ExecutionEvent,
    ExecutionStatus,
    JoinMark,
    Signal,
    StepRun,
    WorkflowDefinition,
    WorkflowExecution,
)

__all__ = [
    "DELETING",
    "MAX_DOC_BYTES",
    "Collections",
    "check_id",
    "datetime_text",
    "encode_event",
    "encode_execution",
    "encode_head",
    "encode_join",
    "encode_run",
    "encode_signal",
    "encode_slot",
    "encode_version",
    "event_doc_id",
    "is_storable",
    "join_doc_id",
    "next_created_key",
    "read_head",
    "version_doc_id",
]

MAX_DOC_BYTES = 900 * 1024
"""Largest ``doc`` body written: Firestore refuses documents over 1 MiB, and the other
fields and the document name need some room."""

DELETING = "deletingSince"
"""Field of an execution document the retention sweep sets (a server timestamp) in its
first deleting transaction (``firestore_retention``): the execution is going. Beside
``doc``, which the models read, so no model sees it; ``FirestoreTx`` keeps it on
writes and refuses one that would bring the execution back to life."""

_DATETIME = TypeAdapter(datetime)


@dataclass(frozen=True)
class Collections:
    """Collection names, each behind an optional prefix (tests, several stages in one
    database). Subcollections carry the prefix too, so collection-group queries on
    ``events`` never mix two prefixes."""

    prefix: str = ""

    @property
    def workflows(self) -> str:
        return f"{self.prefix}workflows"

    @property
    def versions(self) -> str:
        """Subcollection of a workflow head: its immutable versions."""
        return f"{self.prefix}versions"

    @property
    def executions(self) -> str:
        return f"{self.prefix}executions"

    @property
    def events(self) -> str:
        """Subcollection of an execution: its events, one document per seq."""
        return f"{self.prefix}events"

    @property
    def step_runs(self) -> str:
        return f"{self.prefix}stepRuns"

    @property
    def joins(self) -> str:
        """Subcollection of a (fan-out) step run: one mark per finished branch."""
        return f"{self.prefix}joins"

    @property
    def signals(self) -> str:
        return f"{self.prefix}signals"

    @property
    def flow_slots(self) -> str:
        """Concurrency slot documents (flow control): one per slot of a key."""
        return f"{self.prefix}flowSlots"


def is_storable(value: str) -> bool:
    """Whether Firestore accepts ``value`` as a document id."""
    reserved = value.startswith("__") and value.endswith("__")
    if not value or "/" in value or value in {".", ".."} or reserved:
        return False
    return len(value.encode()) <= 1500


def check_id(kind: str, value: str) -> str:
    """``value`` if it can be a document id; InputInvalid otherwise."""
    if not is_storable(value):
        raise InputInvalid(f"{kind} id {value!r} cannot be stored in Firestore", path="/id")
    return value


def version_doc_id(version: int) -> str:
    """Zero-padded, so document names sort like the numbers."""
    return f"{version:08d}"


def event_doc_id(seq: int) -> str:
    return f"{seq:012d}"


def join_doc_id(index: int) -> str:
    return f"{index:08d}"


_key_lock = threading.Lock()
_last_value = 0


def next_created_key() -> int:
    """A creation sort key: wall-clock nanoseconds, strictly increasing in this process.

    Written with a ``Minimum`` transform, so the first write of a record sets it and
    later writes keep it. Across processes the order is the clocks' order.
    """
    global _last_value
    with _key_lock:
        _last_value = max(time.time_ns(), _last_value + 1)
        return _last_value


def _body(kind: str, ident: str, record: Any) -> str:
    """The record's JSON; DOCUMENT_TOO_LARGE when it cannot fit one document."""
    text: str = record.model_dump_json(by_alias=True)
    size = len(text.encode())
    if size > MAX_DOC_BYTES:
        raise WorkflowError(
            f"{kind} {ident!r} is {size} bytes as JSON, over the {MAX_DOC_BYTES}-byte limit "
            "of one Firestore document",
            code="DOCUMENT_TOO_LARGE",
            retryable=False,
            details={"kind": kind, "id": ident, "bytes": size, "limit": MAX_DOC_BYTES},
        )
    return text


def encode_execution(execution: WorkflowExecution) -> dict[str, Any]:
    check_id("execution", execution.id)
    return {
        "id": execution.id,
        "tenant": execution.tenant,
        "workflowId": execution.workflow_id,
        "status": str(execution.status),
        "startedAt": epoch(execution.started_at),
        **_queue_fields(execution),
        "doc": _body("execution", execution.id, execution),
    }


def _queue_fields(execution: WorkflowExecution) -> dict[str, Any]:
    """The indexed queue fields of a queued execution (``None`` otherwise)."""
    state = execution.queue
    queued = execution.status == ExecutionStatus.QUEUED and state is not None
    return {
        "queueKey": state.wait_key if queued and state is not None else None,
        "queuePriority": state.priority if queued and state is not None else None,
        "queuedAt": epoch(state.queued_at or execution.started_at)
        if queued and state is not None
        else None,
    }


def encode_slot(slot: ConcurrencySlot) -> dict[str, Any]:
    """Fields of a concurrency slot document."""
    check_id("concurrency slot", slot.id)
    return {
        "id": slot.id,
        "tenant": slot.tenant,
        "slotKey": slot.slot_key,
        "doc": slot.model_dump_json(by_alias=True),
    }


def encode_run(run: StepRun, created_key: int) -> dict[str, Any]:
    """Fields of a step run, written with ``merge=True`` so ``createdKey`` keeps its
    first value."""
    check_id("step run", run.id)
    return {
        "id": run.id,
        "executionId": run.execution_id,
        "status": str(run.status),
        "dueAt": epoch_or_none(run.due_at),
        "leaseExpiresAt": epoch_or_none(run.lease_expires_at),
        "createdKey": Minimum(created_key),
        "doc": _body("step run", run.id, run),
    }


def encode_join(mark: JoinMark) -> dict[str, Any]:
    check_id("step run", mark.owner_run_id)
    ident = f"{mark.owner_run_id}/{mark.index}"
    return {
        "ownerRunId": mark.owner_run_id,
        "index": mark.index,
        "doc": _body("join mark", ident, mark),
    }


def encode_signal(signal: Signal, created_key: int) -> dict[str, Any]:
    """Fields of a signal, written with ``merge=True`` like a step run."""
    check_id("signal", signal.id)
    return {
        "id": signal.id,
        "executionId": signal.execution_id,
        "name": signal.name,
        "consumed": signal.consumed_by is not None,
        "createdKey": Minimum(created_key),
        "doc": _body("signal", signal.id, signal),
    }


def encode_event(event: ExecutionEvent) -> dict[str, Any]:
    """Fields of an event; ``committedAt`` is the commit time, set by the server."""
    check_id("execution", event.execution_id)
    return {
        "executionId": event.execution_id,
        "workflowId": event.workflow_id,
        "seq": event.seq,
        "committedAt": SERVER_TIMESTAMP,
        "doc": _body("event", f"{event.execution_id}#{event.seq}", event),
    }


def encode_version(definition: WorkflowDefinition) -> dict[str, Any]:
    return {
        "workflowId": definition.id,
        "version": definition.version,
        "doc": _body("workflow version", definition.id, definition),
    }


def encode_head(
    definition: WorkflowDefinition, tenant: str, created_at: float, last_executed: Any
) -> dict[str, Any]:
    """Fields of a live workflow head pointing at ``definition``.

    ``lastExecuted`` lives beside the body (JSON text of a datetime, or None) so
    ``touch_executed`` is one blind field update; it wins over the body's value.
    """
    check_id("workflow", definition.id)
    return {
        "id": definition.id,
        "tenant": tenant,
        "name": definition.name,
        "isActive": definition.is_active,
        "tags": sorted(set(definition.tags)),
        "deleted": False,
        "deletedAt": None,
        "latestVersion": definition.version,
        "createdAt": created_at,
        "updatedAt": epoch(definition.updated_at),
        "lastExecuted": last_executed,
        "doc": _body("workflow", definition.id, definition),
    }


def datetime_text(moment: datetime | None) -> str | None:
    """``moment`` as the models write it in JSON (None stays None)."""
    return None if moment is None else str(_DATETIME.dump_python(moment, mode="json"))


def read_head(data: dict[str, Any]) -> WorkflowDefinition:
    """The definition a head document shows, with its ``lastExecuted`` field applied."""
    head = WorkflowDefinition.model_validate_json(data["doc"])
    if data.get("lastExecuted") is not None:
        head.last_executed = _DATETIME.validate_python(data["lastExecuted"])
    return head
