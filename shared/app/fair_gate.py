"""A per-tenant bound on start calls in flight, while tenants share the process.

On one event loop, a tenant with many start requests in flight keeps that many tasks
ready at every round of the loop, and another tenant's one request waits for the round.
``FairGate.admit(tenant)`` lets at most ``per_tenant`` start calls of a tenant run at
once while two or more tenants started something in the last ``window`` seconds; the
excess waits in its tenant's own FIFO and is let in as that tenant's calls finish. A
tenant starting alone is never held (nobody to share with), so the gate costs a
single tenant nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

__all__ = ["FairGate"]


class FairGate:
    """Start calls in flight per tenant, bounded while tenants share the process."""

    def __init__(
        self,
        per_tenant: int = 8,
        *,
        window: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_tenant < 1:
            raise ValueError("per_tenant must be at least 1")
        self.per_tenant = per_tenant
        self.window = window
        self._clock = clock
        self._in_flight: dict[str, int] = {}
        self._waiting: dict[str, deque[asyncio.Future[None]]] = {}
        self._seen: dict[str, float] = {}

    def _sharing(self) -> bool:
        """Whether another tenant than one started something within ``window``."""
        horizon = self._clock() - self.window
        for tenant in [t for t, seen in self._seen.items() if seen < horizon]:
            if not self._in_flight.get(tenant) and not self._waiting.get(tenant):
                del self._seen[tenant]
        return len(self._seen) > 1

    def in_flight(self, tenant: str) -> int:
        """Start calls of ``tenant`` running now."""
        return self._in_flight.get(tenant, 0)

    @asynccontextmanager
    async def admit(self, tenant: str) -> AsyncIterator[None]:
        """Hold one of ``tenant``'s places for the block (waiting for one if needed)."""
        self._seen[tenant] = self._clock()
        if self._in_flight.get(tenant, 0) >= self.per_tenant and self._sharing():
            turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiting.setdefault(tenant, deque()).append(turn)
            try:
                await turn  # the place of a call that ended is handed over
            except asyncio.CancelledError:
                if turn.done() and not turn.cancelled():
                    self._release(tenant)  # handed over as we left: pass it on
                else:
                    waiting = self._waiting.get(tenant)
                    if waiting is not None and turn in waiting:
                        waiting.remove(turn)
                raise
        else:
            self._in_flight[tenant] = self._in_flight.get(tenant, 0) + 1
        try:
            yield
        finally:
            self._release(tenant)

    def _release(self, tenant: str) -> None:
        waiting = self._waiting.get(tenant)
        if waiting:
            if not self._sharing():  # alone again: let every waiting call in
                while waiting:
                    turn = waiting.popleft()
                    if not turn.done():
                        self._in_flight[tenant] = self._in_flight.get(tenant, 0) + 1
                        turn.set_result(None)
            else:
                while waiting:
                    turn = waiting.popleft()
                    if not turn.done():
                        turn.set_result(None)  # our place goes to it: count unchanged
                        return
        if not waiting:
            self._waiting.pop(tenant, None)
        count = self._in_flight.get(tenant, 0) - 1
        if count > 0:
            self._in_flight[tenant] = count
        else:
            self._in_flight.pop(tenant, None)
