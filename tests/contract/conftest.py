"""The ``store`` fixture: every store adapter, each test run against each of them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import pytest
from _builders import Store
from google.cloud.firestore import AsyncClient

from shared.adapters.firestore_store import FirestoreStore
from shared.adapters.memory_store import MemoryStore
from shared.adapters.sqlite_store import SqliteStore


@asynccontextmanager
async def _memory(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    store = MemoryStore()
    try:
        yield store
    finally:
        await store.close()


@asynccontextmanager
async def _sqlite(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    tmp_path: Path = request.getfixturevalue("tmp_path")
    store = SqliteStore(tmp_path / "store.db")
    try:
        yield store
    finally:
        await store.close()


@asynccontextmanager
async def _firestore(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    """A FirestoreStore on the emulator, in a project of its own."""
    project: str = request.getfixturevalue("firestore_project")
    store = FirestoreStore(lambda: AsyncClient(project=project))
    try:
        yield store
    finally:
        await store.close()


STORES: dict[str, Callable[[pytest.FixtureRequest], AbstractAsyncContextManager[Store]]] = {
    "memory": _memory,
    "sqlite": _sqlite,
    "firestore": _firestore,
}
"""One entry per adapter under contract."""

NEEDS_EMULATOR = {"firestore"}
"""Adapters whose runs are marked ``emulator`` (skipped loudly where it is missing)."""


@pytest.fixture(
    params=[
        pytest.param(name, marks=[pytest.mark.emulator] if name in NEEDS_EMULATOR else [])
        for name in STORES
    ]
)
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    """A fresh, empty store of each kind."""
    async with STORES[request.param](request) as opened:
        yield opened
