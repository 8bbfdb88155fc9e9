"""Decision steps run as real LangGraph graphs inside the engine (memory and SQLite)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from _ai_defs import MakeHarness, ai_node, tree, triage
from _ai_fakes import choice, fake, usage
from langchain_core.messages import AIMessage

from shared.ai import render_mermaid
from shared.ai.decision_compile import compiled_graph
from shared.ai.decision_config import parse_decision_config
from shared.models import ExecutionStatus


async def _decision(h: Any, execution_id: str) -> dict[str, Any]:
    runs = [r for r in await h.runs(execution_id) if r.step_id == "d"]
    assert len(runs) == 1
    output: dict[str, Any] = runs[0].output
    return output


@pytest.mark.parametrize("sqlite", [False, True], ids=["memory", "sqlite"])
@pytest.mark.parametrize(
    ("data", "outcome", "path"),
    [
        ({"tier": "gold", "region": "eu"}, "billing_queue", ["vip", "sla", "fast"]),
        ({"tier": "gold", "region": "ap"}, "tech_queue", ["vip", "sla", "fast"]),
        ({"tier": "free", "region": "eu"}, "account_queue", ["vip"]),
    ],
)
async def test_tree_without_ai_records_path_and_facts(
    make_harness: MakeHarness, sqlite: bool, data: dict[str, Any], outcome: str, path: list[str]
) -> None:
    h = await make_harness(sqlite=sqlite)
    execution = await h.run(triage(*tree()), data)
    assert execution.status == ExecutionStatus.SUCCEEDED
    assert execution.variables["queue"] == outcome
    output = await _decision(h, execution.id)
    assert output["outcome"] == outcome
    assert [e["node"] for e in output["path"]] == [*path, f"leaf__{outcome}"]
    if "sla" not in path:  # no lookup ran: the fact is there, null
        assert output["facts"] == {"hours": None}
    else:
        hours = {"eu": 4}.get(data["region"], 24)
        assert output["facts"] == {"hours": hours}
        assert output["path"][1] == {
            "node": "sla",
            "type": "lookup",
            "key": data["region"],
            "value": hours,
            "hit": data["region"] == "eu",
        }


async def test_a_fact_the_path_did_not_look_up_reads_null_later(
    make_harness: MakeHarness,
) -> None:
    """Issue 11, item 5: ``${vars.d.facts.hours}`` after a path that ran no lookup once
    failed the execution (no ``facts`` at all) after every step had succeeded."""
    h = await make_harness()
    raw = triage(*tree(), outputVar="d")
    for step in raw["steps"][1:]:
        step["config"]["set"]["hours"] = "${vars.d.facts.hours}"
    execution = await h.run(raw, {"tier": "free", "region": "eu"})  # vip -> no: no lookup
    assert execution.status == ExecutionStatus.SUCCEEDED, execution.error
    assert execution.variables["hours"] is None
    execution = await h.run(raw, {"tier": "gold", "region": "eu"})
    assert execution.variables["hours"] == 4


async def test_tree_without_ai_runs_inline_like_branch(make_harness: MakeHarness) -> None:
    h = await make_harness()
    raw = triage(*tree())
    raw["steps"].insert(0, {"id": "start", "type": "count", "nextSteps": ["d"]})
    await h.run(raw, {"tier": "gold", "region": "eu"})
    # one task for the start step; the decision and its successor chained in that hop
    assert h.queue.enqueued == 1
    assert h.registry.get("decision").inline_for(_step(raw, "d"))


def _step(raw: dict[str, Any], step_id: str) -> Any:
    from shared.models import WorkflowStep

    return WorkflowStep.model_validate(next(s for s in raw["steps"] if s["id"] == step_id))


async def test_tree_with_an_ai_node_is_not_inline(make_harness: MakeHarness) -> None:
    h = await make_harness()
    raw = triage(ai_node())
    assert not h.registry.get("decision").inline_for(_step(raw, "d"))
    raw["steps"].insert(0, {"id": "start", "type": "count", "nextSteps": ["d"]})
    await h.run(raw, {"text": "x"})
    assert h.queue.enqueued == 2  # the decision got its own task (I/O, a timeout)


async def test_lookup_miss_without_default_fails_with_a_code(make_harness: MakeHarness) -> None:
    h = await make_harness()
    nodes = tree()
    del nodes[1]["default"]
    execution = await h.run(triage(*nodes), {"tier": "gold", "region": "ap"})
    assert execution.status == ExecutionStatus.FAILED
    assert execution.error_info is not None and execution.error_info.code == "DECISION_LOOKUP_MISS"


async def test_condition_that_is_not_bool_fails(make_harness: MakeHarness) -> None:
    h = await make_harness()
    nodes = tree()
    nodes[0]["when"] = "vars.tier"
    execution = await h.run(triage(*nodes), {"tier": "gold", "region": "eu"})
    assert execution.error_info is not None and execution.error_info.code == "EXPRESSION_TYPE"


# -- AI nodes ---------------------------------------------------------------------------


async def _ai_entry(h: Any, data: dict[str, Any] | None = None, **node: Any) -> dict[str, Any]:
    execution = await h.run(triage(ai_node(**node)), data or {"text": "refund please"})
    assert execution.status == ExecutionStatus.SUCCEEDED, execution.error
    output = await _decision(h, execution.id)
    entry: dict[str, Any] = output["path"][0]
    assert output["outcome"] == execution.variables["queue"]
    return entry


async def test_valid_choice_from_json_text(make_harness: MakeHarness) -> None:
    model = fake(usage(AIMessage(choice("technical", "an error message")), 30, 7))
    h = await make_harness(model)
    entry = await _ai_entry(h)
    assert entry["label"] == "technical" and entry["decidedBy"] == "model"
    assert entry["reason"] == "an error message"
    assert entry["usage"]["totalTokens"] == 37 and entry["usage"]["costUsd"] > 0
    assert model.calls == 1
    prompt = model.seen[0][-1].content
    assert "refund please" in prompt and "billing: money" in prompt


async def test_valid_choice_through_structured_output(make_harness: MakeHarness) -> None:
    call = {"name": "choose_branch", "args": {"choice": "billing", "reason": "money"}, "id": "c1"}
    model = fake(AIMessage("", tool_calls=[call]), tool_calling=True)
    h = await make_harness(model)
    entry = await _ai_entry(h)
    assert (entry["label"], entry["decidedBy"], entry["reason"]) == ("billing", "model", "money")


@pytest.mark.parametrize(
    ("answer", "code"),
    [
        (choice("delete_everything"), "OUTSIDE_ALLOWED_SET"),
        (choice("billing_queue"), "OUTSIDE_ALLOWED_SET"),
        ("I think billing", "MALFORMED_OUTPUT"),
        ('{"choice": "billing"', "MALFORMED_OUTPUT"),
        ('{"choice": "billing", "reason": "x", "next": "tech_queue"}', "MALFORMED_OUTPUT"),
        ('{"refusal": "I cannot help with that"}', "REFUSED"),
        (AIMessage("", response_metadata={"finish_reason": "SAFETY"}), "REFUSED"),
    ],
)
async def test_bad_answers_take_the_declared_fallback(
    make_harness: MakeHarness, answer: Any, code: str
) -> None:
    h = await make_harness(fake(answer))
    entry = await _ai_entry(h)
    assert (entry["label"], entry["decidedBy"]) == ("account", "fallback")
    assert entry["fallbackReason"]["code"] == code
    assert entry["fallbackReason"]["message"]


async def test_timeout_takes_the_fallback(make_harness: MakeHarness) -> None:
    model = fake(choice("billing"), delay=2.0)
    h = await make_harness(model)
    entry = await _ai_entry(h, model={"timeoutSeconds": 0.05})
    assert entry["fallbackReason"]["code"] == "TIMEOUT"
    assert entry["label"] == "account"


async def test_model_error_takes_the_fallback(make_harness: MakeHarness) -> None:
    h = await make_harness(fake())  # an exhausted fake raises on the first call
    entry = await _ai_entry(h)
    assert entry["fallbackReason"]["code"] == "MODEL_ERROR"
    assert entry["decidedBy"] == "fallback"


async def test_no_model_routes_by_history_and_says_so(make_harness: MakeHarness) -> None:
    h = await make_harness()
    entry = await _ai_entry(h, fallback="history")
    assert entry["decidedBy"] == "history"
    assert entry["fallbackReason"]["code"] == "NO_MODEL"
    assert entry["history"]["router"] == "thompson"
    assert set(entry["history"]["scores"]) == {"billing", "technical", "account"}


async def test_a_redelivered_decision_does_not_ask_the_model_again(
    make_harness: MakeHarness,
) -> None:
    model = fake(choice("billing"), choice("technical"))
    h = await make_harness(model, sqlite=True)
    workflow_id = await h.create(triage(ai_node()))
    execution = await h.start(workflow_id, {"text": "x"})
    task = h.queue.take_due(h.clock.now())[0]
    step_type = h.registry.get("decision")
    real = step_type.execute

    async def crash_after(ctx: Any) -> Any:  # the model answered, then the worker died
        await real(ctx)
        raise asyncio.CancelledError

    step_type.execute = crash_after  # type: ignore[method-assign]
    with pytest.raises(asyncio.CancelledError):
        await h.engine.handle_task(task)
    step_type.execute = real  # type: ignore[method-assign]
    h.clock.advance(3600)  # the lease expires; the queue delivers again
    await h.deliver(task)
    await h.drain()
    done = await h.app.get_execution(execution.id)
    assert done.variables["queue"] == "billing_queue"
    assert model.calls == 1
    assert (await _decision(h, execution.id))["path"][0]["replayed"] is True


# -- rendering ----------------------------------------------------------------------------


def test_mermaid_rendering_of_a_tree() -> None:
    raw = {"nodes": [*tree()[:2], {**tree()[2], "then": "ai"}, {**ai_node(), "id": "ai"}]}
    raw["nodes"][3]["fallback"] = "history"
    text = render_mermaid(raw, "triage")
    assert text.startswith("flowchart TD\n")
    assert "n_vip{\"vars.tier == 'gold'\"}" in text
    assert "n_vip -->|true| n_sla" in text and "n_vip -->|false| s_account_queue" in text
    assert 'n_sla[/"lookup vars.region as hours"/]' in text
    assert 'n_ai -->|"billing"| s_billing_queue' in text
    assert "n_ai -.->|fallback| n_ai_h" in text
    assert 's_tech_queue[["next: tech_queue"]]' in text
    # the compiled LangGraph graph has the same nodes
    graph = compiled_graph(parse_decision_config(raw)).get_graph()
    assert set(graph.nodes) == {"__start__", "__end__", "vip", "sla", "fast", "ai"}


async def test_app_renders_a_decision_graph(make_harness: MakeHarness) -> None:
    from shared.errors import NotFound

    h = await make_harness()
    workflow_id = await h.create(triage(*tree()))
    text = await h.app.decision_graph(workflow_id, "d")
    assert "n_fast" in text
    assert await h.app.decision_graph(workflow_id, "d", version=1) == text
    with pytest.raises(NotFound):
        await h.app.decision_graph(workflow_id, "billing_queue")
    with pytest.raises(NotFound):
        await h.app.decision_graph(workflow_id, "d", version=9)
