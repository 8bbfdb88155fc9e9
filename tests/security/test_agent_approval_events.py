"""Issue 16: an approval of an agent's proposed tool call answers that call only.

The event that approves (or rejects) a call is named per step visit and per call,
with a random part (``agent.approval.<step>.v<visit>.<random>``): an approval sent to
another execution, replayed after its call was answered, guessed, or sent for another
step's visit does not resume the waiting call, and a payload cannot swap the tool.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(TESTS / "engine"), str(TESTS / "ai")]

from _agent_helpers import (  # noqa: E402
    MakeAgent,
    agent_flow,
    agent_harnesses,
    agent_run,
    answer,
    decision,
    tool_call,
)
from _ai_fakes import fake  # noqa: E402

from shared.models import ExecutionStatus  # noqa: E402

CONFIG = {
    "prompt": "go",
    "tools": [{"name": "set_variable", "requiresApproval": True}],
    "allowSideEffects": True,
}


@pytest.fixture
async def make_agent(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[MakeAgent]:
    async with agent_harnesses(tmp_path, request) as make:
        yield make


def setting(value: str, call_id: str) -> object:
    return tool_call("set_variable", {"name": "flag", "value": value}, call_id)


async def _event(h: object, execution_id: str) -> str:
    run = await agent_run(h, execution_id)  # type: ignore[arg-type]
    return str(run.output["approval"]["event"])


async def test_an_approval_for_another_execution_does_not_resume_this_one(
    make_agent: MakeAgent,
) -> None:
    model = fake(
        setting("a", "c1"),
        setting("b", "c1"),
        answer("A done"),
        answer("B done"),
        tool_calling=True,
    )
    h = await make_agent(model)
    workflow_id = await h.create(agent_flow(CONFIG))
    first = await h.start(workflow_id)
    await h.drain(advance=False)
    second = await h.start(workflow_id)
    await h.drain(advance=False)
    first_event, second_event = await _event(h, first.id), await _event(h, second.id)
    assert first_event != second_event  # same step, same visit number: still distinct

    sent = await h.app.send_event(second.id, first_event, decision("approve"))
    assert sent["delivered"] is False
    await h.drain(advance=False)
    waiting = await h.app.get_execution(second.id)
    assert waiting.status == ExecutionStatus.WAITING and "flag" not in waiting.variables
    entries = (await agent_run(h, second.id)).output["entries"]
    assert [e["kind"] for e in entries] == ["model"]  # the proposed call did not run

    await h.app.send_event(second.id, second_event, decision("approve"))
    await h.drain(advance=False)
    assert (await h.app.get_execution(second.id)).variables["flag"] == "b"
    assert (await h.app.get_execution(first.id)).status == ExecutionStatus.WAITING


async def test_a_replayed_or_guessed_approval_does_not_answer_the_next_call(
    make_agent: MakeAgent,
) -> None:
    model = fake(setting("one", "c1"), setting("two", "c2"), answer("done"), tool_calling=True)
    h = await make_agent(model)
    execution = await h.run(agent_flow(CONFIG), advance=False)
    first_event = await _event(h, execution.id)
    await h.app.send_event(execution.id, first_event, decision("approve"))
    await h.drain(advance=False)
    second_event = await _event(h, execution.id)
    assert second_event != first_event and second_event.startswith("agent.approval.a0.v1.")

    replayed = await h.app.send_event(execution.id, first_event, decision("approve"))
    guessed = "agent.approval.a0.v1." + "0" * 16
    forged = await h.app.send_event(execution.id, guessed, decision("approve"))
    other_step = second_event.replace(".a0.", ".a1.")
    other_visit = second_event.replace(".v1.", ".v2.")
    for name in (other_step, other_visit):
        sent = await h.app.send_event(execution.id, name, decision("approve"))
        assert sent["delivered"] is False
    assert replayed["delivered"] is False and forged["delivered"] is False
    await h.drain(advance=False)
    assert (await h.app.get_execution(execution.id)).status == ExecutionStatus.WAITING
    run = await agent_run(h, execution.id)
    assert run.output["approval"]["event"] == second_event
    ran = [e["input"] for e in run.output["entries"] if e["kind"] == "tool"]
    assert ran == [{"name": "flag", "value": "one"}]  # only the approved call ran
    assert model.calls == 2  # the second call still waits: no further model turn

    await h.app.send_event(execution.id, second_event, decision("reject", by="eve"))
    await h.drain(advance=False)
    done = await h.app.get_execution(execution.id)
    assert done.status == ExecutionStatus.SUCCEEDED and done.variables["flag"] == "one"


async def test_a_payload_cannot_swap_the_tool_being_approved(make_agent: MakeAgent) -> None:
    model = fake(setting("safe", "c1"), answer("done"), tool_calling=True)
    h = await make_agent(model)
    config = {**CONFIG, "tools": ["read_variables", *CONFIG["tools"]]}  # type: ignore[list-item]
    execution = await h.run(agent_flow(config), advance=False)
    event = await _event(h, execution.id)
    hostile = decision("approve", tool="read_variables", name="publish_message", callId="x")
    await h.app.send_event(execution.id, event, hostile)
    await h.drain(advance=False)
    done = await h.app.get_execution(execution.id)
    assert done.status == ExecutionStatus.SUCCEEDED and done.variables["flag"] == "safe"
    entries = (await agent_run(h, execution.id)).output["entries"]
    assert [(e["kind"], e["name"]) for e in entries][1] == ("tool", "set_variable")
