"""The SQLite writer's group commits are fair across tenants (shared/ports/fairness.py).

Transactions say whose work they are with ``working_for``; when several tenants wait,
a group holds at most ``group_per_tenant`` transactions of each, least recently served
tenant first, so a light tenant's one transaction is in the next group instead of
behind a flood. A tenant writing alone is not capped (its groups stay whole).
"""

from __future__ import annotations

import asyncio
from contextvars import ContextVar
from pathlib import Path

import pytest

from shared.adapters.sqlite_store import SqliteStore
from shared.errors import Conflict
from shared.ports import ExecutionTx
from shared.ports.fairness import work_tenant, working_for


class Log:
    """Transaction bodies that record who ran, in which group, in which order."""

    def __init__(self, store: SqliteStore) -> None:
        self.store = store
        self.ran: list[tuple[str, int]] = []

    async def write(self, tenant: str, index: int, fail: bool = False) -> str:
        async def body(tx: ExecutionTx) -> str:
            assert await tx.get_execution("none") is None  # a real read in the group
            self.ran.append((tenant, self.store._groups))
            if fail:
                raise Conflict("refused")
            return f"{tenant}-{index}"

        with working_for(tenant):
            return await self.store.run_transaction(body)


@pytest.fixture
def store(tmp_path: Path) -> SqliteStore:
    return SqliteStore(tmp_path / "fair.db")


async def test_a_light_tenant_is_in_the_next_group_not_behind_a_flood(
    store: SqliteStore,
) -> None:
    log = Log(store)
    flood = [asyncio.create_task(log.write("a", i)) for i in range(40)]
    light = asyncio.create_task(log.write("b", 0))
    results = await asyncio.gather(*flood, light)
    assert results == [f"a-{i}" for i in range(40)] + ["b-0"]
    order = [tenant for tenant, _ in log.ran]
    most = store.group_per_tenant
    assert most is not None
    assert order.index("b") <= most  # after at most one tenant's share
    b_group = dict((t, g) for t, g in log.ran)["b"]
    in_b_group = [t for t, g in log.ran if g == b_group]
    assert in_b_group.count("a") <= most
    assert len({g for _, g in log.ran}) >= 40 // most  # A's flood spread over groups
    await store.close()


async def test_first_come_first_served_groups_put_the_light_tenant_last(
    store: SqliteStore,
) -> None:
    """The same arrivals without the cap: B's one transaction waits for all of A's
    (what the cap fixes; also shows the test above can fail)."""
    store.group_per_tenant = None
    log = Log(store)
    await asyncio.gather(*(log.write("a", i) for i in range(40)), log.write("b", 0))
    assert [tenant for tenant, _ in log.ran].index("b") == 40
    await store.close()


async def test_a_tenant_alone_keeps_whole_groups(store: SqliteStore) -> None:
    log = Log(store)
    await asyncio.gather(*(log.write("a", i) for i in range(40)))
    assert len({g for _, g in log.ran}) == 1
    await store.close()


async def test_each_transaction_fails_alone_and_every_caller_is_answered(
    store: SqliteStore,
) -> None:
    log = Log(store)
    calls = [log.write("a", i, fail=i % 3 == 0) for i in range(20)]
    calls += [log.write("b", i, fail=i == 1) for i in range(3)]
    results = await asyncio.gather(*calls, return_exceptions=True)
    failed = [r for r in results if isinstance(r, Conflict)]
    assert len(failed) == 7 + 1
    assert results[1] == "a-1" and results[20] == "b-0" and results[22] == "b-2"
    assert isinstance(results[0], Conflict) and isinstance(results[21], Conflict)
    assert len(log.ran) == 23
    await store.close()


async def test_unclaimed_work_does_not_make_a_tenant_share(store: SqliteStore) -> None:
    """A sweeper's transactions (no tenant) do not cap a tenant working alone."""
    log = Log(store)
    assert work_tenant() is None

    async def unclaimed(tx: ExecutionTx) -> None:
        log.ran.append(("-", store._groups))

    await asyncio.gather(*(log.write("a", i) for i in range(30)), store.run_transaction(unclaimed))
    assert len({g for _, g in log.ran}) == 1
    await store.close()


_CALLER: ContextVar[str] = ContextVar("caller", default="-")


