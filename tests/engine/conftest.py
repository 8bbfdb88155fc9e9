"""Engine tests run on both embedded stores."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from harness import Harness

from shared.adapters.memory_store import MemoryStore
from shared.adapters.sqlite_store import SqliteStore


@pytest.fixture(params=["memory", "sqlite"])
async def h(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Harness]:
    store = MemoryStore() if request.param == "memory" else SqliteStore(tmp_path / "e.db")
    harness = Harness(store)
    try:
        yield harness
    finally:
        await harness.bus.close()
        await store.close()
