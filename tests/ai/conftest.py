"""Fixtures of the AI tests: the hand-driven engine harness with the AI step types."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))

from harness import Harness

from shared.adapters.memory_store import MemoryStore
from shared.adapters.sqlite_store import SqliteStore
from shared.ai import AiDependencies, StaticModelProvider, register_ai_steps
from shared.settings import Settings


@pytest.fixture(autouse=True)
def isolated_environ() -> Iterator[None]:
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture
async def make_harness(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[Harness]]]:
    """``await make_harness(model=None, sqlite=False, **settings)``: a harness whose
    registry has ``decision`` and ``llm``; ``model`` is a chat model (a fake) or None
    (no model configured)."""
    made: list[Harness] = []

    async def make(model: Any = None, *, sqlite: bool = False, **settings: Any) -> Harness:
        store = SqliteStore(tmp_path / f"ai{len(made)}.db") if sqlite else MemoryStore()
        harness = Harness(store)
        deps = AiDependencies(
            settings=Settings.from_env({}, **settings),
            models=StaticModelProvider(model) if model is not None else None,
        )
        register_ai_steps(harness.registry, deps)
        made.append(harness)
        return harness

    yield make
    for harness in made:
        await harness.bus.close()
        await harness.store.close()
