"""Helpers of the agent step tests: a harness whose AI step types keep their LangGraph
checkpoints in a chosen CheckpointStore, fake answers, and approval events."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from _ai_fakes import usage
from checkpoint_stores import STORES
from google.cloud.firestore import AsyncClient
from harness import Harness
from langchain_core.messages import AIMessage

from shared.adapters.firestore_store import FirestoreStore
from shared.adapters.memory_store import MemoryStore
from shared.adapters.sqlite_store import SqliteStore
from shared.ai import AiDependencies, StaticModelProvider, register_ai_steps
from shared.models import StepRun
from shared.ports.checkpoints import CheckpointStore
from shared.settings import Settings

MakeAgent = Callable[..., Awaitable[Harness]]
"""``await make_agent(model=None, *, store="memory", sqlite=False, engine=None, **settings)``."""


@asynccontextmanager
async def agent_harnesses(
    tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[MakeAgent]:
    """The ``make_agent`` of a test: harnesses closed when the test ends."""
    async with AsyncExitStack() as stack:
        made: list[Harness] = []

        async def make(
            model: Any = None,
            *,
            store: str = "memory",
            sqlite: bool = False,
            engine: str | None = None,
            **settings: Any,
        ) -> Harness:
            """``store``: the checkpoint store; ``engine``: the execution store (memory,
            sqlite, firestore; default sqlite when ``sqlite``, else memory)."""
            engine = engine or ("sqlite" if sqlite else "memory")
            engine_store: Any
            if engine == "firestore":
                project: str = request.getfixturevalue("firestore_project")
                engine_store = FirestoreStore(lambda: AsyncClient(project=project), max_attempts=50)
            elif engine == "sqlite":
                engine_store = SqliteStore(tmp_path / f"agent{len(made)}.db")
            else:
                engine_store = MemoryStore()
            checkpoints: CheckpointStore = await stack.enter_async_context(STORES[store](request))
            harness = Harness(engine_store)
            harness.checkpoints = checkpoints  # type: ignore[attr-defined]
            deps = AiDependencies(
                settings=Settings.from_env({}, **settings),
                models=StaticModelProvider(model) if model is not None else None,
                checkpoints=checkpoints,
            )
            register_ai_steps(harness.registry, deps)
            made.append(harness)
            return harness

        yield make
        for harness in made:
            await harness.bus.close()
            await harness.store.close()


def agent_flow(config: dict[str, Any], *, name: str = "agentic", **step: Any) -> dict[str, Any]:
    body = {"id": "a0", "type": "agent", "config": config, **step}
    return {"name": name, "variables": {"topic": "durable workflows"}, "steps": [body]}


def tool_call(name: str, args: dict[str, Any], call_id: str) -> AIMessage:
    return usage(AIMessage("", tool_calls=[{"name": name, "args": args, "id": call_id}]), 20, 3)


def answer(text: str) -> AIMessage:
    return usage(AIMessage(text), 10, 5)


async def agent_run(h: Harness, execution_id: str, step_id: str = "a0") -> StepRun:
    runs = [r for r in await h.runs(execution_id) if r.step_id == step_id]
    return runs[-1]


async def progress(h: Harness, execution_id: str) -> list[dict[str, Any]]:
    events = await h.store.list_events(execution_id)
    return [e.data for e in events if e.type == "step.progress"]


def decision(verdict: str, **extra: Any) -> dict[str, Any]:
    return {"decision": verdict, **extra}


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True)
