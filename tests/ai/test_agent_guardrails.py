"""Guardrails on agent steps, through the real LangGraph loop with its checkpoints and
fake chat models: a failed CEL check retries with feedback on the same thread, an
escalation is accepted or rejected by a person, the judge's verdict is not asked for
again after a crash, evaluations are aggregated per workflow, save-time checks."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from _agent_helpers import MakeAgent, agent_flow, agent_harnesses, agent_run, progress, tool_call
from _ai_fakes import FakeChat, fake, usage
from harness import Harness
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from shared.ai import AiDependencies, register_ai_steps
from shared.ai.evaluation_report import workflow_evaluations
from shared.ai.models import ModelSpec
from shared.ai.replay import RunStateReplay
from shared.errors import DefinitionInvalid
from shared.models import ExecutionStatus, StepRun, StepRunStatus
from shared.settings import Settings

SCHEMA = {"type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]}
SHORT = {"cel": "size(output.title) < 20", "message": "the title is too long", "name": "short"}
LONG = {"title": "a title far too long for the check"}


def answer(data: Any, inp: int = 10, out: int = 5) -> AIMessage:
    return usage(AIMessage(json.dumps(data)), inp, out)


def guarded(guardrails: dict[str, Any], **config: Any) -> dict[str, Any]:
    return {
        "prompt": "Title for ${vars.topic}",
        "tools": ["read_variables"],
        "outputSchema": SCHEMA,
        "guardrails": guardrails,
        **config,
    }


@pytest.fixture
async def make_agent(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[MakeAgent]:
    async with agent_harnesses(tmp_path, request) as make:
        yield make


@pytest.mark.parametrize("store", ["memory", "sqlite"])
async def test_a_failed_cel_check_retries_with_feedback_on_the_same_thread_then_passes(
    make_agent: MakeAgent, store: str
) -> None:
    model = fake(
        tool_call("read_variables", {"names": ["topic"]}, "c1"),
        answer(LONG),
        answer({"title": "Durable flows"}),
        tool_calling=True,
    )
    h = await make_agent(model, store=store, engine=store)
    guardrails = {"validators": [SHORT], "onFail": "retry", "maxRetries": 1, "then": "fail"}
    execution = await h.run(agent_flow(guarded(guardrails, setVars=True)))
    assert execution.status == ExecutionStatus.SUCCEEDED, execution.error
    assert execution.variables["title"] == "Durable flows"
    assert model.calls == 3
    # the feedback went to the agent as a new user message continuing its conversation
    retry = model.seen[2]
    assert isinstance(retry[-1], HumanMessage)
    assert "short: the title is too long" in str(retry[-1].content)
    assert any(isinstance(m, ToolMessage) for m in retry)  # the same thread, tool result kept
    assert json.loads(str(retry[-2].content)) == LONG
    output = (await agent_run(h, execution.id)).output
    evaluation = output["evaluation"]
    assert evaluation["passed"] is True and evaluation["action"] == "pass"
    assert evaluation["rounds"] == 2 and evaluation["retries"] == 1
    assert evaluation["history"][0][0]["feedback"] == "the title is too long"
    assert output["data"] == {"title": "Durable flows"} and output["turns"] == 3
    rounds = [d["evaluation"] for d in await progress(h, execution.id) if "evaluation" in d]
    assert [(r["round"], r["passed"]) for r in rounds] == [(1, False), (2, True)]
    run = await agent_run(h, execution.id)
    assert run.state["evaluation"]["passed"] is True  # what the aggregates read


async def test_retries_exhausted_then_fail(make_agent: MakeAgent) -> None:
    model = fake(answer(LONG), answer(LONG), tool_calling=True)
    h = await make_agent(model)
    guardrails = {"validators": [SHORT], "onFail": "retry", "maxRetries": 1, "then": "fail"}
    execution = await h.run(agent_flow(guarded(guardrails)))
    assert execution.status == ExecutionStatus.FAILED
    assert execution.error_info is not None and execution.error_info.code == "GUARDRAIL_FAILED"
    run = await agent_run(h, execution.id)
    assert run.state["evaluation"]["action"] == "fail" and run.state["evaluation"]["rounds"] == 2
    assert model.calls == 2


@pytest.mark.parametrize("store", ["memory", "sqlite"])
async def test_an_escalated_answer_is_accepted_by_a_person(
    make_agent: MakeAgent, store: str
) -> None:
    model = fake(answer(LONG), tool_calling=True)
    h = await make_agent(model, store=store, engine=store)
    execution = await h.run(
        agent_flow(guarded({"validators": [SHORT]}, setVars=True)), advance=False
    )
    assert execution.status == ExecutionStatus.WAITING, execution.error
    run = await agent_run(h, execution.id)
    assert run.status == StepRunStatus.WAITING and run.state["signal"] == "guardrail.a0"
    waiting = run.output
    assert waiting["status"] == "awaitingDecision" and waiting["data"] == LONG
    assert waiting["escalation"]["event"] == "guardrail.a0"
    assert [e["kind"] for e in waiting["entries"]] == ["model"]
    escalations = [d["escalation"] for d in await progress(h, execution.id) if "escalation" in d]
    assert escalations[0]["passed"] is False
    # a redelivery while it waits neither asks the model again nor re-escalates
    await h.app.send_event(execution.id, "guardrail.a0", {"decision": "perhaps"})
    await h.drain(advance=False)
    assert (await h.app.get_execution(execution.id)).status == ExecutionStatus.WAITING

    await h.app.send_event(execution.id, "guardrail.a0", {"decision": "accept", "note": "ok"})
    await h.drain(advance=False)
    done = await h.app.get_execution(execution.id)
    assert done.status == ExecutionStatus.SUCCEEDED, done.error
    assert done.variables["title"] == LONG["title"]  # setVars applied on accept
    output = (await agent_run(h, execution.id)).output
    assert output["evaluation"]["escalation"] == {"decision": "accept", "note": "ok"}
    assert "status" not in output and output["data"] == LONG
    assert model.calls == 1


async def test_an_escalated_answer_rejected_by_a_person_fails_the_step(
    make_agent: MakeAgent,
) -> None:
    model = fake(answer(LONG), tool_calling=True)
    h = await make_agent(model)
    execution = await h.run(agent_flow(guarded({"validators": [SHORT]})), advance=False)
    assert execution.status == ExecutionStatus.WAITING
    await h.app.send_event(execution.id, "guardrail.a0", {"decision": "reject"})
    await h.drain(advance=False)
    done = await h.app.get_execution(execution.id)
    assert done.status == ExecutionStatus.FAILED
    assert done.error_info is not None and done.error_info.code == "GUARDRAIL_FAILED"
    run = await agent_run(h, execution.id)
    assert run.state["evaluation"]["escalation"]["decision"] == "reject"
    assert model.calls == 1


@dataclass
class ByModel:
    """Each model name its own fake (the judge is another model)."""

    models: dict[str, FakeChat]
    configured: bool = True
    asked: list[str] = field(default_factory=list)

    def chat_model(self, spec: ModelSpec) -> Any:
        self.asked.append(spec.model)
        return self.models[spec.model]


class WorkerKilled(BaseException):
    """The process dies (not an error the graph or the engine would handle)."""


@dataclass
class CrashAfterJudge(RunStateReplay):
    """Records like the runtime's replay, and kills the worker once, right after the
    judge's verdict is recorded (before the guard node ends and is checkpointed)."""

    crashed: bool = False

    async def save(self, run: StepRun, slot: str, value: Any) -> None:
        await super().save(run, slot, value)
        if slot.startswith("judge:") and not self.crashed:
            self.crashed = True
            raise WorkerKilled


