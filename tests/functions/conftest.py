"""Fixtures of the function tests: isolated environment, a local runtime, in-process clients."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import functions_framework.aio
import httpx
import pytest

from shared.api.runtime import use_runtime
from shared.bootstrap import LocalRuntime, build_local
from shared.settings import Settings

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def isolated_environ() -> Iterator[None]:
    """Undo what a test (or the framework: FUNCTION_TARGET) does to ``os.environ``."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[LocalRuntime]:
    """A started local runtime on a fresh SQLite file, installed for the HTTP edges."""
    local = build_local(Settings(db_path=str(tmp_path / "t.db")))
    await local.start()
    use_runtime(local)
    try:
        yield local
    finally:
        use_runtime(None)
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
async def api(runtime: LocalRuntime) -> AsyncIterator[httpx.AsyncClient]:
    """The ``create`` function served in-process, as the functions framework serves it."""
    app = functions_framework.aio.create_asgi_app(
        target="create", source=str(REPO / "functions" / "create" / "main.py")
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://create.test") as client:
        yield client
