"""Which tenant a task belongs to, for the task queues' fairness (local round robin,
Cloud Tasks queue shards).

A ``StepTask`` carries ids only; the tenant is the execution's, read through an injected
resolver (``execution_id -> tenant``, backed by the store) and remembered per execution
in a bounded LRU: an execution never changes tenant, and its every hop asks again.
An execution that cannot be resolved (missing, resolver failing or slower than
``timeout``) has no tenant here: the caller puts its task in a default bucket, it never
drops it. Unknown executions are not remembered (they may be written a moment later).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable

__all__ = ["TenantCache", "TenantResolver"]

logger = logging.getLogger(__name__)

TenantResolver = Callable[[str], Awaitable[str | None]]
"""``execution_id -> tenant`` (None when the execution is unknown)."""


class TenantCache:
    """A resolver's answers per execution id, the ``size`` most recently used kept."""

    def __init__(self, resolver: TenantResolver, *, size: int = 10_000, timeout: float = 5.0):
        if size < 1:
            raise ValueError("tenant cache size must be at least 1")
        self._resolver = resolver
        self._size = size
        self.timeout = timeout
        self._tenants: OrderedDict[str, str] = OrderedDict()
        self.unresolved = 0
        """Lookups that found no tenant (missing execution, failure, timeout)."""

    async def tenant_of(self, execution_id: str) -> str | None:
        """The execution's tenant, or None if it cannot be told now."""
        cached = self._tenants.get(execution_id)
        if cached is not None:
            self._tenants.move_to_end(execution_id)
            return cached
        try:
            async with asyncio.timeout(self.timeout):
                tenant = await self._resolver(execution_id)
        except Exception:
            logger.warning("tenant of execution %s not resolved", execution_id, exc_info=True)
            tenant = None
        if not tenant:
            self.unresolved += 1
            return None
        self._tenants[execution_id] = tenant
        if len(self._tenants) > self._size:
            self._tenants.popitem(last=False)
        return tenant
