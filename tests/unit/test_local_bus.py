"""LocalEventBus: deterministic ids, dedup, async delivery, history, isolation."""

from __future__ import annotations

import asyncio
import logging

import pytest

from shared.adapters.local_bus import LocalEventBus, message_id_for
from shared.ports import PublishedMessage


class Inbox:
    """A subscriber that keeps what it receives."""

    def __init__(self) -> None:
        self.messages: list[PublishedMessage] = []

    async def __call__(self, message: PublishedMessage) -> None:
        self.messages.append(message)


async def test_message_id_is_deterministic_and_republish_is_delivered_once() -> None:
    bus = LocalEventBus()
    inbox = Inbox()
    bus.subscribe("orders", inbox)
    first = await bus.publish("orders", {"n": 1}, {"kind": "created"}, "exec-1:created")
    again = await bus.publish("orders", {"n": 1}, {"kind": "created"}, "exec-1:created")
    assert first == again == message_id_for("orders", "exec-1:created")
    assert first.isdigit()
    assert await bus.drain(timeout=1.0)
    assert inbox.messages == [
        PublishedMessage("orders", {"n": 1}, {"kind": "created"}, first),
    ]
    assert len(bus.messages("orders")) == 1
    assert (bus.published, bus.duplicates) == (1, 1)


async def test_same_key_on_two_topics_is_two_messages() -> None:
    bus = LocalEventBus()
    first = await bus.publish("a", 1, {}, "key")
    second = await bus.publish("b", 1, {}, "key")
    assert first != second
    assert bus.topics() == ["a", "b"]


async def test_empty_dedup_key_means_no_dedup() -> None:
    bus = LocalEventBus()
    ids = {await bus.publish("t", {}, {}, "") for _ in range(3)}
    assert len(ids) == 3
    assert len(bus.messages("t")) == 3


async def test_delivery_happens_after_publish_returns() -> None:
    bus = LocalEventBus()
    inbox = Inbox()
    bus.subscribe("t", inbox)
    await bus.publish("t", "hello", {}, "k1")
    assert inbox.messages == []
    assert await bus.drain(timeout=1.0)
    assert [message.data for message in inbox.messages] == ["hello"]


async def test_subscriber_errors_are_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    bus = LocalEventBus()
    inbox = Inbox()

    async def broken(message: PublishedMessage) -> None:
        raise RuntimeError("subscriber bug")

    bus.subscribe("t", broken)
    bus.subscribe("t", inbox)
    with caplog.at_level(logging.ERROR, logger="shared.adapters.local_bus"):
        await bus.publish("t", 1, {}, "k1")
        assert await bus.drain(timeout=1.0)
    assert len(inbox.messages) == 1
    assert "subscriber bug" in caplog.text


async def test_only_subscribers_of_the_topic_receive_and_unsubscribe_works() -> None:
    bus = LocalEventBus()
    orders, other = Inbox(), Inbox()
    unsubscribe = bus.subscribe("orders", orders)
    bus.subscribe("other", other)
    await bus.publish("orders", 1, {}, "k1")
    await bus.drain()
    unsubscribe()
    await bus.publish("orders", 2, {}, "k2")
    await bus.drain()
    assert [message.data for message in orders.messages] == [1]
    assert other.messages == []


async def test_history_is_bounded_per_topic() -> None:
    bus = LocalEventBus(history=3)
    for index in range(5):
        await bus.publish("t", index, {}, f"k{index}")
    assert [message.data for message in bus.messages("t")] == [2, 3, 4]
    assert bus.messages("unknown") == []


async def test_seen_keys_are_bounded() -> None:
    bus = LocalEventBus(max_seen=2)
    inbox = Inbox()
    bus.subscribe("t", inbox)
    for key in ("k1", "k2", "k3", "k3", "k1"):
        await bus.publish("t", key, {}, key)
    await bus.drain()
    assert [message.data for message in inbox.messages] == ["k1", "k2", "k3", "k1"]


async def test_payload_is_copied_at_publish() -> None:
    bus = LocalEventBus()
    data = {"items": [1]}
    attributes = {"a": "1"}
    await bus.publish("t", data, attributes, "k1")
    data["items"].append(2)
    attributes["a"] = "changed"
    (message,) = bus.messages("t")
    assert message.data == {"items": [1]}
    assert message.attributes == {"a": "1"}


async def test_drain_times_out_and_close_cancels_slow_subscribers() -> None:
    bus = LocalEventBus()
    cancelled = asyncio.Event()

    async def slow(message: PublishedMessage) -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    bus.subscribe("t", slow)
    await bus.publish("t", 1, {}, "k1")
    assert not await bus.drain(timeout=0.05)
    assert not cancelled.is_set()
    await bus.close()
    assert cancelled.is_set()
    assert await bus.drain(timeout=0.01)


def test_rejects_invalid_bounds() -> None:
    with pytest.raises(ValueError):
        LocalEventBus(max_seen=0)