@pytest.mark.parametrize("store", ["memory", "sqlite"])
async def test_a_crash_after_the_judges_verdict_does_not_ask_the_judge_again(
    make_agent: MakeAgent, store: str
) -> None:
    writer = fake(answer({"title": "Hello"}), tool_calling=True)
    judge = fake(usage(AIMessage('{"score": 0.9, "feedback": "polite"}'), 30, 8))
    h: Harness = await make_agent(store=store, engine=store)
    replay = CrashAfterJudge(h.store)
    deps = AiDependencies(
        settings=Settings.from_env({}),
        models=ByModel({"gemini-2.0-flash": writer, "judge-model": judge}),
        checkpoints=h.checkpoints,  # type: ignore[attr-defined]
        replay=replay,
    )
    register_ai_steps(h.registry, deps, replace=True)
    rubric = {"rubric": "Is it polite?", "minScore": 0.7, "model": "judge-model", "name": "polite"}
    workflow_id = await h.create(agent_flow(guarded({"validators": [rubric], "onFail": "fail"})))
    execution = await h.start(workflow_id)
    (task,) = h.queue.take_due(h.clock.now())
    with pytest.raises(WorkerKilled):
        await h.engine.handle_task(task)
    assert replay.crashed and (writer.calls, judge.calls) == (1, 1)
    h.clock.advance(3600)
    await h.deliver(task)
    await h.drain()
    done = await h.app.get_execution(execution.id)
    assert done.status == ExecutionStatus.SUCCEEDED, done.error
    assert (writer.calls, judge.calls) == (1, 1)  # neither the writer nor the judge again
    output = (await agent_run(h, execution.id)).output
    verdict = output["evaluation"]["verdicts"][0]
    assert verdict["passed"] and verdict["score"] == 0.9 and verdict["replayed"]
    assert verdict["model"] == "judge-model"
    assert "Hello" in str(judge.seen[0][-1].content)  # the judge saw the answer, as data
    # the judge's tokens count in the step's usage: the writer's 15 and the judge's 38
    assert output["usage"]["step"]["totalTokens"] == 53


