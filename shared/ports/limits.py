"""Rate limiting: a token bucket per key, kept by an adapter every instance shares.

``RateLimit`` is the policy (tokens per second, bucket size); ``take`` is the bucket
arithmetic, a pure function every adapter applies to the state it stores;
``RateLimiter`` is the port (memory, SQLite, Firestore adapters in ``shared/adapters``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

__all__ = ["Decision", "RateLimit", "RateLimiter", "take"]


@dataclass(frozen=True)
class RateLimit:
    """A token bucket: ``burst`` tokens at most, refilled at ``rate`` tokens per second.

    A full bucket lets ``burst`` requests through at once; after that, ``rate`` per
    second on average.
    """

    rate: float
    """Tokens added per second (the sustained requests per second)."""
    burst: float
    """Bucket capacity (the most requests let through at once)."""

    def __post_init__(self) -> None:
        if not (self.rate > 0 and math.isfinite(self.rate)):
            raise ValueError("rate must be a positive number")
        if not (self.burst >= 1 and math.isfinite(self.burst)):
            raise ValueError("burst must be at least 1")

    def split(self, shards: int) -> RateLimit:
        """The share of one of ``shards`` buckets that together make this one."""
        return RateLimit(self.rate / shards, max(1.0, self.burst / shards))


@dataclass(frozen=True)
class Decision:
    """The answer of ``RateLimiter.acquire``."""

    allowed: bool
    retry_after: float = 0.0
    """Seconds until the refused request would be let through (0 when allowed)."""


def take(
    limit: RateLimit, tokens: float | None, elapsed: float, cost: float = 1.0
) -> tuple[float, Decision]:
    """Refill a bucket holding ``tokens`` (None: a new, full bucket) for ``elapsed``
    seconds, then take ``cost`` tokens if it holds them.

    Returns the tokens left and the decision; a refused request takes nothing.
    """
    held = limit.burst if tokens is None else tokens
    available = min(limit.burst, max(0.0, held) + max(0.0, elapsed) * limit.rate)
    if available >= cost:
        return available - cost, Decision(True)
    return available, Decision(False, (cost - available) / limit.rate)


class RateLimiter(Protocol):
    """Token buckets by key, shared by every instance that uses the same backend."""

    async def acquire(self, key: str, limit: RateLimit, cost: float = 1.0) -> Decision:
        """Take ``cost`` tokens from the bucket ``key`` under ``limit``, if it holds them."""
        ...

    async def close(self) -> None:
        """Release connections (idempotent)."""
        ...
