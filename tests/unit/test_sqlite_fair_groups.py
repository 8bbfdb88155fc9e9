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
