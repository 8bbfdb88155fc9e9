"""A Firestore deletion spans transactions: its first one marks the execution as going,
a redrive between two of them is refused (409 EXECUTION_BEING_DELETED) and the deletion
completes; a sweep stopped after the mark is finished by the next one (emulator).

The store's ``delete_execution`` is run with two deletes per transaction (``chunk``),
and its transaction runner is wrapped to act between two of them: the redrive (or the
crash) lands after the first transaction, with documents of the execution still left.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from google.cloud.firestore import AsyncClient
from harness import Harness

from shared.adapters import firestore_store
from shared.adapters.firestore_retention import delete_execution
from shared.adapters.firestore_store import FirestoreStore
from shared.api.auth import LocalDevAuthenticator
from shared.api.errors import status_for
from shared.api.rest import create_management_app
from shared.app.retention import RetentionPolicy, RetentionSweeper
from shared.app.service import StartRequest
from shared.composition import build_gcp
from shared.composition.edge import build_edge
from shared.errors import ExecutionBeingDeleted
from shared.models import ExecutionStatus
from shared.settings import GcpSettings, Settings

pytestmark = [pytest.mark.emulator, pytest.mark.timeout(180)]

TENANT = "t-mark"
FAILS: dict[str, Any] = {
    "name": "fails",
    "steps": [
        {"id": "a", "type": "transform", "config": {"set": {"n": 1}}, "nextSteps": ["a2"]},
        {"id": "a2", "type": "transform", "config": {"set": {"m": 2}}, "nextSteps": ["b"]},
        {"id": "b", "type": "transform", "config": {"set": {"x": "${input.missing.deep}"}}},
    ],
}

Transact = Callable[[Callable[[Any], Awaitable[Any]]], Awaitable[Any]]


class Crash(Exception):
    """The sweep's process dying between two transactions."""


@pytest.fixture
async def fh(firestore_project: str) -> AsyncIterator[Harness]:
    store = FirestoreStore(lambda: AsyncClient(project=firestore_project), max_attempts=50)
    harness = Harness(store)  # type: ignore[arg-type]
    try:
        yield harness
    finally:
        await harness.bus.close()
        await store.close()


async def failed_execution(fh: Harness) -> str:
    app = fh.app.for_tenant(TENANT)
    workflow = await app.create_workflow(FAILS)
    started = await app.start_execution(StartRequest(workflow.id, {}))
    await fh.drain(advance=False)
    found = await fh.store.get_execution(started.id)
    assert found is not None and found.status == ExecutionStatus.FAILED
    assert len(await fh.store.list_events(started.id)) > 4  # more than two chunks of events
    return started.id


def chunked_deletes(
    monkeypatch: pytest.MonkeyPatch, between: Callable[[int], Awaitable[None]]
) -> list[int]:
    """Make the store delete two documents per transaction and call ``between(n)``
    after its n-th retention transaction committed; returns the committed count."""
    committed = [0]

    async def deleting(client: Any, names: Any, transact: Transact, *args: Any) -> Any:
        async def counted(body: Callable[[Any], Awaitable[Any]]) -> Any:
            result = await transact(body)
            committed[0] += 1
            await between(committed[0])
            return result

        return await delete_execution(client, names, counted, *args, chunk=2)

    monkeypatch.setattr(firestore_store, "delete_execution", deleting)
    return committed


async def gone(fh: Harness, execution_id: str) -> bool:
    store = fh.store
    return (
        await store.get_execution(execution_id) is None
        and await store.list_runs(execution_id) == []
        and await store.list_events(execution_id) == []
    )


