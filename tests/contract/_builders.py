"""Builders of the models the store contract tests write and read back."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel

from shared.adapters.firestore_store import FirestoreStore
from shared.adapters.memory_store import MemoryStore
from shared.adapters.sqlite_store import SqliteStore
from shared.models import (
    ExecutionEvent,
    ExecutionStatus,
    JoinMark,
    Signal,
    StepRun,
    StepRunStatus,
    WorkflowDefinition,
    WorkflowExecution,
)
from shared.ports import ExecutionTx

Store = MemoryStore | SqliteStore | FirestoreStore
"""Every store under contract; a new adapter joins this union."""

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    """``T0`` shifted by ``seconds``."""
    return T0 + timedelta(seconds=seconds)


def definition(
    workflow_id: str,
    *,
    version: int = 1,
    name: str = "wf",
    tags: Sequence[str] = (),
    is_active: bool = True,
    created: float = 0,
) -> WorkflowDefinition:
    """A one-step workflow created ``created`` seconds after T0."""
    return WorkflowDefinition.model_validate(
        {
            "id": workflow_id,
            "name": name,
            "version": version,
            "isActive": is_active,
            "tags": list(tags),
            "steps": [{"id": "a", "type": "transform", "config": {"set": {"x": 1}}}],
            "createdAt": at(created),
            "updatedAt": at(created + version),
        }
    )


def execution(
    execution_id: str,
    *,
    workflow_id: str = "wf-1",
    status: ExecutionStatus = ExecutionStatus.RUNNING,
    started: float = 0,
    tenant: str = "default",
) -> WorkflowExecution:
    """An execution started ``started`` seconds after T0."""
    return WorkflowExecution(
        id=execution_id,
        workflow_id=workflow_id,
        workflow_version=1,
        status=status,
        started_at=at(started),
        updated_at=at(started),
        tenant=tenant,
        variables={"n": 1, "nested": {"list": [1, 2]}},
    )


def run(
    run_id: str,
    *,
    execution_id: str = "ex-1",
    status: StepRunStatus = StepRunStatus.SCHEDULED,
    due: float = 0,
    lease: float | None = None,
    owner: str | None = None,
) -> StepRun:
    """A step run due ``due`` seconds after T0, leased until ``lease`` if given."""
    return StepRun(
        id=run_id,
        execution_id=execution_id,
        workflow_id="wf-1",
        step_id="a",
        step_type="transform",
        status=status,
        due_at=at(due),
        lease_owner=owner,
        lease_expires_at=None if lease is None else at(lease),
        created_at=T0,
    )


def event(execution_id: str, seq: int, *, kind: str = "step.started") -> ExecutionEvent:
    """Event ``seq`` of an execution of workflow ``wf-1``."""
    return ExecutionEvent(
        execution_id=execution_id, workflow_id="wf-1", seq=seq, type=kind, at=at(seq)
    )


def signal(
    signal_id: str,
    *,
    execution_id: str = "ex-1",
    name: str = "approval",
    consumed_by: str | None = None,
    created: float = 0,
) -> Signal:
    """A signal sent ``created`` seconds after T0."""
    return Signal(
        id=signal_id,
        execution_id=execution_id,
        name=name,
        payload={"from": signal_id},
        consumed_by=consumed_by,
        created_at=at(created),
    )


def join(owner_run_id: str, index: int, output: Any = None) -> JoinMark:
    """A succeeded branch ``index`` of a fan-out run."""
    return JoinMark(
        owner_run_id=owner_run_id, index=index, status=StepRunStatus.SUCCEEDED, output=output
    )


Record = WorkflowExecution | StepRun | JoinMark | Signal | ExecutionEvent


async def put(store: Store, *records: Record) -> None:
    """Write ``records`` in one transaction, in order."""

    async def body(tx: ExecutionTx) -> None:
        for record in records:
            if isinstance(record, WorkflowExecution):
                tx.put_execution(record)
            elif isinstance(record, StepRun):
                tx.put_run(record)
            elif isinstance(record, JoinMark):
                tx.put_join(record)
            elif isinstance(record, Signal):
                tx.put_signal(record)
            else:
                tx.add_event(record)

    await store.run_transaction(body)


def dumped(models: Sequence[BaseModel] | BaseModel | None) -> Any:
    """JSON dumps of models, for exact comparisons."""
    if models is None:
        return None
    if isinstance(models, BaseModel):
        return models.model_dump(mode="json")
    return [model.model_dump(mode="json") for model in models]


def ids(models: Sequence[Any]) -> list[str]:
    """The ``id`` of each model, in order."""
    return [model.id for model in models]
