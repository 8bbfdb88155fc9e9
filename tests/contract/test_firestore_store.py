"""What only the Firestore store promises, against the emulator: contention between
clients, retried transaction bodies, the document size cap, the data layout and
listeners fed by Firestore itself."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import pytest
from _builders import T0, event, execution, ids, put, run
from google.cloud.firestore import AsyncClient

from shared.adapters._firestore_codec import MAX_DOC_BYTES
from shared.adapters.firestore_store import FirestoreStore
from shared.errors import Conflict, InputInvalid, WorkflowError
from shared.models import ExecutionEvent, StepRunStatus, WorkflowDefinition
from shared.ports import ExecutionTx

pytestmark = pytest.mark.emulator

MakeStore = Callable[..., FirestoreStore]


@pytest.fixture
async def make_store(firestore_project: str) -> AsyncIterator[MakeStore]:
    """Stores on one emulator project, each with its own client (like two processes)."""
    opened: list[FirestoreStore] = []

    def make(**options: Any) -> FirestoreStore:
        store = FirestoreStore(lambda: AsyncClient(project=firestore_project), **options)
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.close()


def _claimer(run_id: str, owner: str, both_read: asyncio.Barrier | None, calls: list[str]) -> Any:
    """A claim body; the first attempt waits until the other claimer has read too, so
    the two transactions really overlap."""

    async def body(tx: ExecutionTx) -> bool:
        calls.append(owner)
        current = await tx.get_run(run_id)
        if both_read is not None and calls.count(owner) == 1:
            await both_read.wait()
        if current is None or current.status != StepRunStatus.SCHEDULED:
            return False
        current.status = StepRunStatus.RUNNING
        current.lease_owner = owner
        current.lease_expires_at = T0 + timedelta(minutes=5)
        tx.put_run(current)
        return True

    return body


async def test_two_clients_claim_one_run_exactly_once(make_store: MakeStore) -> None:
    first, second = make_store(), make_store()
    await put(first, run("r1"))
    both_read = asyncio.Barrier(2)
    calls: list[str] = []

    won = await asyncio.gather(
        first.run_transaction(_claimer("r1", "a", both_read, calls)),
        second.run_transaction(_claimer("r1", "b", both_read, calls)),
    )

    assert sorted(won) == [False, True]
    assert len(calls) >= 3  # the loser's body ran again and saw the claim
    claimed = await second.get_run("r1")
    assert claimed is not None and claimed.status == StepRunStatus.RUNNING
    assert claimed.lease_owner == ("a" if won[0] else "b")


async def test_contention_past_the_attempts_is_a_retryable_conflict(
    make_store: MakeStore,
) -> None:
    first, second = make_store(max_attempts=1), make_store(max_attempts=1)
    await put(first, run("r1"))
    both_read = asyncio.Barrier(2)
    calls: list[str] = []

    outcomes = await asyncio.gather(
        first.run_transaction(_claimer("r1", "a", both_read, calls)),
        second.run_transaction(_claimer("r1", "b", both_read, calls)),
        return_exceptions=True,
    )

    conflicts = [o for o in outcomes if isinstance(o, Conflict)]
    assert conflicts and all(c.retryable and c.code == "CONFLICT" for c in conflicts)
    assert outcomes.count(True) == 2 - len(conflicts)
    assert len(calls) == 2  # one attempt each
    stored = await first.get_run("r1")
    assert stored is not None
    assert (stored.status == StepRunStatus.RUNNING) == (True in outcomes)


async def test_a_retried_body_starts_over_and_listeners_hear_one_commit(
    make_store: MakeStore,
) -> None:
    stores = {"a": make_store(), "b": make_store()}
    await put(stores["a"], execution("ex-1"), run("r1"))
    heard: dict[str, list[list[int]]] = {"a": [], "b": []}
    for owner, store in stores.items():
        store.add_listener(lambda events, o=owner: heard[o].append([e.seq for e in events]))
    both_read = asyncio.Barrier(2)
    calls: list[str] = []

    def body(owner: str) -> Any:
        claim = _claimer("r1", owner, both_read, calls)

        async def attempt(tx: ExecutionTx) -> tuple[bool, object]:
            number = calls.count(owner) + 1
            tx.put_run(run(f"extra-{owner}-{number}"))
            tx.add_event(event(f"ex-{owner}", number))
            won = await claim(tx)
            return won, await tx.get_run(f"extra-{owner}-{number}")

        return attempt

    outcomes = await asyncio.gather(*(s.run_transaction(body(o)) for o, s in stores.items()))

    assert sorted(won for won, _ in outcomes) == [False, True]
    assert [seen for _, seen in outcomes] == [None, None]  # puts are not read back
    last = {owner: calls.count(owner) for owner in stores}
    assert max(last.values()) >= 2
    assert heard == {owner: [[last[owner]]] for owner in stores}
    extras = sorted(ids(await stores["a"].list_runs("ex-1")))
    assert extras == sorted(["r1", *(f"extra-{o}-{n}" for o, n in last.items())])


async def test_reads_after_puts_see_committed_state_only(make_store: MakeStore) -> None:
    store = make_store()
    await put(store, execution("ex-1"), run("r1"))

    async def body(tx: ExecutionTx) -> tuple[object, ...]:
        tx.put_run(run("r1", status=StepRunStatus.SUCCEEDED))
        tx.put_run(run("r2"))
        after_put = await tx.get_run("r1")
        listed = ids(await tx.list_runs("ex-1"))
        return (after_put.status if after_put else None, listed)

    assert await store.run_transaction(body) == (StepRunStatus.SCHEDULED, ["r1"])
    assert ids(await store.list_runs("ex-1")) == ["r1", "r2"]
    done = await store.get_run("r1")
    assert done is not None and done.status == StepRunStatus.SUCCEEDED


async def test_an_oversized_document_is_refused_and_nothing_is_written(
    make_store: MakeStore,
) -> None:
    store = make_store()
    await put(store, execution("ex-1"))
    big = run("big")
    big.output = "x" * (MAX_DOC_BYTES + 1)

    async def body(tx: ExecutionTx) -> None:
        tx.put_run(run("small"))
        tx.put_run(big)

    with pytest.raises(WorkflowError) as refused:
        await store.run_transaction(body)
    assert (refused.value.code, refused.value.retryable) == ("DOCUMENT_TOO_LARGE", False)
    assert refused.value.details["id"] == "big"
    assert await store.list_runs("ex-1") == []

    huge = WorkflowDefinition.model_validate(
        {
            "id": "wf-huge",
            "name": "huge",
            "steps": [{"id": "a", "type": "transform"}],
            "variables": {"blob": "y" * MAX_DOC_BYTES},
        }
    )
    with pytest.raises(WorkflowError, match="over the"):
        await store.create_workflow(huge, "t1")
    assert await store.get_workflow("wf-huge", "t1") is None


async def test_a_document_just_under_the_cap_round_trips(make_store: MakeStore) -> None:
    store = make_store()
    near = run("near")
    near.output = "z" * (MAX_DOC_BYTES - 2_000)
    await put(store, near)
    got = await store.get_run("near")
    assert got is not None and got.output == near.output


async def test_documents_live_where_the_data_model_says(firestore_project: str) -> None:
    store = FirestoreStore(lambda: AsyncClient(project=firestore_project), collection_prefix="p_")
    client = AsyncClient(project=firestore_project)
    try:
        await put(store, execution("ex-1"), run("r1"), event("ex-1", 7))
        first = await client.document("p_stepRuns/r1").get()
        await put(store, run("r1", status=StepRunStatus.RUNNING))
        again = await client.document("p_stepRuns/r1").get()
        ev = await client.document("p_executions/ex-1/p_events/000000000007").get()

        assert isinstance(first.get("doc"), str)
        assert again.get("status") == "running"
        assert again.get("createdKey") == first.get("createdKey")  # kept by Minimum
        assert (ev.get("seq"), ev.get("workflowId")) == (7, "wf-1")
        assert ev.get("committedAt") is not None
        assert not (await client.document("stepRuns/r1").get()).exists
    finally:
        await store.close()
        await client._firestore_api.transport.close()


async def _heard_within(heard: list[ExecutionEvent], count: int, seconds: float) -> None:
    for _ in range(int(seconds / 0.01)):
        if len(heard) >= count:
            return
        await asyncio.sleep(0.01)


async def test_watch_events_of_an_execution_arrive_on_the_loop(make_store: MakeStore) -> None:
    watcher, writer = make_store(), make_store()
    heard: list[ExecutionEvent] = []
    threads: set[int] = set()

    def callback(events: list[ExecutionEvent]) -> None:
        threads.add(threading.get_ident())
        heard.extend(events)

    unsubscribe = watcher.watch_events("ex-1", None, callback)
    await asyncio.sleep(0.2)  # let the listener attach
    started = asyncio.get_running_loop().time()
    await put(writer, event("ex-1", 1), event("ex-1", 2), event("ex-2", 1))
    await _heard_within(heard, 2, 1.0)

    assert [(e.execution_id, e.seq) for e in heard] == [("ex-1", 1), ("ex-1", 2)]
    assert asyncio.get_running_loop().time() - started < 1.0
    assert threads == {threading.get_ident()}

    unsubscribe()
    unsubscribe()
    await put(writer, event("ex-1", 3))
    await asyncio.sleep(0.3)
    assert [e.seq for e in heard] == [1, 2]


async def test_watch_events_of_a_workflow_span_its_executions(make_store: MakeStore) -> None:
    watcher, writer = make_store(), make_store()
    heard: list[ExecutionEvent] = []
    watcher.watch_events(None, "wf-1", heard.extend)
    await asyncio.sleep(0.2)
    other = ExecutionEvent(execution_id="ex-9", workflow_id="wf-2", seq=1, type="step.started")

    await put(writer, event("ex-1", 1), other)
    await put(writer, event("ex-2", 1))
    await _heard_within(heard, 2, 1.0)
    await asyncio.sleep(0.1)

    assert sorted((e.execution_id, e.seq) for e in heard) == [("ex-1", 1), ("ex-2", 1)]


def test_watch_events_needs_exactly_one_id() -> None:
    store = FirestoreStore(lambda: AsyncClient(project="unused"))
    with pytest.raises(InputInvalid):
        store.watch_events(None, None, print)
    with pytest.raises(InputInvalid):
        store.watch_events("ex-1", "wf-1", print)


async def test_invalid_ids_read_as_absent_and_are_refused_on_write(make_store: MakeStore) -> None:
    store = make_store()
    assert await store.get_run("a/b") is None
    assert await store.get_execution("") is None
    assert await store.list_events("__x__") == []
    assert await store.get_workflow("..", "t1") is None
    with pytest.raises(InputInvalid):
        await put(store, run("a/b"))
    with pytest.raises(Conflict):
        await put(store, event("ex-1", 1), event("ex-1", 1))


def test_firestore_store_declares_that_it_reruns_transaction_bodies() -> None:
    from shared.adapters.firestore_store import FirestoreStore

    assert FirestoreStore.reruns_transactions is True