async def test_agent_evaluations_are_aggregated_per_workflow(make_agent: MakeAgent) -> None:
    titles = ["ok", "much too long a title for it", "fine", "another far too long title"]
    model = fake(*(answer({"title": t}) for t in titles), tool_calling=True)
    h = await make_agent(model)
    config = guarded({"validators": [SHORT], "onFail": "continue"})
    workflow_id = await h.create(agent_flow(config, name="rated-agent"))
    tenant = ""
    for _ in titles:
        execution = await h.start(workflow_id)
        tenant = execution.tenant
        await h.drain()
    figures = await workflow_evaluations(h.store, tenant, workflow_id, 50)
    assert figures.executions == 4 and figures.pass_rate == 0.5
    (step,) = figures.steps
    assert step.step_id == "a0" and step.count == 4 and step.actions == {"pass": 2, "continue": 2}
    (validator,) = figures.validators
    assert (validator.validator, validator.count, validator.passed) == ("short", 4, 2)


async def test_agent_guardrails_are_checked_at_save_time(make_agent: MakeAgent) -> None:
    h = await make_agent()
    guardrails = {
        "validators": [{"cel": "vars.x + "}, {"schema": {"type": "object", "pattern": "x"}}],
        "onFail": "fallback",
    }
    with pytest.raises(DefinitionInvalid) as caught:
        await h.create(agent_flow(guarded(guardrails)))
    g = "/steps/0/config/guardrails"
    assert [(i.code, i.path) for i in caught.value.issues] == [
        ("EXPRESSION_SYNTAX", f"{g}/validators/0/cel"),
        ("SCHEMA_UNSUPPORTED", f"{g}/validators/1/schema/pattern"),
        ("GUARDRAIL_FALLBACK_REQUIRED", "/steps/0/onError"),
    ]
    # falling back is allowed with the step's onError fallback
    fine = agent_flow(guarded({"validators": [SHORT], "onFail": "fallback"}))
    fine["steps"][0]["onError"] = {"strategy": "fallback", "fallbackStep": "manual"}
    fine["steps"].append({"id": "manual", "type": "transform", "config": {"output": {"m": 1}}})
    await h.create(fine)
