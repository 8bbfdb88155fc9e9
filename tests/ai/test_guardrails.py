"""Guardrails on llm answers through the real LangGraph loop with fake chat models:
retry with feedback, escalation to a person, fallback, CEL and rubric validators, the
judge's verdict replayed after a crash, model aliases, and save-time checks."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from _ai_defs import MakeHarness
from _ai_fakes import FakeChat, fake, usage
from langchain_core.messages import AIMessage, HumanMessage

from shared.ai import AiDependencies, register_ai_steps
from shared.ai.models import ModelSpec
from shared.errors import DefinitionInvalid
from shared.models import ExecutionStatus, StepRunStatus
from shared.settings import Settings

SCHEMA = {
    "type": "object",
    "properties": {"title": {"type": "string"}},
    "required": ["title"],
}
SHORT = {"cel": "size(output.title) < 20", "message": "the title is too long", "name": "short"}


def answer(data: Any, inp: int = 10, out: int = 5) -> AIMessage:
    return usage(AIMessage(json.dumps(data)), inp, out)


def flow(config: dict[str, Any], *extra: dict[str, Any], name: str = "guarded") -> dict[str, Any]:
    step: dict[str, Any] = {"id": "w0", "type": "llm", "config": config}
    steps = [step, *extra]
    if extra:
        step["nextSteps"] = [extra[0]["id"]]
    return {"name": name, "variables": {"topic": "durable workflows"}, "steps": steps}


def done_step(step_id: str) -> dict[str, Any]:
    return {"id": step_id, "type": "transform", "config": {"output": {"at": step_id}}}


async def _run_of(h: Any, execution_id: str, step_id: str = "w0") -> Any:
    return [r for r in await h.runs(execution_id) if r.step_id == step_id][-1]


@dataclass
class ByModel:
    """A model provider giving each model name its own fake (the judge is another model)."""

    models: dict[str, FakeChat]
    configured: bool = True
    asked: list[str] = field(default_factory=list)

    def chat_model(self, spec: ModelSpec) -> Any:
        self.asked.append(spec.model)
        return self.models[spec.model]


async def _harness(make_harness: MakeHarness, provider: ByModel, **settings: Any) -> Any:
    h = await make_harness(None, **settings)
    deps = AiDependencies(settings=Settings.from_env({}, **settings), models=provider)
    register_ai_steps(h.registry, deps, replace=True)
    return h


@pytest.mark.parametrize("sqlite", [False, True], ids=["memory", "sqlite"])
async def test_a_failed_check_retries_with_feedback_then_escalates_and_accept_continues(
    make_harness: MakeHarness, sqlite: bool
) -> None:
    long_title = {"title": "a title far too long for the check"}
    model = fake(answer(long_title), answer(long_title))
    h = await make_harness(model, sqlite=sqlite)
    config = {
        "prompt": "Title for ${vars.topic}",
        "outputSchema": SCHEMA,
        "setVars": True,
        "guardrails": {"validators": [SHORT], "onFail": "retry", "maxRetries": 1},
    }
    execution = await h.run(flow(config, done_step("after")), advance=False)
    assert execution.status == ExecutionStatus.WAITING, execution.error
    assert model.calls == 2
    # the second prompt told the model what failed
    retry = model.seen[1][-1]
    assert isinstance(retry, HumanMessage) and "the title is too long" in str(retry.content)
    assert "short" in str(retry.content)
    run = await _run_of(h, execution.id)
    assert run.status == StepRunStatus.WAITING and run.state["signal"] == "guardrail.w0"
    escalated = run.state["guardrail"]["output"]["evaluation"]
    assert escalated["passed"] is False and escalated["rounds"] == 2
    assert escalated["action"] == "escalate"
    assert escalated["verdicts"][0] == {
        "validator": "short",
        "kind": "cel",
        "passed": False,
        "score": 0.0,
        "feedback": "the title is too long",
    }
    assert "step.waiting" in await h.event_types(execution.id)
    progress = [
        e.data.get("evaluation")
        for e in await h.store.list_events(execution.id)
        if e.type == "step.progress"
    ]
    waiting = run.output
    assert waiting["status"] == "awaitingDecision" and waiting["data"] == long_title
    assert waiting["escalation"]["event"] == "guardrail.w0"
    escalations = [
        e.data["escalation"]
        for e in await h.store.list_events(execution.id)
        if e.type == "step.progress" and "escalation" in e.data
    ]
    assert escalations[0]["event"] == "guardrail.w0" and escalations[0]["passed"] is False
    progress = [p for p in progress if p is not None]
    assert [(p["round"], p["passed"]) for p in progress] == [(1, False), (2, False)]
    assert progress[0]["verdicts"][0]["feedback"] == "the title is too long"

    answered = await h.app.send_event(
        execution.id, "guardrail.w0", {"decision": "accept", "note": "fine"}
    )
    assert answered["delivered"] is True
    await h.drain(advance=False)
    done = await h.app.get_execution(execution.id)
    assert done.status == ExecutionStatus.SUCCEEDED, done.error
    assert done.variables["title"] == long_title["title"]  # setVars applied on accept
    output = (await _run_of(h, execution.id)).output
    assert output["evaluation"]["escalation"] == {"decision": "accept", "note": "fine"}
    assert "status" not in output and output["data"] == long_title
    assert (await _run_of(h, execution.id, "after")).status == StepRunStatus.SUCCEEDED
    assert model.calls == 2


async def test_a_rejected_escalation_fails_with_guardrail_failed(
    make_harness: MakeHarness,
) -> None:
    model = fake(answer({"title": "x" * 40}))
    h = await make_harness(model)
    config = {"prompt": "go", "outputSchema": SCHEMA, "guardrails": {"validators": [SHORT]}}
    execution = await h.run(flow(config), advance=False)
    assert execution.status == ExecutionStatus.WAITING
    await h.app.send_event(execution.id, "guardrail.w0", {"decision": "maybe"})
    await h.drain(advance=False)
    still = await h.app.get_execution(execution.id)
    assert still.status == ExecutionStatus.WAITING  # not a decision: it waits on
    assert (await _run_of(h, execution.id)).state["signal"] == "guardrail.w0"
    await h.app.send_event(execution.id, "guardrail.w0", {"decision": "reject"})
    await h.drain(advance=False)
    done = await h.app.get_execution(execution.id)
    assert done.status == ExecutionStatus.FAILED
    assert done.error_info is not None and done.error_info.code == "GUARDRAIL_FAILED"


async def test_an_escalation_without_a_decision_times_out(make_harness: MakeHarness) -> None:
    model = fake(answer({"title": "x" * 40}))
    h = await make_harness(model)
    guardrails = {"validators": [SHORT], "escalateTimeoutSeconds": 60}
    execution = await h.run(
        flow({"prompt": "go", "outputSchema": SCHEMA, "guardrails": guardrails})
    )
    done = await h.app.get_execution(execution.id)
    assert done.status == ExecutionStatus.FAILED  # drain moved the clock past the deadline
    assert done.error_info is not None and done.error_info.code == "GUARDRAIL_TIMEOUT"
    assert model.calls == 1


async def test_cel_and_schema_validators_pass_and_are_recorded(make_harness: MakeHarness) -> None:
    model = fake(answer({"title": "ok"}))
    h = await make_harness(model)
    guardrails = {
        "validators": [{"schema": {"type": "object", "required": ["title"]}}, SHORT],
        "onFail": "fail",
    }
    execution = await h.run(flow({"prompt": "go", "guardrails": guardrails}))  # no outputSchema
    assert execution.status == ExecutionStatus.SUCCEEDED, execution.error
    evaluation = (await _run_of(h, execution.id)).output["evaluation"]
    assert evaluation["passed"] and evaluation["score"] == 1.0 and evaluation["action"] == "pass"
    assert [v["validator"] for v in evaluation["verdicts"]] == ["schema0", "short"]


async def test_cel_failure_with_continue_records_and_goes_on(make_harness: MakeHarness) -> None:
    model = fake(answer({"title": "x" * 40}))
    h = await make_harness(model)
    guardrails = {"validators": [SHORT], "onFail": "continue"}
    execution = await h.run(flow({"prompt": "go", "guardrails": guardrails}, done_step("after")))
    assert execution.status == ExecutionStatus.SUCCEEDED
    evaluation = (await _run_of(h, execution.id)).output["evaluation"]
    assert evaluation["passed"] is False and evaluation["action"] == "continue"


async def test_fallback_goes_to_the_fallback_step(make_harness: MakeHarness) -> None:
    model = fake(answer({"title": "x" * 40}))
    h = await make_harness(model)
    guardrails = {"validators": [SHORT], "onFail": "fallback"}
    raw = flow({"prompt": "go", "guardrails": guardrails}, done_step("after"), done_step("manual"))
    raw["steps"][0]["onError"] = {"strategy": "fallback", "fallbackStep": "manual"}
    execution = await h.run(raw)
    assert execution.status == ExecutionStatus.SUCCEEDED
    steps = {r.step_id for r in await h.runs(execution.id)}
    assert "manual" in steps and "after" not in steps
    failed = await _run_of(h, execution.id)
    assert failed.error is not None and failed.error.code == "GUARDRAIL_FAILED"
    assert failed.state["evaluation"]["action"] == "fallback"


async def test_a_cel_runtime_error_is_a_failed_verdict(make_harness: MakeHarness) -> None:
    model = fake(AIMessage("plain text, not JSON"))
    h = await make_harness(model)
    guardrails = {"validators": [{"cel": "output.title == 'x'"}], "onFail": "fail"}
    execution = await h.run(flow({"prompt": "go", "guardrails": guardrails}))
    assert execution.error_info is not None and execution.error_info.code == "GUARDRAIL_FAILED"


RUBRIC = {"rubric": "Is it polite?", "minScore": 0.7, "model": "judge-model", "name": "polite"}


async def test_the_rubric_verdict_is_recorded_and_replayed_on_redelivery(
    make_harness: MakeHarness,
) -> None:
    writer = fake(answer({"title": "Hello"}))
    judge = fake(usage(AIMessage('{"score": 0.9, "feedback": "polite"}'), 30, 8))
    provider = ByModel({"gemini-2.0-flash": writer, "judge-model": judge})
    h = await _harness(make_harness, provider)
    guardrails = {"validators": [RUBRIC], "onFail": "fail"}
    workflow_id = await h.create(flow({"prompt": "go", "guardrails": guardrails}))
    execution = await h.start(workflow_id)
    task = h.queue.take_due(h.clock.now())[0]
    step_type = h.registry.get("llm")
    real = step_type.execute

    async def crash_after(ctx: Any) -> Any:
        await real(ctx)
        raise asyncio.CancelledError  # the worker dies before the commit

    step_type.execute = crash_after  # type: ignore[method-assign]
    with pytest.raises(asyncio.CancelledError):
        await h.engine.handle_task(task)
    step_type.execute = real  # type: ignore[method-assign]
    assert (writer.calls, judge.calls) == (1, 1)
    h.clock.advance(3600)
    await h.deliver(task)
    await h.drain()
    done = await h.app.get_execution(execution.id)
    assert done.status == ExecutionStatus.SUCCEEDED, done.error
    assert (writer.calls, judge.calls) == (1, 1)  # neither the writer nor the judge again
    output = (await _run_of(h, execution.id)).output
    verdict = output["evaluation"]["verdicts"][0]
    assert verdict["passed"] and verdict["score"] == 0.9 and verdict["replayed"]
    assert verdict["model"] == "judge-model" and verdict["feedback"] == "polite"
    # the judge saw the answer as data, and the rubric
    assert "Is it polite?" in str(judge.seen[0][-1].content)
    assert "Hello" in str(judge.seen[0][-1].content)


async def test_a_low_rubric_score_retries_with_the_judges_feedback(
    make_harness: MakeHarness,
) -> None:
    writer = fake(answer({"title": "Go away"}), answer({"title": "Welcome"}))
    judge = fake(
        AIMessage('{"score": 0.2, "feedback": "be kinder"}'),
        AIMessage('{"score": 0.8, "feedback": "good"}'),
    )
    provider = ByModel({"gemini-2.0-flash": writer, "judge-model": judge})
    h = await _harness(make_harness, provider)
    guardrails = {"validators": [RUBRIC], "onFail": "retry", "then": "fail"}
    execution = await h.run(flow({"prompt": "go", "guardrails": guardrails}))
    assert execution.status == ExecutionStatus.SUCCEEDED, execution.error
    assert "be kinder" in str(writer.seen[1][-1].content)
    evaluation = (await _run_of(h, execution.id)).output["evaluation"]
    assert evaluation["retries"] == 1 and evaluation["score"] == 0.8
    assert evaluation["history"][0][0]["score"] == 0.2


async def test_a_model_alias_resolves_from_settings(make_harness: MakeHarness) -> None:
    writer = fake(answer({"title": "ok"}))
    provider = ByModel({"gemini-2.5-flash": writer})
    h = await _harness(make_harness, provider, ai_model_aliases={"fast": "gemini-2.5-flash"})
    budget = {"maxTokens": 1000}
    execution = await h.run(flow({"prompt": "go", "model": "fast", "budget": budget}))
    assert execution.status == ExecutionStatus.SUCCEEDED, execution.error
    assert provider.asked == ["gemini-2.5-flash"]
    assert (await _run_of(h, execution.id)).output["model"] == "gemini-2.5-flash"


async def _issues(h: Any, config: dict[str, Any], *extra: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(DefinitionInvalid) as caught:
        await h.create(flow(config, *extra))
    return [(i.code, i.path) for i in caught.value.issues]


async def test_save_time_checks_have_codes_and_pointers(make_harness: MakeHarness) -> None:
    h = await make_harness(None, ai_model_aliases={"fast": "gemini-2.5-flash", "bad": "nope"})
    at = "/steps/0/config"
    budget = {"maxCostUsd": 0.1}
    assert await _issues(h, {"prompt": "go", "model": "mystery", "budget": budget}) == [
        ("MODEL_UNKNOWN", f"{at}/model")
    ]
    assert await _issues(h, {"prompt": "go", "model": "bad", "budget": budget}) == [
        ("MODEL_UNKNOWN", f"{at}/model")
    ]
    # without a budget any model name is allowed; with one, an alias of a priced model is
    await h.create(flow({"prompt": "go", "model": "mystery"}, name="free"))
    await h.create(flow({"prompt": "go", "model": "fast", "budget": budget}, name="aliased"))
    guardrails = {
        "validators": [
            {"cel": "vars.x + "},
            {"cel": "secret == 1"},
            {"schema": {"type": "object", "pattern": "x"}},
            {"cel": "true", "rubric": "both"},
            {"rubric": "polite?", "model": "unknown-judge"},
        ],
        "onFail": "fallback",
    }
    issues = await _issues(h, {"prompt": "go", "guardrails": guardrails, "budget": budget})
    g = f"{at}/guardrails"
    assert issues == [
        ("EXPRESSION_SYNTAX", f"{g}/validators/0/cel"),
        ("EXPRESSION_UNKNOWN_VARIABLE", f"{g}/validators/1/cel"),
        ("SCHEMA_UNSUPPORTED", f"{g}/validators/2/schema/pattern"),
        ("GUARDRAIL_VALIDATOR_KIND", f"{g}/validators/3"),
        ("MODEL_UNKNOWN", f"{g}/validators/4/model"),
        ("GUARDRAIL_FALLBACK_REQUIRED", "/steps/0/onError"),
    ]
