"""Fixtures of the HTTP edge tests (``tests/functions``, ``tests/security``): a started
local runtime, the edge over it, and the management app served in-process."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from shared.api.auth import Authenticator, LocalDevAuthenticator
from shared.api.edge import Edge
from shared.api.identity import InvokerKind
from shared.api.rest import create_management_app
from shared.composition import LocalRuntime, build_local
from shared.composition.edge import build_edge
from shared.settings import Settings


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[LocalRuntime]:
    """A started local runtime on a fresh SQLite file."""
    local = build_local(Settings.local_mode(db_path=str(tmp_path / "t.db")))
    await local.start()
    try:
        yield local
    finally:
        await _settle(local)
        await local.stop()


async def _settle(local: LocalRuntime, timeout: float = 5.0) -> None:
    """Let in-flight step deliveries finish before the runtime stops.

    Stopping the dispatcher cancels its workers; a worker cancelled while SQLite
    commits can lose the cancellation (the rollback after the commit fails) and
    ``stop()`` then never returns. Waiting for a quiet moment avoids that race.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        due = local.queue.next_due()
        soon = due is not None and due <= datetime.now(UTC) + timedelta(seconds=0.5)
        if local.queue.in_flight_count() == 0 and not soon:
            return
        await asyncio.sleep(0.01)


@pytest.fixture
def authenticator() -> Authenticator:
    """Who the edge lets in: local development mode unless a test overrides it."""
    return LocalDevAuthenticator()


@pytest.fixture
async def edge(runtime: LocalRuntime, authenticator: Authenticator) -> AsyncIterator[Edge]:
    """The edge over the started runtime (its broker fed), as the composition root builds it."""
    built = build_edge(runtime.settings, runtime=runtime, authenticator=authenticator)
    await built.start()
    try:
        yield built
    finally:
        await built.stop()


def client_for(app: object, base_url: str = "http://create.test") -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)  # type: ignore[arg-type]


@pytest.fixture
async def api(edge: Edge) -> AsyncIterator[httpx.AsyncClient]:
    """The ``create`` function's app (FastAPI) in-process, over the test's edge."""
    async with client_for(create_management_app(edge, lifespan=False)) as client:
        yield client


def invoker_headers(edge: Edge, kind: InvokerKind = "tasks") -> dict[str, str]:
    """``Authorization`` as Cloud Tasks, Scheduler or Pub/Sub push send it: an ID token of
    the invoker of ``kind``, signed by the edge's dev key (the edge's own check runs)."""
    return {"Authorization": f"Bearer {edge.identity.token_for(kind)}"}
