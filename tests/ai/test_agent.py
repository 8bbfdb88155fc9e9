"""agent steps through the real LangGraph loop, with the StoreCheckpointSaver and fake
chat models: sub-entries, resuming from checkpoints, approvals, config checks."""

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
    progress,
    tool_call,
)
from _ai_fakes import FakeChat, fake
from checkpoint_stores import store_params
from langchain_core.messages import ToolMessage

from shared.ai.agent_run import agent_thread_id
from shared.errors import DefinitionInvalid
from shared.models import ExecutionStatus
from shared.ports.checkpoints import CheckpointListing

APPROVE_SET = {
    "prompt": "Remember ${vars.topic}",
    "tools": ["read_variables", {"name": "set_variable", "requiresApproval": True}],
    "allowSideEffects": True,
}


@pytest.fixture
async def make_agent(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[MakeAgent]:
    async with agent_harnesses(tmp_path, request) as make:
        yield make


class FlakyChat(FakeChat):
    """A fake whose calls numbered in ``fail_on`` (1-based, counted over its life) raise."""

    fail_on: set[int] = set()

    async def _agenerate(self, messages: Any, stop: Any = None, **kwargs: Any) -> Any:
        if self.calls + 1 in self.fail_on:
            self.calls += 1
            raise ConnectionError("the model's connection dropped")
        return await super()._agenerate(messages, stop=stop, **kwargs)


async def test_three_tool_calls_make_sub_entries_and_progress_events(
    make_agent: MakeAgent,
) -> None:
    model = fake(
        tool_call("read_variables", {"names": ["topic"]}, "c1"),
        tool_call("set_variable", {"name": "seen", "value": 1}, "c2"),
        tool_call("step_history", {}, "c3"),
        answer("done"),
        tool_calling=True,
    )
    h = await make_agent(model)
    config = {
        "prompt": "Go",
        "tools": ["read_variables", "set_variable", "step_history"],
        "allowSideEffects": True,
    }
    execution = await h.run(agent_flow(config))
    assert execution.status == ExecutionStatus.SUCCEEDED, execution.error
    assert execution.variables["seen"] == 1
    output = (await agent_run(h, execution.id)).output
    kinds = [(e["kind"], e["name"]) for e in output["entries"]]
    m = output["model"]
    assert kinds == [
        ("model", m),
        ("tool", "read_variables"),
        ("model", m),
        ("tool", "set_variable"),
        ("model", m),
        ("tool", "step_history"),
        ("model", m),
    ]
    first = output["entries"][0]
    assert first["tokens"] == {"input": 20, "output": 3} and first["source"] == "model"
    assert {"input", "output", "costUsd", "durationMs", "at"} <= set(first)
    assert json.loads(output["entries"][1]["output"]) == {"topic": "durable workflows"}
    assert output["text"] == "done" and output["turns"] == 4 and output["toolCalls"] == 3
    assert model.calls == 4
    streamed = [d["entry"]["index"] for d in await progress(h, execution.id)]
    assert streamed == list(range(7))


async def test_a_retry_resumes_from_the_checkpoint_without_calling_the_model_again(
    make_agent: MakeAgent,
) -> None:
    model = FlakyChat(
        messages=iter(
            [
                tool_call("read_variables", {}, "c1"),
                tool_call("read_variables", {}, "c2"),
                tool_call("read_variables", {}, "c3"),
                answer("finally"),
            ]
        ),
        tool_calling=True,
        fail_on={4},
    )
    h = await make_agent(model, sqlite=True, store="sqlite")
    step = {"onError": {"retry": {"maxAttempts": 2, "initialDelaySeconds": 1}}}
    execution = await h.run(agent_flow({"prompt": "go", "tools": ["read_variables"]}, **step))
    assert execution.status == ExecutionStatus.SUCCEEDED, execution.error
    runs = [r for r in await h.runs(execution.id) if r.step_id == "a0"]
    assert [r.attempt for r in runs] == [1, 2]
    # 3 answered turns, the call that failed, and the 4th turn again: the first three
    # turns were not asked for again on the retry
    assert model.calls == 5
    output = runs[-1].output
    assert output["turns"] == 4 and output["source"] == "model"
    assert [e["kind"] for e in output["entries"]].count("model") == 4


@pytest.mark.parametrize("store", store_params())
async def test_approval_waits_then_the_tool_gets_the_edited_args(
    make_agent: MakeAgent, store: str
) -> None:
    model = fake(
        tool_call("set_variable", {"name": "fact", "value": "proposed"}, "c1"),
        answer("stored"),
        tool_calling=True,
    )
    h = await make_agent(model, store=store, engine=store)  # Firestore: both on the emulator
    execution = await h.run(agent_flow(APPROVE_SET), advance=False)
    assert execution.status == ExecutionStatus.WAITING
    run = await agent_run(h, execution.id)
    approval = run.output["approval"]
    assert run.output["status"] == "awaitingApproval"
    assert approval["tool"] == "set_variable"
    assert approval["args"] == {"name": "fact", "value": "proposed"}
    assert approval["event"].startswith("agent.approval.a0.v1.")
    assert any("approval" in d for d in await progress(h, execution.id))
    # the checkpoints are in the store, under the visit's thread, with the execution id
    thread = agent_thread_id(run)
    checkpoints = h.checkpoints  # type: ignore[attr-defined]
    saved = await checkpoints.list_checkpoints(CheckpointListing(thread_id=thread))
    assert saved and {r.execution_id for r in saved} == {execution.id}

    edited = {"name": "fact", "value": "edited"}
    sent = await h.app.send_event(
        execution.id, approval["event"], decision("approve", args=edited, by="alice")
    )
    assert sent["delivered"] is True
    await h.drain(advance=False)
    done = await h.app.get_execution(execution.id)
    assert done.status == ExecutionStatus.SUCCEEDED, done.error
    assert done.variables["fact"] == "edited"
    assert model.calls == 2
    tool_entry = (await agent_run(h, execution.id)).output["entries"][1]
    assert tool_entry["input"] == edited
    assert tool_entry["approval"]["by"] == "alice" and tool_entry["approval"]["editedArgs"]
    assert tool_entry["approval"]["proposedArgs"] == {"name": "fact", "value": "proposed"}
    # retention: the execution's checkpoints go with it
    kept = await checkpoints.list_checkpoints(CheckpointListing(thread_id=thread))
    assert await checkpoints.delete_for_execution(execution.id) == len(kept) > 0
    assert not await checkpoints.list_checkpoints(CheckpointListing(thread_id=thread))


async def test_a_rejection_is_told_to_the_model(make_agent: MakeAgent) -> None:
    model = fake(
        tool_call("set_variable", {"name": "fact", "value": "x"}, "c1"),
        answer("ok, not stored"),
        tool_calling=True,
    )
    h = await make_agent(model)
    execution = await h.run(agent_flow(APPROVE_SET), advance=False)
    event = (await agent_run(h, execution.id)).output["approval"]["event"]
    await h.app.send_event(execution.id, event, decision("reject", by="bob", reason="too early"))
    await h.drain(advance=False)
    done = await h.app.get_execution(execution.id)
    assert done.status == ExecutionStatus.SUCCEEDED, done.error
    assert "fact" not in done.variables
    told = [m for m in model.seen[1] if isinstance(m, ToolMessage)]
    assert [str(m.content) for m in told] == ["rejected by bob: too early"]
    entry = (await agent_run(h, execution.id)).output["entries"][1]
    assert entry["approval"]["approved"] is False


async def test_a_rejection_fails_the_step_when_the_workflow_says_so(
    make_agent: MakeAgent,
) -> None:
    model = fake(tool_call("set_variable", {"name": "f", "value": 1}, "c1"), tool_calling=True)
    h = await make_agent(model)
    execution = await h.run(agent_flow({**APPROVE_SET, "onReject": "fail"}), advance=False)
    event = (await agent_run(h, execution.id)).output["approval"]["event"]
    await h.app.send_event(execution.id, event, decision("reject", by="carol", reason="no"))
    await h.drain(advance=False)
    done = await h.app.get_execution(execution.id)
    assert done.status == ExecutionStatus.FAILED
    assert done.error_info is not None and done.error_info.code == "TOOL_CALL_REJECTED"
    assert "rejected by carol: no" in done.error_info.message
    assert model.calls == 1


async def test_a_payload_that_is_no_decision_leaves_it_waiting(make_agent: MakeAgent) -> None:
    model = fake(
        tool_call("set_variable", {"name": "f", "value": 1}, "c1"), answer("x"), tool_calling=True
    )
    h = await make_agent(model)
    execution = await h.run(agent_flow(APPROVE_SET), advance=False)
    event = (await agent_run(h, execution.id)).output["approval"]["event"]
    for bad in ({"decision": "maybe"}, "yes", {"decision": "approve", "args": [1]}):
        sent = await h.app.send_event(execution.id, event, bad)
        assert sent["delivered"] is True
        await h.drain(advance=False)
        assert (await h.app.get_execution(execution.id)).status == ExecutionStatus.WAITING
    await h.app.send_event(execution.id, event, decision("approve"))
    await h.drain(advance=False)
    done = await h.app.get_execution(execution.id)
    assert done.status == ExecutionStatus.SUCCEEDED and done.variables["f"] == 1
    assert model.calls == 2


async def test_an_unanswered_approval_times_out(make_agent: MakeAgent) -> None:
    model = fake(tool_call("set_variable", {"name": "f", "value": 1}, "c1"), tool_calling=True)
    h = await make_agent(model)
    execution = await h.run(agent_flow({**APPROVE_SET, "approvalTimeoutSeconds": 60}))
    done = await h.app.get_execution(execution.id)
    assert done.status == ExecutionStatus.FAILED
    assert done.error_info is not None and done.error_info.code == "APPROVAL_TIMEOUT"


async def test_budget_pause_resumes_from_the_checkpoint_without_a_new_call(
    make_agent: MakeAgent,
) -> None:
    model = fake(tool_call("read_variables", {}, "c1"), answer("over budget"), tool_calling=True)
    h = await make_agent(model, sqlite=True, store="sqlite")
    config = {
        "prompt": "go",
        "tools": ["read_variables"],
        "budget": {"maxTokens": 30, "onExceeded": "pause"},
    }
    execution = await h.run(agent_flow(config))
    assert execution.status == ExecutionStatus.PAUSED
    await h.app.resume(execution.id)
    await h.drain(advance=False)
    done = await h.app.get_execution(execution.id)
    assert done.status == ExecutionStatus.SUCCEEDED, done.error
    assert model.calls == 2
    output = (await agent_run(h, execution.id)).output
    assert output["text"] == "over budget" and output["usage"]["step"]["totalTokens"] == 38


async def test_config_problems_point_at_their_place(make_agent: MakeAgent) -> None:
    h = await make_agent()
    bad = {
        "prompt": "go",
        "tools": [
            "read_variables",
            {"name": "launch_rockets", "requiresApproval": True},
            {"name": "publish_message", "requiresApproval": True},
            "read_variables",
        ],
    }
    with pytest.raises(DefinitionInvalid) as caught:
        await h.create(agent_flow(bad))
    found = {(i.code, i.path) for i in caught.value.issues}
    assert ("UNKNOWN_TOOL", "/steps/0/config/tools/1") in found
    assert ("APPROVAL_FOR_UNKNOWN_TOOL", "/steps/0/config/tools/1/requiresApproval") in found
    assert ("TOOL_HAS_SIDE_EFFECTS", "/steps/0/config/tools/2") in found
    assert ("DUPLICATE_TOOL", "/steps/0/config/tools/3") in found
    assert ("PUBLISH_TOPICS_REQUIRED", "/steps/0/config/publishTopics") in found
    with pytest.raises(DefinitionInvalid) as caught:
        await h.create(
            agent_flow({"prompt": "go", "tools": ["read_variables"], "onReject": "fail"})
        )
    assert {(i.code, i.path) for i in caught.value.issues} == {
        ("NO_TOOL_REQUIRES_APPROVAL", "/steps/0/config/onReject")
    }


async def test_a_redrive_resumes_the_failed_visit_from_its_checkpoints(
    make_agent: MakeAgent,
) -> None:
    model = FlakyChat(
        messages=iter(
            [
                tool_call("read_variables", {}, "c1"),
                tool_call("set_variable", {"name": "kept", "value": 7}, "c2"),
                answer("after the redrive"),
            ]
        ),
        tool_calling=True,
        fail_on={3},
    )
    h = await make_agent(model, sqlite=True, store="sqlite")
    config = {"prompt": "go", "tools": ["read_variables", "set_variable"], "allowSideEffects": True}
    execution = await h.run(agent_flow(config))
    assert execution.status == ExecutionStatus.FAILED
    assert model.calls == 3
    await h.app.redrive(execution.id)
    await h.drain()
    done = await h.app.get_execution(execution.id)
    assert done.status == ExecutionStatus.SUCCEEDED, done.error
    assert model.calls == 4  # only the turn that failed was asked again
    runs = [r for r in await h.runs(execution.id) if r.step_id == "a0"]
    assert [r.generation for r in runs] == [0, 1]
    output = runs[-1].output
    assert output["text"] == "after the redrive" and output["turns"] == 3
    assert [e["kind"] for e in output["entries"]] == ["model", "tool"] * 2 + ["model"]
    assert done.variables["kept"] == 7  # the set_variable of the first generation counts


async def test_memory_continues_an_llm_conversation_with_the_same_key(
    make_agent: MakeAgent,
) -> None:
    model = fake(answer("first answer"), answer("second answer"), tool_calling=True)
    h = await make_agent(model)
    raw = {
        "name": "memo",
        "steps": [
            {
                "id": "w0",
                "type": "llm",
                "config": {"prompt": "one", "memory": {"key": "k"}},
                "nextSteps": ["a0"],
            },
            {"id": "a0", "type": "agent", "config": {"prompt": "two", "memory": {"key": "k"}}},
        ],
    }
    execution = await h.run(raw)
    assert execution.status == ExecutionStatus.SUCCEEDED, execution.error
    second = [str(m.content) for m in model.seen[1]]
    assert second[1:] == ["one", "first answer", "two"]
    memory = (await agent_run(h, execution.id)).state["memory"]
    assert memory["key"] == "k" and len(memory["messages"]) == 4


async def test_a_redelivery_after_the_graph_ended_takes_its_result_from_the_checkpoint(
    make_agent: MakeAgent,
) -> None:
    model = fake(tool_call("read_variables", {}, "c1"), answer("once"), tool_calling=True)
    h = await make_agent(model, sqlite=True, store="sqlite")
    workflow_id = await h.create(agent_flow({"prompt": "go", "tools": ["read_variables"]}))
    execution = await h.start(workflow_id)
    task = h.queue.take_due(h.clock.now())[0]
    step_type = h.registry.get("agent")
    real = step_type.execute

    async def crash_after(ctx: Any) -> Any:
        await real(ctx)
        raise asyncio.CancelledError  # the worker dies before the commit

    step_type.execute = crash_after  # type: ignore[method-assign]
    with pytest.raises(asyncio.CancelledError):
        await h.engine.handle_task(task)
    step_type.execute = real  # type: ignore[method-assign]
    assert model.calls == 2
    h.clock.advance(3600)
    await h.deliver(task)
    await h.drain()
    done = await h.app.get_execution(execution.id)
    assert done.status == ExecutionStatus.SUCCEEDED, done.error
    assert model.calls == 2  # nothing asked again
    output = (await agent_run(h, execution.id)).output
    assert output["text"] == "once" and output["source"] == "checkpoint"
    assert [e["kind"] for e in output["entries"]] == ["model", "tool", "model"]


async def test_the_output_keeps_the_latest_entries_that_fit(
    make_agent: MakeAgent, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shared.ai import agent_run as runner

    monkeypatch.setattr(runner, "ENTRIES_BYTES", 1200)
    calls = [tool_call("read_variables", {}, f"c{i}") for i in range(4)]
    model = fake(*calls, answer("end"), tool_calling=True)
    h = await make_agent(model)
    execution = await h.run(agent_flow({"prompt": "go", "tools": ["read_variables"]}))
    assert execution.status == ExecutionStatus.SUCCEEDED, execution.error
    output = (await agent_run(h, execution.id)).output
    kept = output["entries"]
    assert 0 < len(kept) < 9 and output["entriesOmitted"] == 9 - len(kept)
    assert [e["index"] for e in kept] == list(range(9 - len(kept), 9))  # the latest
    assert len(json.dumps(kept)) <= 1200


async def test_a_budget_approval_holds_across_a_tool_approval(make_agent: MakeAgent) -> None:
    model = fake(
        tool_call("read_variables", {}, "c1"),
        tool_call("set_variable", {"name": "f", "value": 1}, "c2"),
        answer("done"),
        tool_calling=True,
    )
    h = await make_agent(model, sqlite=True, store="sqlite")
    config = {**APPROVE_SET, "budget": {"maxTokens": 30, "onExceeded": "pause"}}
    execution = await h.run(agent_flow(config), advance=False)
    assert execution.status == ExecutionStatus.PAUSED  # 46 tokens after the second turn
    await h.app.resume(execution.id)
    await h.drain(advance=False)
    assert (await h.app.get_execution(execution.id)).status == ExecutionStatus.WAITING
    event = (await agent_run(h, execution.id)).output["approval"]["event"]
    await h.app.send_event(execution.id, event, decision("approve"))
    await h.drain(advance=False)
    done = await h.app.get_execution(execution.id)
    assert done.status == ExecutionStatus.SUCCEEDED, (done.status, done.error)
    assert model.calls == 3 and done.variables["f"] == 1
