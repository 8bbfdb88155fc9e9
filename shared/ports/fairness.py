"""Whose work this is: the tenant a coroutine works for, for fair shared resources.

A start request (the app's start path) and a step delivery (the local dispatcher) say
which tenant they work for with ``working_for``; a shared resource that serves many
callers at once (the SQLite store's writer queue) reads ``work_tenant()`` to serve the
tenants in turn instead of first come, first served. Context variables follow asyncio
tasks, so every store call made inside the block is attributed to that tenant. Nothing
else depends on it: unset (``None``) is the shared bucket of work nobody claimed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

__all__ = ["work_tenant", "working_for"]

_TENANT: ContextVar[str | None] = ContextVar("wfe_work_tenant", default=None)


def work_tenant() -> str | None:
    """The tenant the current task works for (None: not said)."""
    return _TENANT.get()


@contextmanager
def working_for(tenant: str | None) -> Iterator[None]:
    """Attribute the work done inside the block to ``tenant``."""
    token = _TENANT.set(tenant)
    try:
        yield
    finally:
        _TENANT.reset(token)