async def test_a_redrive_between_two_delete_transactions_is_refused(
    fh: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    store: FirestoreStore = fh.store  # type: ignore[assignment]
    execution_id = await failed_execution(fh)
    assert await store.stored_bytes(TENANT) > 0
    fh.clock.advance(timedelta(days=400))
    refused: list[ExecutionBeingDeleted] = []

    async def redrive(n: int) -> None:
        if n == 1:  # the first transaction marked it and deleted two events
            assert len(await store.list_events(execution_id)) > 0
            with pytest.raises(ExecutionBeingDeleted) as caught:
                await fh.app.for_tenant(TENANT).redrive(execution_id)
            refused.append(caught.value)
            kept = await store.get_execution(execution_id)
            assert kept is not None and kept.status == ExecutionStatus.FAILED

    committed = chunked_deletes(monkeypatch, redrive)
    report = await RetentionSweeper(store, fh.clock, RetentionPolicy()).sweep()

    assert [error.code for error in refused] == ["EXECUTION_BEING_DELETED"]
    assert status_for(refused[0]) == 409
    assert committed[0] > 2
    assert (report.counts.executions, report.counts.runs) == (1, 3)
    assert await gone(fh, execution_id)
    assert await store.stored_bytes(TENANT) == 0


async def test_the_rest_api_answers_a_redrive_of_a_marked_execution_409(
    fh: Harness, firestore_project: str
) -> None:
    """Over HTTP, as a client sees it: the create function's REST app on the cloud
    composition (this FirestoreStore on the emulator) answers 409 with the code, and
    the execution stays as it was."""
    store: FirestoreStore = fh.store  # type: ignore[assignment]
    execution_id = await failed_execution(fh)
    fh.clock.advance(timedelta(days=400))

    async def crash(n: int) -> None:
        raise Crash(f"died after transaction {n}")

    with pytest.MonkeyPatch.context() as patch:  # (the fixture's keeps the emulator host)
        chunked_deletes(patch, crash)
        with pytest.raises(Crash):
            await store.delete_execution(TENANT, execution_id, fh.clock.now())

    settings = Settings(
        backend="gcp",
        gcp=GcpSettings(project=firestore_project, execute_step_url="http://127.0.0.1:9/"),
    )
    runtime = build_gcp(settings, store=store)
    edge = build_edge(settings, runtime=runtime, authenticator=LocalDevAuthenticator())
    app = create_management_app(edge, lifespan=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://create.test") as api:
        answer = await api.post(
            f"/api/v1/executions/{execution_id}/redrive", headers={"X-Tenant": TENANT}
        )
    assert answer.status_code == 409, answer.text
    assert answer.json()["error"]["code"] == "EXECUTION_BEING_DELETED"
    kept = await store.get_execution(execution_id)
    assert kept is not None and kept.status == ExecutionStatus.FAILED
    assert kept.redrive_count == 0


async def test_a_sweep_stopped_after_the_mark_is_finished_by_the_next(
    fh: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    store: FirestoreStore = fh.store  # type: ignore[assignment]
    execution_id = await failed_execution(fh)
    events = len(await store.list_events(execution_id))
    fh.clock.advance(timedelta(days=400))

    async def crash(n: int) -> None:
        raise Crash(f"died after transaction {n}")

    chunked_deletes(monkeypatch, crash)
    with pytest.raises(Crash):
        await store.delete_execution(TENANT, execution_id, fh.clock.now())
    left = await store.list_events(execution_id)
    assert 0 < len(left) < events  # partly deleted, and marked
    with pytest.raises(ExecutionBeingDeleted):
        await fh.app.for_tenant(TENANT).redrive(execution_id)
    kept = await store.get_execution(execution_id)
    assert kept is not None and kept.status == ExecutionStatus.FAILED

    monkeypatch.undo()
    # the mark admits no other tenant's call
    assert (await store.delete_execution("t-other", execution_id, fh.clock.now())).executions == 0
    report = await RetentionSweeper(store, fh.clock, RetentionPolicy()).sweep()

    assert report.counts.executions == 1 and report.counts.events == len(left)
    assert await gone(fh, execution_id)
    assert await store.stored_bytes(TENANT) == 0
