"""The CheckpointStore port's contract, run against every adapter (memory, SQLite, and
Firestore on the emulator)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from checkpoint_stores import STORES, store_params
from google.cloud.firestore import AsyncClient

from shared.ports.checkpoints import (
    CheckpointListing,
    CheckpointRecord,
    CheckpointStore,
    CheckpointWrite,
    execution_of,
    thread_id_for,
)


@pytest.fixture(params=store_params())
async def store(request: pytest.FixtureRequest) -> AsyncIterator[CheckpointStore]:
    async with STORES[request.param](request) as opened:
        yield opened


T1 = thread_id_for("exec-1", "run-a")
T2 = thread_id_for("exec-1", "run-b")
T3 = thread_id_for("exec-2", "run-a")


def record(
    thread_id: str, checkpoint_id: str, ns: str = "", parent: str | None = None
) -> CheckpointRecord:
    return CheckpointRecord(
        thread_id=thread_id,
        checkpoint_ns=ns,
        checkpoint_id=checkpoint_id,
        execution_id=execution_of(thread_id),
        parent_checkpoint_id=parent,
        checkpoint_type="msgpack",
        checkpoint=f"state {thread_id} {ns} {checkpoint_id}".encode() + b"\x00\xff",
        metadata_type="json",
        metadata=b'{"step": 1}',
    )


def write(
    thread_id: str, checkpoint_id: str, task_id: str, idx: int, value: bytes, path: str = ""
) -> CheckpointWrite:
    return CheckpointWrite(
        thread_id=thread_id,
        checkpoint_ns="",
        checkpoint_id=checkpoint_id,
        task_id=task_id,
        idx=idx,
        channel=f"ch{idx}",
        value_type="bytes",
        value=value,
        task_path=path,
    )


async def _seed(store: CheckpointStore) -> None:
    for n in range(1, 5):
        await store.put_checkpoint(record(T1, f"c{n}", parent=f"c{n - 1}" if n > 1 else None))
    await store.put_checkpoint(record(T1, "c9", ns="sub:1"))
    await store.put_checkpoint(record(T2, "c5"))
    await store.put_checkpoint(record(T3, "c6"))


def ids(records: list[CheckpointRecord]) -> list[str]:
    return [r.checkpoint_id for r in records]


async def test_get_by_id_and_newest_of_a_namespace(store: CheckpointStore) -> None:
    await _seed(store)
    assert await store.get_checkpoint(T1, "", "c2") == record(T1, "c2", parent="c1")
    newest = await store.get_checkpoint(T1, "", None)
    assert newest == record(T1, "c4", parent="c3")
    assert await store.get_checkpoint(T1, "sub:1", None) == record(T1, "c9", ns="sub:1")
    assert await store.get_checkpoint(T1, "other", None) is None
    assert await store.get_checkpoint(T1, "", "c9") is None
    assert await store.get_checkpoint(thread_id_for("exec-9", "r"), "", None) is None


async def test_put_replaces_the_same_key(store: CheckpointStore) -> None:
    await store.put_checkpoint(record(T1, "c1"))
    changed = record(T1, "c1", parent="c0")
    await store.put_checkpoint(changed)
    assert await store.get_checkpoint(T1, "", "c1") == changed
    assert ids(await store.list_checkpoints(CheckpointListing(thread_id=T1))) == ["c1"]


async def test_listings(store: CheckpointStore) -> None:
    await _seed(store)

    async def listed(**kwargs: object) -> list[str]:
        return ids(await store.list_checkpoints(CheckpointListing(**kwargs)))  # type: ignore[arg-type]

    assert await listed(thread_id=T1, checkpoint_ns="") == ["c4", "c3", "c2", "c1"]
    assert await listed(thread_id=T1) == ["c9", "c4", "c3", "c2", "c1"]
    assert await listed(thread_id=T1, checkpoint_ns="", limit=2) == ["c4", "c3"]
    assert await listed(thread_id=T1, checkpoint_ns="", limit=0) == []
    assert await listed(thread_id=T1, checkpoint_ns="", before="c3") == ["c2", "c1"]
    assert await listed(thread_id=T1, before="c3", limit=1) == ["c2"]
    assert await listed(thread_id=T1, checkpoint_ns="", checkpoint_id="c2") == ["c2"]
    assert await listed(thread_id=T1, checkpoint_id="c9") == ["c9"]
    assert await listed(thread_id=T2) == ["c5"]
    assert await listed() == ["c9", "c6", "c5", "c4", "c3", "c2", "c1"]
    assert await listed(limit=3) == ["c9", "c6", "c5"]
    assert await listed(checkpoint_ns="sub:1") == ["c9"]


async def test_writes_keep_regular_and_replace_special(store: CheckpointStore) -> None:
    await _seed(store)
    await store.put_writes(
        [write(T1, "c4", "task-b", 0, b"b0", "p2"), write(T1, "c4", "task-b", 1, b"b1", "p2")]
    )
    await store.put_writes([write(T1, "c4", "task-a", 0, b"a0", "p2")])
    await store.put_writes([write(T1, "c4", "task-z", 0, b"z0", "p1")])
    await store.put_writes([write(T1, "c4", "task-b", 0, b"changed", "p2")])
    await store.put_writes([write(T1, "c4", "task-e", -1, b"first")])
    await store.put_writes([write(T1, "c4", "task-e", -1, b"second")])
    found = await store.get_writes(T1, "", "c4")
    assert [(w.task_id, w.idx, w.value) for w in found] == [
        ("task-e", -1, b"second"),
        ("task-z", 0, b"z0"),
        ("task-a", 0, b"a0"),
        ("task-b", 0, b"b0"),
        ("task-b", 1, b"b1"),
    ]
    assert found[1] == write(T1, "c4", "task-z", 0, b"z0", "p1")
    assert await store.get_writes(T1, "", "c3") == []
    assert await store.get_writes(T2, "", "c4") == []


async def test_delete_thread_takes_every_namespace_and_its_writes(store: CheckpointStore) -> None:
    await _seed(store)
    await store.put_writes([write(T1, "c4", "t", 0, b"x"), write(T2, "c5", "t", 0, b"y")])
    await store.delete_thread(T1)
    assert await store.list_checkpoints(CheckpointListing(thread_id=T1)) == []
    assert await store.get_writes(T1, "", "c4") == []
    assert ids(await store.list_checkpoints(CheckpointListing())) == ["c6", "c5"]
    assert [w.value for w in await store.get_writes(T2, "", "c5")] == [b"y"]


async def test_delete_for_execution_is_retention(store: CheckpointStore) -> None:
    await _seed(store)
    await store.put_writes([write(T2, "c5", "t", 0, b"y"), write(T3, "c6", "t", 0, b"z")])
    assert await store.delete_for_execution("exec-1") == 6
    assert ids(await store.list_checkpoints(CheckpointListing())) == ["c6"]
    assert await store.get_writes(T2, "", "c5") == []
    assert [w.value for w in await store.get_writes(T3, "", "c6")] == [b"z"]
    assert await store.delete_for_execution("exec-1") == 0
    assert await store.delete_for_execution("exec") == 0  # a prefix is not an execution


async def test_thread_ids_name_an_execution_and_a_run(store: CheckpointStore) -> None:
    bad = record(T1, "c1")
    with pytest.raises(ValueError):
        await store.put_checkpoint(CheckpointRecord(**{**bad.__dict__, "thread_id": "no-run"}))
    with pytest.raises(ValueError):
        await store.put_writes([write("a/b/c", "c1", "t", 0, b"x")])
    assert await store.list_checkpoints(CheckpointListing()) == []


def test_firestore_checkpoint_queries_need_no_composite_index() -> None:
    """``test_firestore_indexes`` checks the store's queries; the checkpoint queries are
    checked here with its rules: none needs a composite index."""
    from google.auth.credentials import AnonymousCredentials
    from test_firestore_indexes import needed_index

    from shared.adapters import _firestore_queries as queries

    client = AsyncClient(project="indexes", credentials=AnonymousCredentials())
    built = [
        queries.checkpoints_between(client, "checkpoints", "a-", "a.", None),
        queries.checkpoints_between(client, "checkpoints", "a-", "a-0f", 1),
        queries.checkpoints_of_thread(client, "checkpoints", "e/r"),
        queries.checkpoints_of_execution(client, "checkpoints", "e"),
    ]
    assert [needed_index(query) for query in built] == [None] * len(built)
