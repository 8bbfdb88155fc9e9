"""Who approves an agent's tool call or decides on an escalated answer is the
authenticated sender of the event, and a step can name who may (``answeredBy``).

Found in review of issue 16: the approver recorded on an agent's tool call was the
``by`` of the event's payload, so anyone with the operate role could approve a call
as someone else, and neither agent approvals nor guardrail escalations could be
limited to named people the way ``wait_for_event`` steps are.
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

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
from _ai_fakes import fake, usage  # noqa: E402
from langchain_core.messages import AIMessage  # noqa: E402

from shared.errors import SenderNotAllowed  # noqa: E402
from shared.models import ExecutionStatus  # noqa: E402


@pytest.fixture
async def make_agent(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[MakeAgent]:
    async with agent_harnesses(tmp_path, request) as make:
        yield make


def approving(**config: Any) -> dict[str, Any]:
    return {
        "prompt": "go",
        "tools": [{"name": "set_variable", "requiresApproval": True}],
        "allowSideEffects": True,
        **config,
    }


def setting(value: str) -> AIMessage:
    return tool_call("set_variable", {"name": "flag", "value": value}, "c1")


async def waiting_event(h: Any, execution_id: str) -> str:
    run = await agent_run(h, execution_id)
    return str(run.output["approval"]["event"])


async def test_the_recorded_approver_is_the_sender_not_the_payloads_claim(
    make_agent: MakeAgent,
) -> None:
    h = await make_agent(fake(setting("x"), answer("done"), tool_calling=True))
    execution = await h.run(agent_flow(approving()), advance=False)
    assert execution.status == ExecutionStatus.WAITING
    event = await waiting_event(h, execution.id)
    sent = await h.app.send_event(
        execution.id, event, decision("approve", by="the-cfo"), sender="mallory"
    )
    assert sent["delivered"] is True
    await h.drain(advance=False)
    assert (await h.app.get_execution(execution.id)).status == ExecutionStatus.SUCCEEDED
    tool = (await agent_run(h, execution.id)).output["entries"][1]
    assert tool["approval"]["by"] == "mallory"


async def test_only_the_named_approvers_may_answer_an_agents_call(
    make_agent: MakeAgent,
) -> None:
    h = await make_agent(fake(setting("x"), answer("done"), tool_calling=True))
    workflow = agent_flow(approving(answeredBy=["alice@example.com"]))
    execution = await h.run(workflow, advance=False)
    event = await waiting_event(h, execution.id)
    with pytest.raises(SenderNotAllowed):
        await h.app.send_event(execution.id, event, decision("approve"), sender="mallory")
    with pytest.raises(SenderNotAllowed):
        await h.app.send_event(execution.id, event, decision("approve"))  # no sender
    await h.drain(advance=False)
    assert (await h.app.get_execution(execution.id)).status == ExecutionStatus.WAITING
    assert [e["kind"] for e in (await agent_run(h, execution.id)).output["entries"]] == ["model"]

    sent = await h.app.send_event(
        execution.id, event, decision("approve"), sender="alice@example.com"
    )
    assert sent["delivered"] is True
    await h.drain(advance=False)
    assert (await h.app.get_execution(execution.id)).status == ExecutionStatus.SUCCEEDED
    tool = (await agent_run(h, execution.id)).output["entries"][1]
    assert tool["approval"]["by"] == "alice@example.com"


def guarded(**guardrails: Any) -> dict[str, Any]:
    config = {
        "prompt": "title",
        "outputSchema": {"type": "object", "properties": {"title": {"type": "string"}}},
        "guardrails": {
            "validators": [{"cel": "size(output.title) < 5", "message": "too long"}],
            "onFail": "escalate",
            **guardrails,
        },
    }
    return {"name": "guarded", "steps": [{"id": "w0", "type": "llm", "config": config}]}


async def test_only_the_named_people_may_decide_an_escalated_answer(
    make_agent: MakeAgent,
) -> None:
    long = usage(AIMessage(json.dumps({"title": "far too long"})), 10, 5)
    h = await make_agent(fake(long))
    execution = await h.run(guarded(answeredBy=["alice@example.com"]), advance=False)
    assert execution.status == ExecutionStatus.WAITING, execution.error
    with pytest.raises(SenderNotAllowed):
        await h.app.send_event(
            execution.id, "guardrail.w0", {"decision": "accept"}, sender="mallory"
        )
    await h.drain(advance=False)
    assert (await h.app.get_execution(execution.id)).status == ExecutionStatus.WAITING

    await h.app.send_event(
        execution.id, "guardrail.w0", {"decision": "accept"}, sender="alice@example.com"
    )
    await h.drain(advance=False)
    done = await h.app.get_execution(execution.id)
    assert done.status == ExecutionStatus.SUCCEEDED, done.error
    run = (await h.runs(execution.id))[-1]
    assert run.output["evaluation"]["escalation"]["by"] == "alice@example.com"


async def test_a_wait_for_event_step_records_who_answered(make_agent: MakeAgent) -> None:
    h = await make_agent()
    flow = {
        "name": "ask",
        "steps": [
            {"id": "ask", "type": "wait_for_event", "config": {"event": "ok", "timeoutSeconds": 60}}
        ],
    }
    execution = await h.run(flow, advance=False)
    await h.app.send_event(execution.id, "ok", {"by": "the-cfo"}, sender="bob")
    await h.drain(advance=False)
    run = (await h.runs(execution.id))[-1]
    assert run.output == {"event": "ok", "payload": {"by": "the-cfo"}, "sentBy": "bob"}
