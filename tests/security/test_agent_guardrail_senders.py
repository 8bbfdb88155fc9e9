"""An agent step's escalated answer (its guardrails' ``escalate``) is decided only by
the principals its ``guardrails.answeredBy`` names, and its proposed tool calls are
approved only by those its own ``answeredBy`` names; a decision records its
authenticated sender, not a claim of the payload.

Guardrails on agent steps came after the events endpoint learnt the answerers of llm
escalations, and at first it let anyone's decision on an agent's escalation through
(the step then ignored it). Now the events endpoint answers anyone else 403
``EVENT_SENDER_NOT_ALLOWED`` over REST and GraphQL, and nothing resumes; the step
itself still refuses such a decision (it keeps waiting) when one reaches it by
another way than the endpoint (a signal sent to the engine directly).
"""

from __future__ import annotations

import asyncio
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
from _served import ALICE, API, ERIN, Served, served  # noqa: E402
from langchain_core.messages import AIMessage  # noqa: E402

from shared.errors import SenderNotAllowed  # noqa: E402
from shared.models import ExecutionStatus  # noqa: E402

LONG = {"title": "a title far too long for the check"}
GUARDED = {
    "prompt": "go",
    "outputSchema": {"type": "object", "required": ["title"]},
    "setVars": True,
    "guardrails": {
        "validators": [{"cel": "size(output.title) < 20", "name": "short"}],
        "answeredBy": ["maria@example.com"],
    },
}


