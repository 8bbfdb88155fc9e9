"""Issue 10, item 12: an unpriced model under a cost budget is refused, never free.

Naming a model missing from ``ai.prices`` once let 20M tokens under
``maxCostUsd: 0.0001`` cost "0.0". Now the step fails with ``MODEL_UNPRICED`` before the
model is called, whether the budget is the step's or the execution's (settings); an AI
node of a decision step takes its fallback instead of asking. Since issue 16 such a
definition is refused when it is saved (``MODEL_UNKNOWN``); the run-time refusal remains
for a cost budget set after the definition was saved.
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage

from shared.adapters.memory_store import MemoryStore
from shared.ai import AiDependencies, StaticModelProvider, register_ai_steps
from shared.errors import DefinitionInvalid
from shared.models import ExecutionStatus
from shared.settings import Settings

TESTS = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(TESTS / "engine"), str(TESTS / "ai")]

from _ai_fakes import FakeChat, fake, usage  # noqa: E402
from harness import Harness  # noqa: E402

UNPRICED = "gemini-9-ultra-unlisted"
MakeHarness = Callable[..., Awaitable[Harness]]


@pytest.fixture
async def make_harness() -> AsyncIterator[MakeHarness]:
    made: list[Harness] = []

    async def make(model: FakeChat, **settings: Any) -> Harness:
        harness = Harness(MemoryStore())
        deps = AiDependencies(
            settings=Settings.from_env({}, **settings), models=StaticModelProvider(model)
        )
        register_ai_steps(harness.registry, deps)
        made.append(harness)
        return harness

    yield make
    for harness in made:
        await harness.bus.close()
        await harness.store.close()


def big_answer() -> AIMessage:
    """20M tokens: "0.0" USD when an unpriced model counted as free."""
    message: AIMessage = usage(AIMessage(json.dumps({"title": "x"})), 10_000_000, 10_000_000)
    return message


def llm_flow(config: dict[str, Any]) -> dict[str, Any]:
    return {"name": "spend", "steps": [{"id": "w", "type": "llm", "config": config}]}


@pytest.mark.parametrize(
    ("budget", "settings"),
    [
        ({"maxCostUsd": 0.0001}, {}),
        ({}, {"ai_execution_max_cost_usd": 0.0001}),
        ({"executionMaxCostUsd": 0.0001}, {}),
    ],
    ids=["step-budget", "settings-budget", "execution-budget"],
)
async def test_unpriced_model_under_a_cost_budget_is_refused_when_saved(
    make_harness: MakeHarness, budget: dict[str, Any], settings: dict[str, Any]
) -> None:
    model = fake(big_answer())
    h = await make_harness(model, **settings)
    config = {"prompt": "spend", "model": {"model": UNPRICED}, "budget": budget}

    with pytest.raises(DefinitionInvalid) as caught:
        await h.create(llm_flow(config))

    issues = caught.value.issues
    assert [(i.code, i.path) for i in issues] == [("MODEL_UNKNOWN", "/steps/0/config/model")]
    assert UNPRICED in issues[0].message
    assert model.calls == 0


async def test_unpriced_model_under_a_cost_budget_set_after_saving_is_refused_before_the_call(
    make_harness: MakeHarness,
) -> None:
    model = fake(big_answer())
    h = await make_harness(model)  # no cost budget when the definition is saved
    workflow_id = await h.create(llm_flow({"prompt": "spend", "model": {"model": UNPRICED}}))
    later = Settings.from_env({}, ai_execution_max_cost_usd=0.0001)  # the operator sets one
    deps = AiDependencies(settings=later, models=StaticModelProvider(model))
    register_ai_steps(h.registry, deps, replace=True)

    started = await h.start(workflow_id)
    await h.drain()
    execution = await h.app.get_execution(started.id)

    assert execution.status == ExecutionStatus.FAILED
    assert execution.error_info is not None
    assert execution.error_info.code == "MODEL_UNPRICED", execution.error_info
    assert UNPRICED in execution.error_info.message
    assert model.calls == 0, "the model was called although its cost cannot be counted"


async def test_priced_model_under_the_same_budget_is_counted(make_harness: MakeHarness) -> None:
    model = fake(big_answer())
    h = await make_harness(model)
    config = {"prompt": "spend", "model": {"model": "gemini-2.0-flash"}}
    config["budget"] = {"maxCostUsd": 0.0001}

    execution = await h.run(llm_flow(config))

    assert execution.error_info is not None and execution.error_info.code == "BUDGET_EXCEEDED"
    run = (await h.runs(execution.id))[0]
    assert run.state["aiUsage"]["costUsd"] > 1.0  # 20M tokens are not free


async def test_unpriced_model_without_a_cost_budget_still_runs(make_harness: MakeHarness) -> None:
    model = fake(big_answer())
    h = await make_harness(model)
    config = {"prompt": "spend", "model": {"model": UNPRICED}, "budget": {"maxTokens": 10**9}}

    execution = await h.run(llm_flow(config))

    assert execution.status == ExecutionStatus.SUCCEEDED, execution.error
    assert model.calls == 1


async def test_ai_node_with_an_unpriced_model_takes_its_fallback_without_asking(
    make_harness: MakeHarness,
) -> None:
    model = fake(json.dumps({"choice": "yes", "reason": "r"}))
    h = await make_harness(model, ai_execution_max_cost_usd=0.0001)
    node = {
        "id": "ask",
        "type": "ai",
        "prompt": "yes or no?",
        "model": {"model": UNPRICED},
        "branches": {"yes": "y", "no": "n"},
        "fallback": "no",
    }
    steps = [
        {"id": "d", "type": "decision", "config": {"nodes": [node]}, "nextSteps": ["y", "n"]},
        {"id": "y", "type": "transform", "config": {"set": {"went": "yes"}}},
        {"id": "n", "type": "transform", "config": {"set": {"went": "no"}}},
    ]

    execution = await h.run({"name": "route", "steps": steps})

    assert model.calls == 0
    run = next(r for r in await h.runs(execution.id) if r.step_id == "d")
    assert "MODEL_UNPRICED" in json.dumps(run.output)
