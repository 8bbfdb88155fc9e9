"""An agent step's escalated answer (its guardrails' ``escalate``) is decided only by
the principals its ``guardrails.answeredBy`` names, and the decision records its
authenticated sender, not a claim of the payload.

Guardrails on agent steps came after the events endpoint learnt the answerers of llm
escalations; the step itself refuses a decision from anyone else (it keeps waiting),
whatever the endpoint let through.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(TESTS / "engine"), str(TESTS / "ai")]

from _agent_helpers import MakeAgent, agent_flow, agent_harnesses, agent_run  # noqa: E402
from _ai_fakes import fake, usage  # noqa: E402
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
    with contextlib.suppress(SenderNotAllowed):  # refused at the door is as good
        await h.app.send_event(execution.id, "guardrail.a0", forged, sender="mallory@example.com")
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
