"""One contract for every EventBus: the in-process bus and Pub/Sub (emulator).

What the engine's ``publish`` step relies on: the message reaches the topic's
subscribers with its data and attributes, the returned id names it, and publishing
the same logical message again (same dedup key) returns the same id.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from shared.adapters.local_bus import LocalEventBus
from shared.ports import EventBus

Received = Callable[[int], Any]


@asynccontextmanager
async def _local(request: pytest.FixtureRequest) -> AsyncIterator[tuple[EventBus, Received]]:
    bus = LocalEventBus()
    seen: list[tuple[str, Any, dict[str, str]]] = []

    async def subscriber(message: Any) -> None:
        seen.append((message.message_id, message.data, dict(message.attributes)))

    bus.subscribe("orders", subscriber)

    async def received(count: int) -> list[tuple[str, Any, dict[str, str]]]:
        await bus.drain(5)
        return seen[:count]

    try:
        yield bus, received
    finally:
        await bus.close()


@asynccontextmanager
async def _pubsub(request: pytest.FixtureRequest) -> AsyncIterator[tuple[EventBus, Received]]:
    sys.path.insert(0, str(Path(__file__).parents[1] / "cloud"))  # the emulator helpers
    from test_pubsub_emulator import make_topic, pull

    from shared.adapters.pubsub_bus import PubSubEventBus

    project = request.getfixturevalue("pubsub_project")
    subscription = make_topic(project, "orders")
    bus = PubSubEventBus(project)

    async def received(count: int) -> list[tuple[str, Any, dict[str, str]]]:
        messages = await asyncio.to_thread(pull, subscription, count)
        return [(m.message_id, json.loads(m.data), dict(m.attributes)) for m in messages]

    try:
        yield bus, received
    finally:
        await bus.close()


@pytest.fixture(params=["local", pytest.param("pubsub", marks=pytest.mark.emulator)])
def open_bus(request: pytest.FixtureRequest) -> Callable[[], Any]:
    factory = _local if request.param == "local" else _pubsub
    return lambda: factory(request)


async def test_a_message_reaches_the_subscribers(open_bus: Callable[[], Any]) -> None:
    async with open_bus() as (bus, received):
        message_id = await bus.publish("orders", {"amount": 120}, {"source": "shop"}, "run-1")
        [(got_id, data, attributes)] = await received(1)
    assert got_id == message_id
    assert data == {"amount": 120}
    assert attributes["source"] == "shop"


async def test_the_same_logical_message_keeps_its_id(open_bus: Callable[[], Any]) -> None:
    async with open_bus() as (bus, received):
        first = await bus.publish("orders", {"n": 1}, {}, "run-7")
        again = await bus.publish("orders", {"n": 1}, {}, "run-7")
        other = await bus.publish("orders", {"n": 2}, {}, "run-8")
        got = await received(2)
    assert first == again != other
    assert sorted(d["n"] for _, d, _ in got) == [1, 2]