async def test_each_body_runs_in_its_callers_context(store: SqliteStore) -> None:
    """One writer task runs every caller's body; each sees its caller's context
    variables (start controls read one their caller set), across real suspensions."""
    seen: dict[str, list[str]] = {}

    async def call(name: str) -> str:
        _CALLER.set(name)

        async def body(tx: ExecutionTx) -> str:
            seen.setdefault(name, []).append(_CALLER.get())
            await asyncio.sleep(0.001)  # a real suspension inside the body
            seen[name].append(_CALLER.get())
            _CALLER.set("changed-in-body")  # stays in the caller's context copy
            return _CALLER.get()

        with working_for(name[0]):
            result = await store.run_transaction(body)
        assert _CALLER.get() == name  # the caller's own value is untouched
        return result

    names = [f"{tenant}{i}" for tenant in "ab" for i in range(6)]
    results = await asyncio.gather(*(asyncio.create_task(call(n)) for n in names))
    assert results == ["changed-in-body"] * len(names)
    assert seen == {name: [name, name] for name in names}
    await store.close()


async def test_a_body_failing_after_a_suspension_fails_alone(store: SqliteStore) -> None:
    async def failing(tx: ExecutionTx) -> None:
        await asyncio.sleep(0)
        raise Conflict("late refusal")

    async def fine(tx: ExecutionTx) -> int:
        await asyncio.sleep(0)
        return 7

    outcome = await asyncio.gather(
        store.run_transaction(failing), store.run_transaction(fine), return_exceptions=True
    )
    assert isinstance(outcome[0], Conflict) and outcome[1] == 7
    await store.close()


async def test_a_light_tenant_closes_its_group(store: SqliteStore) -> None:
    """B's one transaction is all B has: its group ends with it, with no share of C's
    flood behind it (C waits for the next group)."""
    log = Log(store)
    flood = [asyncio.create_task(log.write("a", i)) for i in range(20)]
    light = asyncio.create_task(log.write("b", 0))
    later = [asyncio.create_task(log.write("c", i)) for i in range(20)]
    await asyncio.gather(*flood, light, *later)
    b_group = dict(log.ran)["b"]
    assert [t for t, g in log.ran if g == b_group][-1] == "b"
    assert dict(log.ran)["c"] > b_group
    await store.close()


async def test_between_unserved_tenants_the_lighter_goes_first(store: SqliteStore) -> None:
    """A flood whose queue empties in every group is forgotten, like a tenant coming
    back from idle: it ties with B, and the one with fewer transactions waiting goes
    first. (Without the tie-break, arrival order put B behind A's six: B's start call
    under a flood went from 1.5 to 5 ms in bench/fairness.py when A's deliveries
    stopped writing claims and A's queue started emptying.)"""
    log = Log(store)
    flood = [asyncio.create_task(log.write("a", i)) for i in range(6)]  # A's whole queue fits
    light = asyncio.create_task(log.write("b", 0))
    await asyncio.gather(*flood, light)
    order = [tenant for tenant, _ in log.ran]
    assert order[0] == "b", order
    b_group = dict(log.ran)["b"]
    assert [t for t, g in log.ran if g == b_group] == ["b"]  # and it closed its group
    await store.close()


async def test_a_newcomer_cuts_a_shared_group_short(store: SqliteStore) -> None:
    """A group shared by A (eight of its twelve) and C (eight of its thirteen: A has
    fewer waiting, A first) runs; during A's first body B starts waiting: the group
    ends at the next body, B is the very next group, and the transactions that had not
    run go back in front of their queues, in their order."""
    log = Log(store)
    b_task: list[asyncio.Task[str]] = []

    async def trigger(tx: ExecutionTx) -> str:
        log.ran.append(("a", store._groups))
        b_task.append(asyncio.create_task(log.write("b", 0)))
        return "a-0"

    async def a_first() -> str:
        with working_for("a"):
            return await store.run_transaction(trigger)

    await log.write("x", 0)  # another tenant wrote just before: the groups are shared
    tasks = [asyncio.create_task(a_first())]
    tasks += [asyncio.create_task(log.write("a", i)) for i in range(1, 12)]
    tasks += [asyncio.create_task(log.write("c", i)) for i in range(13)]
    results = await asyncio.gather(*tasks)
    assert results == [f"a-{i}" for i in range(12)] + [f"c-{i}" for i in range(13)]
    assert await b_task[0] == "b-0"
    first = log.ran[1][1]  # the group of A's first body
    assert [t for t, g in log.ran if g == first] == ["a"]  # cut after one body
    assert dict(log.ran)["b"] == first + 1
    assert [t for t, _ in log.ran].count("a") == 12
    await store.close()


