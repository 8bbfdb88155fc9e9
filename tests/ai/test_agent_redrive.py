"""Redriving an agent step whose proposed tool call a person rejected (``onReject:
fail``) or nobody answered: the redrive goes on from the checkpoint before the
proposal and asks again, without asking the model again for the turns already
answered; a redelivery (the same generation) still fails as the rejection said."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from _agent_helpers import (
    MakeAgent,
    agent_flow,
    agent_harnesses,
    agent_run,
    answer,
    decision,
    tool_call,
)
from _ai_fakes import fake
from harness import Harness
from langchain_core.messages import HumanMessage, ToolMessage

from shared.models import ExecutionStatus, StepRunStatus

REJECTABLE = {
    "prompt": "Remember ${vars.topic}",
    "tools": ["read_variables", {"name": "set_variable", "requiresApproval": True}],
    "allowSideEffects": True,
    "onReject": "fail",
}


@pytest.fixture
async def make_agent(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[MakeAgent]:
    async with agent_harnesses(tmp_path, request) as make:
        yield make


async def _proposal(h: Harness, execution_id: str) -> dict[str, Any]:
    assert (await h.app.get_execution(execution_id)).status == ExecutionStatus.WAITING
    run = await agent_run(h, execution_id)
    assert run.output["status"] == "awaitingApproval"
    return dict(run.output["approval"])


async def _answer_and_crash(h: Harness, execution_id: str, event: str, payload: Any) -> None:
    """Send the answer; the worker whose delivery runs the step with it dies after the
    step ran, before its commit; that task is delivered again an hour later (the lease
    has expired)."""
    await h.app.send_event(execution_id, event, payload)
    step_type = h.registry.get("agent")
    real = step_type.execute
    crashed: list[Any] = []

    async def crash_after(ctx: Any) -> Any:
        try:
            await real(ctx)  # fails TOOL_CALL_REJECTED: the failure is not committed
        finally:
            raise asyncio.CancelledError

    step_type.execute = crash_after  # type: ignore[method-assign]
    try:
        while not crashed:
            tasks = h.queue.take_due(h.clock.now())
            assert tasks, "no delivery ran the step"
            for task in tasks:
                try:
                    await h.engine.handle_task(task)
                except asyncio.CancelledError:
                    crashed.append(task)
    finally:
        step_type.execute = real  # type: ignore[method-assign]
    h.clock.advance(3600)
    await h.deliver(crashed[0])
    await h.drain(advance=False)


@pytest.mark.parametrize("store", ["memory", "sqlite"])
async def test_a_redrive_after_a_rejection_asks_again_and_goes_on(
    make_agent: MakeAgent, store: str
) -> None:
    model = fake(
        tool_call("read_variables", {"names": ["topic"]}, "c0"),
        tool_call("set_variable", {"name": "fact", "value": "proposed"}, "c1"),
        answer("stored"),
        tool_calling=True,
    )
    h = await make_agent(model, store=store, engine=store)
    execution = await h.run(agent_flow(REJECTABLE), advance=False)
    first = await _proposal(h, execution.id)
    await h.app.send_event(execution.id, first["event"], decision("reject", by="ana"))
    await h.drain(advance=False)
    failed = await h.app.get_execution(execution.id)
    assert failed.status == ExecutionStatus.FAILED
    assert failed.error_info is not None and failed.error_info.code == "TOOL_CALL_REJECTED"
    assert model.calls == 2

    await h.app.redrive(execution.id)
    await h.drain(advance=False)
    again = await _proposal(h, execution.id)  # asked again, not failed at once
    assert again["tool"] == "set_variable" and again["callId"] == "c1"
    assert again["args"] == {"name": "fact", "value": "proposed"}
    assert again["event"] != first["event"]  # the old answer cannot be replayed onto it
    assert model.calls == 2  # the turns answered before the proposal were not asked again
    stale = await h.app.send_event(execution.id, first["event"], decision("approve"))
    await h.drain(advance=False)
    assert not stale.get("delivered") or await _proposal(h, execution.id) == again

    await h.app.send_event(execution.id, again["event"], decision("approve", by="ana"))
    await h.drain(advance=False)
    done = await h.app.get_execution(execution.id)
    assert done.status == ExecutionStatus.SUCCEEDED, done.error
    assert done.variables["fact"] == "proposed"
    assert model.calls == 3  # only the turn after the approved call
    runs = [r for r in await h.runs(execution.id) if r.step_id == "a0"]
    assert [r.generation for r in runs] == [0, 1]
    output = runs[-1].output
    assert output["text"] == "stored" and output["turns"] == 3
    assert [e["kind"] for e in output["entries"]] == ["model", "tool", "model", "tool", "model"]
    assert output["entries"][3]["approval"]["approved"] is True


@pytest.mark.parametrize("store", ["memory", "sqlite"])
async def test_a_redelivery_after_a_rejection_does_not_ask_again(
    make_agent: MakeAgent, store: str
) -> None:
    model = fake(
        tool_call("set_variable", {"name": "fact", "value": 1}, "c1"),
        answer("never"),
        tool_calling=True,
    )
    h = await make_agent(model, store=store, engine=store)
    execution = await h.run(agent_flow(REJECTABLE), advance=False)
    first = await _proposal(h, execution.id)
    await _answer_and_crash(h, execution.id, first["event"], decision("reject", reason="no"))
    failed = await h.app.get_execution(execution.id)
    assert failed.status == ExecutionStatus.FAILED  # the redelivery kept the rejection
    assert failed.error_info is not None and failed.error_info.code == "TOOL_CALL_REJECTED"

    # the same within a redrive's generation: it asks once, and a redelivery of its
    # rejection does not ask a third time
    await h.app.redrive(execution.id)
    await h.drain(advance=False)
    second = await _proposal(h, execution.id)
    await _answer_and_crash(h, execution.id, second["event"], decision("reject", reason="no"))
    again = await h.app.get_execution(execution.id)
    assert again.status == ExecutionStatus.FAILED
    assert again.error_info is not None and again.error_info.code == "TOOL_CALL_REJECTED"
    runs = [r for r in await h.runs(execution.id) if r.step_id == "a0"]
    assert [(r.generation, r.status) for r in runs] == [
        (0, StepRunStatus.FAILED),
        (1, StepRunStatus.FAILED),
    ]
    assert model.calls == 1


async def test_a_redrive_after_an_approval_timeout_proposes_the_call_anew(
    make_agent: MakeAgent,
) -> None:
    model = fake(
        tool_call("set_variable", {"name": "fact", "value": 2}, "c1"),
        answer("late but stored"),
        tool_calling=True,
    )
    h = await make_agent(model, sqlite=True, store="sqlite")
    execution = await h.run(agent_flow({**REJECTABLE, "approvalTimeoutSeconds": 60}))
    timed_out = await h.app.get_execution(execution.id)
    assert timed_out.error_info is not None and timed_out.error_info.code == "APPROVAL_TIMEOUT"
    await h.app.redrive(execution.id)
    await h.drain(advance=False)
    proposal = await _proposal(h, execution.id)
    assert proposal["deadline"] > h.clock.now().isoformat()  # a fresh deadline
    await h.app.send_event(execution.id, proposal["event"], decision("approve"))
    await h.drain(advance=False)
    done = await h.app.get_execution(execution.id)
    assert done.status == ExecutionStatus.SUCCEEDED, done.error
    assert done.variables["fact"] == 2 and model.calls == 2


# Guardrails: a redrive of an answer they failed asks the agent anew, telling it why.
SHORT = {"cel": "size(output.title) < 20", "message": "the title is too long", "name": "short"}
LONG = {"title": "a title far too long for the check"}
LONGER = {"title": "still a title far too long for the check"}


def titled(data: dict[str, Any]) -> Any:
    return answer(json.dumps(data))


def guarded(**guardrails: Any) -> dict[str, Any]:
    return {
        "prompt": "Title for ${vars.topic}",
        "tools": ["read_variables"],
        "outputSchema": {"type": "object", "required": ["title"]},
        "setVars": True,
        "guardrails": {"validators": [SHORT], **guardrails},
    }


async def _crash_next_delivery(h: Harness) -> None:
    """The worker whose next delivery runs the agent dies after the step ran, before
    its commit; that task is delivered again an hour later."""
    step_type = h.registry.get("agent")
    real = step_type.execute
    crashed: list[Any] = []

    async def crash_after(ctx: Any) -> Any:
        try:
            await real(ctx)
        finally:
            raise asyncio.CancelledError

    step_type.execute = crash_after  # type: ignore[method-assign]
    try:
        while not crashed:
            tasks = h.queue.take_due(h.clock.now())
            assert tasks, "no delivery ran the step"
            for task in tasks:
                try:
                    await h.engine.handle_task(task)
                except asyncio.CancelledError:
                    crashed.append(task)
    finally:
        step_type.execute = real  # type: ignore[method-assign]
    h.clock.advance(3600)
    await h.deliver(crashed[0])
    await h.drain(advance=False)


@pytest.mark.parametrize("store", ["memory", "sqlite"])
async def test_a_redrive_after_a_failed_guardrail_asks_the_agent_anew(
    make_agent: MakeAgent, store: str
) -> None:
    model = fake(
        tool_call("read_variables", {"names": ["topic"]}, "c0"),
        titled(LONG),
        titled({"title": "Durable flows"}),
        tool_calling=True,
    )
    h = await make_agent(model, store=store, engine=store)
    execution = await h.run(agent_flow(guarded(onFail="fail")), advance=False)
    failed = await h.app.get_execution(execution.id)
    assert failed.error_info is not None and failed.error_info.code == "GUARDRAIL_FAILED"
    assert model.calls == 2

    await h.app.redrive(execution.id)
    await h.drain(advance=False)
    done = await h.app.get_execution(execution.id)
    assert done.status == ExecutionStatus.SUCCEEDED, done.error
    assert done.variables["title"] == "Durable flows"
    assert model.calls == 3  # the agent was asked once more, and only once
    asked = model.seen[2]  # on the same thread: its tool result and failed answer kept,
    assert isinstance(asked[-1], HumanMessage)  # then why that answer failed
    assert "short: the title is too long" in str(asked[-1].content)
    assert json.loads(str(asked[-2].content)) == LONG
    assert any(isinstance(m, ToolMessage) for m in asked)
    runs = [r for r in await h.runs(execution.id) if r.step_id == "a0"]
    assert [(r.generation, r.status) for r in runs] == [
        (0, StepRunStatus.FAILED),
        (1, StepRunStatus.SUCCEEDED),
    ]
    evaluation = runs[-1].output["evaluation"]
    assert evaluation["passed"] is True and evaluation["rounds"] == 2
    assert evaluation["history"][0][0]["passed"] is False
    kinds = [e["kind"] for e in runs[-1].output["entries"]]
    assert kinds == ["model", "tool", "model", "model"]


@pytest.mark.parametrize("store", ["memory", "sqlite"])
async def test_a_redrive_after_a_rejected_escalation_asks_the_agent_then_the_person(
    make_agent: MakeAgent, store: str
) -> None:
    model = fake(titled(LONG), titled(LONGER), tool_calling=True)
    h = await make_agent(model, store=store, engine=store)
    execution = await h.run(agent_flow(guarded()), advance=False)  # onFail: escalate
    assert (await h.app.get_execution(execution.id)).status == ExecutionStatus.WAITING
    await h.app.send_event(execution.id, "guardrail.a0", {"decision": "reject"})
    await h.drain(advance=False)
    rejected = await h.app.get_execution(execution.id)
    assert rejected.error_info is not None and rejected.error_info.code == "GUARDRAIL_FAILED"

    await h.app.redrive(execution.id)
    await h.drain(advance=False)
    assert (await h.app.get_execution(execution.id)).status == ExecutionStatus.WAITING
    assert model.calls == 2  # the agent answered anew before anyone was asked
    run = await agent_run(h, execution.id)
    assert run.generation == 1 and run.output["status"] == "awaitingDecision"
    assert run.output["data"] == LONGER  # the person decides on the new answer
    await h.app.send_event(execution.id, "guardrail.a0", {"decision": "accept"})
    await h.drain(advance=False)
    done = await h.app.get_execution(execution.id)
    assert done.status == ExecutionStatus.SUCCEEDED, done.error
    assert done.variables["title"] == LONGER["title"] and model.calls == 2


async def test_a_redelivery_of_a_guardrail_redrive_does_not_ask_again(
    make_agent: MakeAgent,
) -> None:
    model = fake(titled(LONG), titled(LONGER), titled({"title": "never"}), tool_calling=True)
    h = await make_agent(model, sqlite=True, store="sqlite")
    execution = await h.run(agent_flow(guarded(onFail="fail")), advance=False)
    await h.app.redrive(execution.id)
    await _crash_next_delivery(h)  # the redrive asked the agent, failed again, died
    again = await h.app.get_execution(execution.id)
    assert again.error_info is not None and again.error_info.code == "GUARDRAIL_FAILED"
    assert model.calls == 2  # its redelivery did not ask a third time
    run = await agent_run(h, execution.id)
    assert run.generation == 1 and run.state["evaluation"]["rounds"] == 2


@pytest.mark.parametrize("store", ["memory", "sqlite"])
async def test_a_redrive_after_an_escalation_timeout_asks_the_agent_then_the_person(
    make_agent: MakeAgent, store: str
) -> None:
    model = fake(titled(LONG), titled(LONGER), tool_calling=True)
    h = await make_agent(model, store=store, engine=store)
    execution = await h.run(agent_flow(guarded(escalateTimeoutSeconds=60)))  # clock moves
    timed_out = await h.app.get_execution(execution.id)
    assert timed_out.status == ExecutionStatus.FAILED
    assert timed_out.error_info is not None
    assert timed_out.error_info.code == "GUARDRAIL_TIMEOUT"
    assert model.calls == 1

    await h.app.redrive(execution.id)
    await h.drain(advance=False)
    assert (await h.app.get_execution(execution.id)).status == ExecutionStatus.WAITING
    assert model.calls == 2  # the agent answered anew (told why), then a person is asked
    assert "short: the title is too long" in str(model.seen[1][-1].content)
    run = await agent_run(h, execution.id)
    assert run.generation == 1 and run.output["status"] == "awaitingDecision"
    assert run.output["data"] == LONGER
    await h.app.send_event(execution.id, "guardrail.a0", {"decision": "accept"})
    await h.drain(advance=False)
    done = await h.app.get_execution(execution.id)
    assert done.status == ExecutionStatus.SUCCEEDED, done.error
    assert done.variables["title"] == LONGER["title"] and model.calls == 2
