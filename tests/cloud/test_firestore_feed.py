"""The status streams of a gcp-mode process fed by Firestore listeners, against the
emulator: events another process (another client) commits reach the streams, resumed
after a seq, in order, once each, until the terminal event."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import pytest
from google.cloud.firestore import AsyncClient

from shared.adapters.firestore_feed import FirestoreWatchFeed
from shared.adapters.firestore_store import FirestoreStore
from shared.api.broker import EventBroker
from shared.composition import GcpRuntime, build_gcp
from shared.models import ExecutionEvent, ExecutionStatus, WorkflowExecution
from shared.ports import ExecutionTx
from shared.settings import GcpSettings, Settings

pytestmark = [pytest.mark.emulator, pytest.mark.timeout(60)]

WORKFLOW = {"name": "fed", "steps": [{"id": "a", "type": "transform", "config": {}}]}


@pytest.fixture
async def stores(firestore_project: str) -> AsyncIterator[Callable[[], FirestoreStore]]:
    opened: list[FirestoreStore] = []

    def make() -> FirestoreStore:
        opened.append(FirestoreStore(lambda: AsyncClient(project=firestore_project)))
        return opened[-1]

    yield make
    for store in opened:
        await store.close()


@pytest.fixture
async def runtime(stores: Callable[[], FirestoreStore]) -> AsyncIterator[GcpRuntime]:
    """The status-stream process: a gcp runtime that commits nothing itself."""
    settings = Settings(
        backend="gcp", gcp=GcpSettings(project="unused", execute_step_url="http://127.0.0.1:9/")
    )
    gcp = build_gcp(settings, store=stores())
    try:
        yield gcp
    finally:
        await gcp.stop()


async def commit(writer: FirestoreStore, execution_id: str, workflow_id: str, *types: str) -> None:
    """Another process commits events of ``types`` (creating the execution if needed)."""

    async def body(tx: ExecutionTx) -> None:
        execution = await tx.get_execution(execution_id) or WorkflowExecution(
            id=execution_id,
            workflow_id=workflow_id,
            workflow_version=1,
            status=ExecutionStatus.RUNNING,
        )
        for kind in types:
            if kind == "execution.succeeded":
                execution.status = ExecutionStatus.SUCCEEDED
                execution.completed_at = datetime.now(UTC)
            execution.event_seq += 1
            tx.add_event(
                ExecutionEvent(
                    execution_id=execution_id,
                    workflow_id=workflow_id,
                    seq=execution.event_seq,
                    type=kind,
                    step_id="a",
                )
            )
        tx.put_execution(execution)

    await writer.run_transaction(body)


async def test_streams_see_what_other_processes_commit(
    runtime: GcpRuntime, stores: Callable[[], FirestoreStore]
) -> None:
    writer = stores()
    workflow_id = (await runtime.app.create_workflow(WORKFLOW)).id
    await commit(writer, "ex-1", workflow_id, "execution.started", "step.started")
    broker = EventBroker(runtime.app)
    broker.attach_feed(runtime.event_feed())
    assert isinstance(broker.feed, FirestoreWatchFeed)
    flow = broker.open(tenant="default", workflow_id=workflow_id)
    single = broker.open(tenant="default", execution_id="ex-1", after=1)
    async with flow, single:
        assert (await single.next(timeout=5)).seq == 2  # type: ignore[union-attr]
        assert broker.feed.watched == {("execution", "ex-1"), ("workflow", workflow_id)}
        await asyncio.sleep(0.3)  # let the listeners attach
        for kind in ("step.succeeded", "step.started", "step.succeeded"):
            await commit(writer, "ex-1", workflow_id, kind)
        await commit(writer, "ex-2", workflow_id, "execution.started")
        await commit(writer, "ex-1", workflow_id, "execution.succeeded")
        seen = [event.seq async for event in single]
        live: list[tuple[str, int]] = []
        while not {("ex-1", 6), ("ex-2", 1)} <= set(live):
            event = await flow.next(timeout=5)
            assert event is not None, f"the workflow stream stalled after {live}"
            live.append((event.execution_id, event.seq))
    assert seen == [3, 4, 5, 6]
    # Live from when it subscribed (the listener's margin may add the two events
    # committed just before), each execution in seq order, once.
    ex1 = [seq for eid, seq in live if eid == "ex-1"]
    assert ex1 in ([3, 4, 5, 6], [1, 2, 3, 4, 5, 6]) and len(live) == len(set(live))
    assert broker.subscriber_count == 0
    await asyncio.sleep(0)
    assert broker.feed.watched == frozenset()
