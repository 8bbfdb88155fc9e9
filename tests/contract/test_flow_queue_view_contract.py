"""Contract of the queue reads behind flow-control visibility (``queue_position`` and
``queue_summary``) on every store: memory, SQLite and Firestore (emulator); and the
Firestore queries they run are served by the declared indexes."""

from __future__ import annotations

from _builders import Store, at, execution
from google.auth.credentials import AnonymousCredentials
from google.cloud.firestore import AsyncClient
from test_firestore_indexes import NAMES, declared, needed_index, served_by
from test_flow_store_contract import put_all, queued

from shared.adapters import _firestore_queries as queries
from shared.models import ExecutionStatus


async def _queue(store: Store) -> None:
    """Key ``w:wf:a`` of t1: priorities 5 (queued at 20 and 30) and 0 (at 10 and 40)."""
    await put_all(
        store,
        queued("high-early", "w:wf:a", 5, 20),
        queued("high-late", "w:wf:a", 5, 30),
        queued("low-early", "w:wf:a", 0, 10),
        queued("low-late", "w:wf:a", 0, 40),
        queued("other-key", "w:wf:b", 9, 0),
        queued("other-tenant", "w:wf:a", 9, 0, tenant="t2"),
        execution("running", tenant="t1"),
    )


async def test_position_counts_higher_priority_then_earlier_ones(store: Store) -> None:
    await _queue(store)
    places = {
        name: await store.queue_position("t1", "w:wf:a", priority, at(seconds))
        for name, priority, seconds in [
            ("high-early", 5, 20),
            ("high-late", 5, 30),
            ("low-early", 0, 10),
            ("low-late", 0, 40),
        ]
    }
    assert places == {"high-early": 1, "high-late": 2, "low-early": 3, "low-late": 4}
    # A place not taken: after everything of a higher priority, before later equals.
    assert await store.queue_position("t1", "w:wf:a", 3, at(0)) == 3
    assert await store.queue_position("t1", "w:wf:a", 9, at(99)) == 1
    assert await store.queue_position("t1", "w:wf:a", -1, at(0)) == 5
    # Other keys and tenants are other queues.
    assert await store.queue_position("t2", "w:wf:a", 0, at(99)) == 2
    assert await store.queue_position("t1", "w:wf:c", 0, at(99)) == 1


async def test_position_count_is_bounded(store: Store) -> None:
    await _queue(store)
    assert await store.queue_position("t1", "w:wf:a", 0, at(40), most=2) == 3
    assert await store.queue_position("t1", "w:wf:a", 0, at(40), most=0) == 1


async def test_position_follows_the_queue_as_it_moves(store: Store) -> None:
    await _queue(store)
    head = queued("high-early", "w:wf:a", 5, 20)
    head.status = ExecutionStatus.RUNNING  # promoted: it leaves the queue
    await put_all(store, head)
    assert await store.queue_position("t1", "w:wf:a", 0, at(40)) == 3


async def test_summary_counts_a_key_and_finds_its_oldest(store: Store) -> None:
    await _queue(store)
    summary = await store.queue_summary("t1", "w:wf:a")
    assert summary.queued == 4
    # The oldest is low-early (priority 0): not the head of the queue.
    assert summary.oldest_queued_at == at(10)
    assert (await store.queue_summary("t1", "w:wf:a", most=3)).queued == 3
    empty = await store.queue_summary("t1", "w:wf:none")
    assert (empty.queued, empty.oldest_queued_at) == (0, None)
    assert (await store.queue_summary("t2", "w:wf:a")).oldest_queued_at == at(0)


def test_the_firestore_queue_reads_use_the_declared_index() -> None:
    client = AsyncClient(project="indexes", credentials=AnonymousCredentials())
    built = [
        queries.queued_ahead(client, NAMES, "t", "w:wf:a", 0, 1.0),
        queries.queued_below(client, NAMES, "t", "w:wf:a", 0),
    ]
    needs = [needed_index(query) for query in built]
    assert None not in needs
    assert all(any(served_by(need, index) for index in declared()) for need in needs if need)
    # The same index as the promotion reads (no new one to declare).
    assert set(needs) == {needed_index(queries.queued_on(client, NAMES, "t", "w:wf:a"))}
