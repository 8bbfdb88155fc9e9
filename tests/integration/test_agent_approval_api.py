"""Issue 16: an agent's proposed tool call through the API of a real local runtime.

The agent replays a recording (no model offline) whose first turn asks for a tool
that requiresApproval: the execution is ``waiting`` with the proposed call in the
step run's output (REST and GraphQL) and on the event stream; approving it with
edited args through ``POST /executions/{id}/events`` runs the tool with those args;
rejecting it with ``onReject: fail`` fails the step with ``TOOL_CALL_REJECTED``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from shared.api.rest import create_management_app
from shared.composition import LocalRuntime, build_local
from shared.composition.edge import build_edge
from shared.settings import Settings

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

RECORDING = {
    "workflow": "agent-approval",
    "steps": {
        "remember": {
            "turns": [
                {
                    "content": "",
                    "toolCalls": [
                        {
                            "id": "call_1",
                            "name": "set_variable",
                            "args": {"name": "fact", "value": "proposed"},
                        }
                    ],
                    "usage": {"inputTokens": 40, "outputTokens": 8},
                },
                {"content": "noted", "usage": {"inputTokens": 60, "outputTokens": 2}},
            ]
        }
    },
}


def definition(on_reject: str = "continue") -> dict[str, Any]:
    config = {
        "prompt": "Remember a fact.",
        "tools": ["read_variables", {"name": "set_variable", "requiresApproval": True}],
        "allowSideEffects": True,
        "onReject": on_reject,
    }
    return {
        "name": "agent-approval",
        "steps": [{"id": "remember", "type": "agent", "config": config}],
    }


@pytest.fixture
async def agent_api(tmp_path: Path) -> AsyncIterator[tuple[LocalRuntime, httpx.AsyncClient]]:
    (tmp_path / "agent.recording.json").write_text(json.dumps(RECORDING))
    settings = Settings.local_mode(db_path=str(tmp_path / "t.db")).with_overrides(
        ai_recordings_dir=str(tmp_path)
    )
    runtime = build_local(settings)
    await runtime.start()
    edge = build_edge(runtime.settings, runtime=runtime)
    await edge.start()
    app = create_management_app(edge, lifespan=False)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://create.test") as api:
            yield runtime, api
    finally:
        await edge.stop()
        await asyncio.sleep(0.2)  # let the last delivery commit
        await runtime.stop()


async def _start(api: httpx.AsyncClient, on_reject: str = "continue") -> str:
    created = await api.post("/api/v1/workflows", json=definition(on_reject))
    assert created.status_code == 201, created.text
    started = await api.post(f"/api/v1/workflows/{created.json()['id']}/execute", json={})
    assert started.status_code in (200, 201, 202), started.text
    return str(started.json()["id"])


async def _until(api: httpx.AsyncClient, execution_id: str, *statuses: str) -> dict[str, Any]:
    for _ in range(300):
        execution = (await api.get(f"/api/v1/executions/{execution_id}")).json()
        if execution["status"] in statuses:
            return dict(execution)
        await asyncio.sleep(0.02)
    raise AssertionError(f"execution never became {statuses}: {execution}")


async def _waiting_call(api: httpx.AsyncClient, execution_id: str) -> dict[str, Any]:
    await _until(api, execution_id, "waiting")
    steps = (await api.get(f"/api/v1/executions/{execution_id}/steps")).json()["items"]
    run = [s for s in steps if s["stepId"] == "remember"][-1]
    assert run["status"] == "waiting" and run["output"]["status"] == "awaitingApproval"
    return dict(run["output"]["approval"])


async def test_approve_with_edited_args_through_the_events_endpoint(
    agent_api: tuple[LocalRuntime, httpx.AsyncClient],
) -> None:
    _, api = agent_api
    execution_id = await _start(api)
    proposed = await _waiting_call(api, execution_id)
    assert proposed["tool"] == "set_variable"
    assert proposed["args"] == {"name": "fact", "value": "proposed"}

    query = """query($id: ID!) { execution(id: $id) {
        status steps(stepId: "remember") { status output } } }"""
    graphql = await api.post("/graphql", json={"query": query, "variables": {"id": execution_id}})
    seen = graphql.json()["data"]["execution"]
    assert str(seen["status"]).lower() == "waiting"
    assert seen["steps"][-1]["output"]["approval"]["event"] == proposed["event"]
    events = (await api.get(f"/api/v1/executions/{execution_id}/events")).json()["items"]
    streamed = [e["data"] for e in events if e["type"] == "step.progress"]
    assert any(d.get("approval", {}).get("event") == proposed["event"] for d in streamed)

    answer = {"decision": "approve", "args": {"name": "fact", "value": "edited"}, "by": "ops"}
    sent = await api.post(
        f"/api/v1/executions/{execution_id}/events",
        json={"name": proposed["event"], "payload": answer},
    )
    assert sent.status_code == 202 and sent.json()["delivered"] is True, sent.text
    done = await _until(api, execution_id, "succeeded", "failed")
    assert done["status"] == "succeeded", done
    assert done["variables"]["fact"] == "edited"  # the tool got the edited args
    steps = (await api.get(f"/api/v1/executions/{execution_id}/steps")).json()["items"]
    output = [s for s in steps if s["stepId"] == "remember"][-1]["output"]
    tool = [e for e in output["entries"] if e["kind"] == "tool"]
    assert tool[0]["input"] == {"name": "fact", "value": "edited"}
    assert (
        tool[0]["approval"]["by"] == "local-dev"
    )  # the authenticated sender, not the payload's "by"
    events = (await api.get(f"/api/v1/executions/{execution_id}/events")).json()["items"]
    entries = [e["data"]["entry"] for e in events if "entry" in e.get("data", {})]
    assert [e["kind"] for e in entries][-3:] == ["model", "tool", "model"]


async def test_a_rejection_fails_the_step_when_the_workflow_says_so(
    agent_api: tuple[LocalRuntime, httpx.AsyncClient],
) -> None:
    _, api = agent_api
    execution_id = await _start(api, on_reject="fail")
    proposed = await _waiting_call(api, execution_id)
    answer = {"decision": "reject", "by": "ops", "reason": "not this fact"}
    sent = await api.post(
        f"/api/v1/executions/{execution_id}/events",
        json={"name": proposed["event"], "payload": answer},
    )
    assert sent.json()["delivered"] is True
    done = await _until(api, execution_id, "succeeded", "failed")
    assert done["status"] == "failed"
    assert done["errorInfo"]["code"] == "TOOL_CALL_REJECTED"
    assert "rejected by local-dev: not this fact" in done["errorInfo"]["message"]


async def test_a_redrive_after_a_rejection_asks_again_and_an_approval_succeeds(
    agent_api: tuple[LocalRuntime, httpx.AsyncClient],
) -> None:
    _, api = agent_api
    execution_id = await _start(api, on_reject="fail")
    first = await _waiting_call(api, execution_id)
    rejected = await api.post(
        f"/api/v1/executions/{execution_id}/events",
        json={"name": first["event"], "payload": {"decision": "reject", "reason": "later"}},
    )
    assert rejected.json()["delivered"] is True
    failed = await _until(api, execution_id, "succeeded", "failed")
    assert failed["errorInfo"]["code"] == "TOOL_CALL_REJECTED"

    redriven = await api.post(f"/api/v1/executions/{execution_id}/redrive")
    assert redriven.status_code == 200, redriven.text
    again = await _waiting_call(api, execution_id)  # asked again, not failed at once
    assert again["event"] != first["event"] and again["tool"] == "set_variable"
    assert again["args"] == {"name": "fact", "value": "proposed"}
    approved = await api.post(
        f"/api/v1/executions/{execution_id}/events",
        json={"name": again["event"], "payload": {"decision": "approve"}},
    )
    assert approved.json()["delivered"] is True, approved.text
    done = await _until(api, execution_id, "succeeded", "failed")
    assert done["status"] == "succeeded", done
    assert done["variables"]["fact"] == "proposed"
    steps = (await api.get(f"/api/v1/executions/{execution_id}/steps")).json()["items"]
    runs = [s for s in steps if s["stepId"] == "remember"]
    output = runs[-1]["output"]
    assert output["text"] == "noted" and output["turns"] == 2
    assert [e["kind"] for e in output["entries"]] == ["model", "tool", "model"]
    # the redrive took only the turn after the approval: the first one, answered before
    # the rejection, was not taken again (each model call streams its entry once)
    events = (await api.get(f"/api/v1/executions/{execution_id}/events")).json()["items"]
    streamed = [e["data"]["entry"] for e in events if "entry" in e.get("data", {})]
    assert [e["index"] for e in streamed if e["kind"] == "model"] == [0, 2]
    assert [e["input"] for e in streamed if e["kind"] == "tool"] == [first["args"]]


async def test_an_agents_guardrail_evaluations_are_served_per_workflow(
    agent_api: tuple[LocalRuntime, httpx.AsyncClient],
) -> None:
    """examples/agent_guarded.yaml: the first title fails its CEL check, the agent is
    told and its second title passes; GET .../evaluations aggregates the verdicts."""
    runtime, api = agent_api
    folder = Path(runtime.settings.ai.recordings_dir)
    recording = (EXAMPLES / "agent_guarded.recording.json").read_text()
    (folder / "agent_guarded.recording.json").write_text(recording)
    definition = yaml.safe_load((EXAMPLES / "agent_guarded.yaml").read_text())
    created = await api.post("/api/v1/workflows", json=definition)
    assert created.status_code == 201, created.text
    workflow_id = created.json()["id"]
    started = await api.post(f"/api/v1/workflows/{workflow_id}/execute", json={})
    execution_id = str(started.json()["id"])
    done = await _until(api, execution_id, "succeeded", "failed")
    assert done["status"] == "succeeded", done
    figures = (await api.get(f"/api/v1/workflows/{workflow_id}/evaluations")).json()
    assert figures["executions"] == 1 and figures["passRate"] == 1.0
    (step,) = figures["steps"]
    assert step["stepId"] == "headline" and step["retries"] == 1
    assert step["actions"] == {"pass": 1}
    (validator,) = figures["validators"]
    assert validator["validator"] == "short_title" and validator["passed"] == 1
    events = (await api.get(f"/api/v1/executions/{execution_id}/events")).json()["items"]
    rounds = [e["data"]["evaluation"] for e in events if "evaluation" in e.get("data", {})]
    assert [(r["round"], r["passed"]) for r in rounds] == [(1, False), (2, True)]
