"""Sharded rate-limit buckets on the Firestore emulator: two limiters with their own
clients (two instances of a service) share the buckets, spread the writes over the
shard documents and together never let more through than the bucket holds."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
from google.cloud.firestore import AsyncClient

from shared.adapters.firestore_limits import COLLECTION, FirestoreRateLimiter, shard_count
from shared.ports import RateLimit

pytestmark = pytest.mark.emulator

Make = Callable[[], FirestoreRateLimiter]


@pytest.fixture
async def limiters(firestore_project: str) -> AsyncIterator[tuple[Make, list[float]]]:
    """Limiters on one emulator project, each with its own client, on one frozen clock."""
    now = [5000.0]
    opened: list[FirestoreRateLimiter] = []

    def make() -> FirestoreRateLimiter:
        limiter = FirestoreRateLimiter(
            lambda: AsyncClient(project=firestore_project), clock=lambda: now[0], attempts=12
        )
        opened.append(limiter)
        return limiter

    yield make, now
    for limiter in opened:
        await limiter.close()


def test_shards_follow_the_rate_within_the_burst_and_the_cap() -> None:
    assert shard_count(RateLimit(0.5, 100), max_shards=16) == 1
    assert shard_count(RateLimit(8, 16), max_shards=16) == 8
    assert shard_count(RateLimit(100, 1000), max_shards=16) == 16
    assert shard_count(RateLimit(100, 3), max_shards=16) == 3  # a shard holds a whole token


async def test_two_instances_together_respect_the_total(
    limiters: tuple[Make, list[float]], firestore_project: str
) -> None:
    make, now = limiters
    one, two = make(), make()
    limit = RateLimit(rate=8, burst=16)  # 8 shards of 2 tokens, 1 token/s each

    async def burst(limiter: FirestoreRateLimiter, count: int) -> int:
        allowed = 0
        for _ in range(count):
            allowed += (await limiter.acquire("tenant:t", limit)).allowed
        return allowed

    frozen = await asyncio.gather(burst(one, 30), burst(two, 30))
    assert sum(frozen) <= 16  # no refill while the clock stands still: the burst, no more
    assert sum(frozen) >= 12  # and most of it (a contended shard may refuse one)

    client = AsyncClient(project=firestore_project)
    shards = [doc async for doc in client.collection(COLLECTION).stream()]
    assert len(shards) == 8
    left = sum(float((doc.to_dict() or {})["tokens"]) for doc in shards)
    assert left + sum(frozen) == pytest.approx(16.0)

    now[0] += 1.0  # one second: every shard earns one token back, 8 in all
    later = await asyncio.gather(burst(one, 20), burst(two, 20))
    assert sum(later) <= 8
    assert sum(later) >= 4  # two random picks per request find most of them
    refused = await one.acquire("tenant:t", limit)
    assert not refused.allowed and 0 < refused.retry_after <= 1.0
