"""FairGate: a tenant's start calls in flight are bounded only while tenants share."""

from __future__ import annotations

import asyncio

import pytest

from shared.app.fair_gate import FairGate


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Calls:
    """Start calls that hold their place until released; records the most at once."""

    def __init__(self, gate: FairGate) -> None:
        self.gate = gate
        self.most: dict[str, int] = {}
        self.running: dict[str, int] = {}
        self.order: list[str] = []
        self.release = asyncio.Event()

    async def call(self, tenant: str, hold: bool = True) -> None:
        async with self.gate.admit(tenant):
            self.running[tenant] = self.running.get(tenant, 0) + 1
            self.most[tenant] = max(self.most.get(tenant, 0), self.running[tenant])
            self.order.append(tenant)
            if hold:
                await self.release.wait()
            else:
                await asyncio.sleep(0)
            self.running[tenant] -= 1


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_tenant_alone_is_never_held() -> None:
    calls = Calls(FairGate(per_tenant=2, clock=Clock()))
    tasks = [asyncio.create_task(calls.call("a")) for _ in range(20)]
    await _settle()
    assert calls.running["a"] == 20
    calls.release.set()
    await asyncio.gather(*tasks)
    assert calls.gate.in_flight("a") == 0


async def test_while_sharing_a_flood_is_bounded_and_the_other_tenant_goes_first() -> None:
    calls = Calls(FairGate(per_tenant=2, clock=Clock()))
    light = asyncio.create_task(calls.call("b", hold=False))
    await _settle()
    flood = [asyncio.create_task(calls.call("a")) for _ in range(20)]
    await _settle()
    assert calls.running["a"] == 2  # B started within the window: A shares
    second = asyncio.create_task(calls.call("b", hold=False))
    await _settle()
    assert second.done()  # B's call went through at once, behind nobody
    calls.release.set()
    await asyncio.gather(light, *flood)
    assert calls.most["a"] == 2
    assert calls.gate.in_flight("a") == 0 and calls.gate.in_flight("b") == 0


async def test_the_bound_lifts_when_the_other_tenant_goes_quiet() -> None:
    clock = Clock()
    calls = Calls(FairGate(per_tenant=2, window=1.0, clock=clock))
    await calls.call("b", hold=False)
    flood = [asyncio.create_task(calls.call("a")) for _ in range(10)]
    await _settle()
    assert calls.running["a"] == 2
    clock.now = 5.0  # B last started 5 s ago
    late = asyncio.create_task(calls.call("a"))
    await _settle()
    assert calls.running["a"] == 3  # new calls are not held any more
    calls.release.set()
    await asyncio.gather(late, *flood)  # the held ones are let in as places free
    assert calls.gate.in_flight("a") == 0


async def test_a_cancelled_waiter_gives_its_place_on() -> None:
    calls = Calls(FairGate(per_tenant=1, clock=Clock()))
    await calls.call("b", hold=False)
    first = asyncio.create_task(calls.call("a"))
    waiter = asyncio.create_task(calls.call("a"))
    third = asyncio.create_task(calls.call("a"))
    await _settle()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    calls.release.set()
    await asyncio.gather(first, third)
    assert calls.most["a"] == 1 and calls.gate.in_flight("a") == 0


def test_per_tenant_must_be_positive() -> None:
    with pytest.raises(ValueError):
        FairGate(per_tenant=0)