@pytest.fixture
async def make_agent(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[MakeAgent]:
    async with agent_harnesses(tmp_path, request) as make:
        yield make


async def test_only_the_named_principals_decide_on_an_agents_escalated_answer(
    make_agent: MakeAgent,
) -> None:
    model = fake(usage(AIMessage(json.dumps(LONG)), 10, 5), tool_calling=True)
    h = await make_agent(model)
    execution = await h.run(agent_flow(GUARDED), advance=False)
    assert execution.status == ExecutionStatus.WAITING, execution.error
    forged = {"decision": "accept", "by": "maria@example.com"}  # a claim, not the sender
    with pytest.raises(SenderNotAllowed):
        await h.app.send_event(execution.id, "guardrail.a0", forged, sender="mallory@example.com")
    with pytest.raises(SenderNotAllowed):  # nor without a sender
        await h.app.send_event(execution.id, "guardrail.a0", forged)
    # past the door (the engine's own signal), the step does not take it either
    await h.engine.send_signal(execution.id, "guardrail.a0", forged, sender="mallory@example.com")
    await h.drain(advance=False)
    still = await h.app.get_execution(execution.id)
    assert still.status == ExecutionStatus.WAITING  # nothing was decided
    assert "title" not in still.variables
    run = await agent_run(h, execution.id)
    assert run.state["signal"] == "guardrail.a0" and "escalation" not in run.state["evaluation"]


async def test_the_named_principal_decides_and_is_recorded(make_agent: MakeAgent) -> None:
    model = fake(usage(AIMessage(json.dumps(LONG)), 10, 5), tool_calling=True)
    h = await make_agent(model)
    execution = await h.run(agent_flow(GUARDED), advance=False)
    decision = {"decision": "accept", "by": "someone-else"}
    await h.app.send_event(execution.id, "guardrail.a0", decision, sender="maria@example.com")
    await h.drain(advance=False)
    done = await h.app.get_execution(execution.id)
    assert done.status == ExecutionStatus.SUCCEEDED, done.error
    escalation = (await agent_run(h, execution.id)).output["evaluation"]["escalation"]
    assert escalation["by"] == "maria@example.com" and escalation["decision"] == "accept"
    assert done.variables["title"] == LONG["title"]


APPROVED_BY_ALICE = {
    "prompt": "go",
    "tools": [{"name": "set_variable", "requiresApproval": True}],
    "allowSideEffects": True,
    "answeredBy": ["alice@example.com"],
}


async def test_past_the_door_an_agents_call_is_approved_only_by_its_answerers(
    make_agent: MakeAgent,
) -> None:
    call = tool_call("set_variable", {"name": "flag", "value": "x"}, "c1")
    h = await make_agent(fake(call, answer("done"), tool_calling=True))
    execution = await h.run(agent_flow(APPROVED_BY_ALICE), advance=False)
    event = str((await agent_run(h, execution.id)).output["approval"]["event"])
    await h.engine.send_signal(execution.id, event, decision("approve"), sender="mallory")
    await h.drain(advance=False)
    assert (await h.app.get_execution(execution.id)).status == ExecutionStatus.WAITING
    run = await agent_run(h, execution.id)
    assert [e["kind"] for e in run.output["entries"]] == ["model"]  # the tool never ran
    assert run.state["approvalIgnored"]["signal"] == event

    await h.app.send_event(execution.id, event, decision("approve"), sender="alice@example.com")
    await h.drain(advance=False)
    assert (await h.app.get_execution(execution.id)).status == ExecutionStatus.SUCCEEDED
    tool = (await agent_run(h, execution.id)).output["entries"][1]
    assert tool["approval"]["by"] == "alice@example.com"


# Through the API: alice (admin) alone approves the agent's calls, erin (editor) alone
# decides on its escalated answer; each is refused the other's event.
SERVED_FLOW = {
    "name": "agent-senders",
    "steps": [
        {
            "id": "draft",
            "type": "agent",
            "config": {
                "prompt": "Title it.",
                "tools": [{"name": "set_variable", "requiresApproval": True}],
                "allowSideEffects": True,
                "answeredBy": ["alice"],
                "outputSchema": {"type": "object", "required": ["title"]},
                "setVars": True,
                "guardrails": {
                    "validators": [{"cel": "size(output.title) < 20", "name": "short"}],
                    "onFail": "escalate",
                    "answeredBy": ["erin"],
                },
            },
        }
    ],
}
RECORDING = {
    "workflow": "agent-senders",
    "steps": {
        "draft": {
            "turns": [
                {
                    "content": "",
                    "toolCalls": [
                        {"id": "c1", "name": "set_variable", "args": {"name": "n", "value": "1"}}
                    ],
                    "usage": {"inputTokens": 9, "outputTokens": 3},
                },
                {"content": json.dumps(LONG), "usage": {"inputTokens": 9, "outputTokens": 5}},
            ]
        }
    },
}
GQL_SEND = (
    "mutation($id: ID!, $name: String!, $payload: JSON) {"
    " sendEvent(executionId: $id, name: $name, payload: $payload) {"
    " __typename ... on EventDelivery { delivered } ... on UserError { code } } }"
)


async def _draft(s: Served, execution_id: str, status: str) -> dict[str, Any]:
    """The agent's waiting step run once its output's status is ``status``
    (``awaitingApproval``: a proposed call; ``awaitingDecision``: an escalated answer),
    with the event it waits for as ``event``."""
    for _ in range(500):
        steps = await s.api.get(f"{API}/executions/{execution_id}/steps", headers=ALICE)
        runs = [r for r in steps.json()["items"] if r["stepId"] == "draft"]
        run = runs[-1] if runs else {}
        output = run.get("output")
        assert run.get("status") != "failed", run
        if run.get("status") == "waiting" and isinstance(output, dict):
            waits = output.get("approval") or output.get("escalation") or {}
            if output.get("status") == status:
                return {**run, "event": waits.get("event")}
        await asyncio.sleep(0.02)
    raise AssertionError(f"the agent never waited with {status}")


async def _refused(s: Served, headers: dict[str, str], execution_id: str, name: str) -> None:
    """``name`` sent by the principal of ``headers`` is refused over REST and GraphQL."""
    payload = (
        {"decision": "approve", "by": "alice"}
        if name.startswith("agent.")
        else {"decision": "accept"}
    )
    url = f"{API}/executions/{execution_id}/events"
    rest = await s.api.post(url, json={"name": name, "payload": payload}, headers=headers)
    assert rest.status_code == 403, rest.text
    assert rest.json()["error"]["code"] == "EVENT_SENDER_NOT_ALLOWED"
    variables = {"id": execution_id, "name": name, "payload": payload}
    gql = await s.api.post(
        "/graphql", json={"query": GQL_SEND, "variables": variables}, headers=headers
    )
    body = gql.json()
    sent = (body.get("data") or {}).get("sendEvent")  # a UserError, or null with errors
    codes = [(e.get("extensions") or {}).get("code") for e in body.get("errors") or []]
    codes += [sent.get("code")] if isinstance(sent, dict) else []
    assert codes == ["EVENT_SENDER_NOT_ALLOWED"], gql.text


async def _woken(s: Served, execution_id: str) -> int:
    events = await s.runtime.app.for_tenant("tenant-a").events(execution_id)
    return sum(1 for e in events if e.type == "step.woken")


async def test_the_events_endpoint_refuses_an_agents_events_to_others(tmp_path: Path) -> None:
    (tmp_path / "senders.recording.json").write_text(json.dumps(RECORDING))
    async with served(tmp_path, ai_recordings_dir=str(tmp_path)) as s:
        # its own name (``Served.create`` adds a suffix): the recording is found by it
        created = await s.api.post(f"{API}/workflows", json=SERVED_FLOW, headers=ALICE)
        assert created.status_code == 201, created.text
        workflow_id = created.json()["id"]
        started = await s.api.post(f"{API}/workflows/{workflow_id}/execute", json={}, headers=ERIN)
        assert started.status_code in (200, 201, 202), started.text
        execution_id = str(started.json()["id"])

        call = await _draft(s, execution_id, "awaitingApproval")
        assert str(call["event"]).startswith("agent.approval.draft.")
        await _refused(s, ERIN, execution_id, call["event"])
        await asyncio.sleep(0.3)  # nothing resumes, not even later
        assert await _woken(s, execution_id) == 0
        again = await _draft(s, execution_id, "awaitingApproval")
        assert again["id"] == call["id"] and again["event"] == call["event"]
        assert [e["kind"] for e in again["output"]["entries"]] == ["model"]
        url = f"{API}/executions/{execution_id}/events"
        approve = {"name": call["event"], "payload": {"decision": "approve"}}
        assert (await s.api.post(url, json=approve, headers=ALICE)).status_code == 202

        escalated = await _draft(s, execution_id, "awaitingDecision")
        assert escalated["event"] == "guardrail.draft"
        assert escalated["output"]["evaluation"]["passed"] is False
        woken = await _woken(s, execution_id)
        await _refused(s, ALICE, execution_id, "guardrail.draft")
        await asyncio.sleep(0.3)
        assert await _woken(s, execution_id) == woken
        held = await _draft(s, execution_id, "awaitingDecision")
        assert held["id"] == escalated["id"] and held["status"] == "waiting"
        assert "escalation" not in held["output"]["evaluation"]
        execution = (await s.api.get(f"{API}/executions/{execution_id}", headers=ERIN)).json()
        assert execution["status"] == "waiting" and "title" not in execution["variables"]

        accept = {"name": "guardrail.draft", "payload": {"decision": "accept", "by": "alice"}}
        assert (await s.api.post(url, json=accept, headers=ERIN)).status_code == 202
        for _ in range(500):
            execution = (await s.api.get(f"{API}/executions/{execution_id}", headers=ERIN)).json()
            if execution["status"] != "waiting":
                break
            await asyncio.sleep(0.02)
        assert execution["status"] == "succeeded", execution
        assert execution["variables"]["title"] == LONG["title"]
        steps = await s.api.get(f"{API}/executions/{execution_id}/steps", headers=ERIN)
        [run] = [r for r in steps.json()["items"] if r["stepId"] == "draft"][-1:]
        assert run["output"]["evaluation"]["escalation"]["by"] == "erin"
