"""The CheckpointStore adapters the checkpoint tests run against (memory, SQLite, and
Firestore on the emulator), opened per test by ``STORES[name](request)``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from google.cloud.firestore import AsyncClient

from shared.adapters.firestore_checkpoints import FirestoreCheckpointStore
from shared.adapters.memory_checkpoints import MemoryCheckpointStore
from shared.adapters.sqlite_checkpoints import SqliteCheckpointStore
from shared.ports.checkpoints import CheckpointStore

__all__ = ["STORES", "store_params"]

StoreFactory = Callable[[pytest.FixtureRequest], AbstractAsyncContextManager[CheckpointStore]]


@asynccontextmanager
async def _memory(request: pytest.FixtureRequest) -> AsyncIterator[CheckpointStore]:
    store = MemoryCheckpointStore()
    yield store
    await store.close()


@asynccontextmanager
async def _sqlite(request: pytest.FixtureRequest) -> AsyncIterator[CheckpointStore]:
    tmp_path: Path = request.getfixturevalue("tmp_path")
    store = SqliteCheckpointStore(tmp_path / "store.db")
    try:
        yield store
    finally:
        await store.close()


@asynccontextmanager
async def _firestore(request: pytest.FixtureRequest) -> AsyncIterator[CheckpointStore]:
    project: str = request.getfixturevalue("firestore_project")
    store = FirestoreCheckpointStore(lambda: AsyncClient(project=project))
    try:
        yield store
    finally:
        await store.close()


STORES: dict[str, StoreFactory] = {"memory": _memory, "sqlite": _sqlite, "firestore": _firestore}


def store_params() -> list[Any]:
    """Fixture params: every adapter, the Firestore one marked ``emulator``."""
    return [
        pytest.param(name, marks=[pytest.mark.emulator] if name == "firestore" else [])
        for name in STORES
    ]