async def test_a_shared_group_runs_whole_when_nobody_new_comes(store: SqliteStore) -> None:
    """The bodies of a shared group yield between them, and without a newcomer it is
    not cut: eight of A's twelve and eight of C's thirteen share one group (shows the
    test above can fail)."""
    log = Log(store)
    await log.write("x", 0)
    await asyncio.gather(
        *(log.write("a", i) for i in range(12)), *(log.write("c", i) for i in range(13))
    )
    first = log.ran[1][1]
    assert [t for t, g in log.ran if g == first] == ["a"] * 8 + ["c"] * 8
    await store.close()


@pytest.mark.parametrize(("mode", "on_loop"), [("NORMAL", True), ("OFF", True), ("FULL", False)])
async def test_only_a_commit_that_fsyncs_goes_to_a_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str, on_loop: bool
) -> None:
    """At NORMAL (WAL: no fsync at COMMIT) the group's COMMIT runs on the loop; at FULL
    it goes to a thread (an fsync per COMMIT)."""
    import threading

    store = SqliteStore(tmp_path / "mode.db", synchronous=mode)
    threads: list[str] = []
    real = asyncio.to_thread

    async def spy(fn, /, *args, **kwargs):  # type: ignore[no-untyped-def]
        threads.append(str(args[1]) if len(args) > 1 else fn.__name__)
        return await real(fn, *args, **kwargs)

    monkeypatch.setattr(asyncio, "to_thread", spy)
    log = Log(store)
    await asyncio.gather(*(log.write("a", i) for i in range(3)))
    assert ("COMMIT" in threads) is not on_loop
    assert threading.active_count() >= 1
    await store.close()


async def test_the_wal_is_checkpointed_and_stays_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Automatic checkpoints are off on the writer (they would fsync on the loop); every
    ``CHECKPOINT_CHANGES`` rows a checkpoint runs beside it, and when the WAL file passed
    ``WAL_BYTES_MOST`` one catches up under the writer: the WAL starts over instead of
    growing with every row, and nothing is lost."""
    import sqlite3

    from shared.adapters import sqlite_store

    monkeypatch.setattr(sqlite_store, "WAL_BYTES_MOST", 100_000)
    path = tmp_path / "wal.db"
    store = SqliteStore(path)
    assert store._conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0

    async def rows(tx: ExecutionTx) -> None:
        for _ in range(50):
            store._conn.execute(
                "INSERT INTO tenant_storage (tenant, bytes) VALUES (?, 1)"
                " ON CONFLICT (tenant) DO UPDATE SET bytes = bytes + 1",
                (f"t{store._conn.total_changes % 97}",),
            )

    wal = Path(f"{path}-wal")
    sizes = []
    for _ in range(10):
        for _ in range(sqlite_store.CHECKPOINT_CHANGES // 50):
            await store.run_transaction(rows)
        sizes.append(wal.stat().st_size)
    assert store._checkpointer is not None
    assert sizes[-1] <= 3 * sizes[0], sizes  # without checkpoints: about 10 times
    await store.close()
    other = sqlite3.connect(path)
    total = other.execute("SELECT SUM(bytes) FROM tenant_storage").fetchone()[0]
    assert total == 10 * sqlite_store.CHECKPOINT_CHANGES
    other.close()


async def test_a_checkpoint_does_not_hold_the_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While a checkpoint is stuck in its thread, transactions still commit."""
    import threading

    from shared.adapters import sqlite_store

    gate = threading.Event()
    real = sqlite_store._run_to_end

    def slow(conn: object, sql: str) -> list[object]:
        if "wal_checkpoint" in sql:
            gate.wait(10)
        return real(conn, sql)  # type: ignore[arg-type]

    monkeypatch.setattr(sqlite_store, "_run_to_end", slow)
    store = SqliteStore(tmp_path / "cp.db")
    log = Log(store)
    store._start_checkpoint()
    assert store._checkpointer is not None
    await asyncio.sleep(0.05)
    assert not store._checkpointer.done()
    assert await asyncio.wait_for(log.write("a", 1), 5) == "a-1"
    gate.set()
    await store.close()
