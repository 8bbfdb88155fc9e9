"""llm steps through the real LangGraph loop with fake chat models."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from _ai_defs import MakeHarness
from _ai_fakes import fake, usage
from langchain_core.messages import AIMessage, ToolMessage

from shared.models import ExecutionStatus

SCHEMA = {
    "type": "object",
    "properties": {
        "title": {"type": "string"},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["title"],
    "additionalProperties": False,
}


def flow(*configs: dict[str, Any], name: str = "writer", **step: Any) -> dict[str, Any]:
    steps = []
    for index, config in enumerate(configs):
        body = {"id": f"w{index}", "type": "llm", "config": config, **step}
        if index + 1 < len(configs):
            body["nextSteps"] = [f"w{index + 1}"]
        steps.append(body)
    return {"name": name, "variables": {"topic": "durable workflows"}, "steps": steps}


def answer(data: Any, inp: int = 10, out: int = 5) -> AIMessage:
    return usage(AIMessage(json.dumps(data)), inp, out)


def tool_call(name: str, args: dict[str, Any], call_id: str = "t1") -> AIMessage:
    return usage(AIMessage("", tool_calls=[{"name": name, "args": args, "id": call_id}]), 20, 3)


async def _output(h: Any, execution_id: str, step_id: str = "w0") -> Any:
    runs = [r for r in await h.runs(execution_id) if r.step_id == step_id]
    return runs[-1].output


async def test_tool_call_and_structured_output_into_variables(make_harness: MakeHarness) -> None:
    model = fake(
        tool_call("read_variables", {"names": ["topic"]}), answer({"title": "T"}), tool_calling=True
    )
    h = await make_harness(model)
    config = {
        "prompt": "Write about ${vars.topic}",
        "tools": ["read_variables"],
        "outputSchema": SCHEMA,
        "setVars": True,
    }
    execution = await h.run(flow(config))
    assert execution.status == ExecutionStatus.SUCCEEDED, execution.error
    assert execution.variables["title"] == "T"
    output = await _output(h, execution.id)
    assert (
        output["data"] == {"title": "T"} and output["source"] == "model" and not output["recorded"]
    )
    assert output["toolCalls"][0]["name"] == "read_variables"
    assert json.loads(output["toolCalls"][0]["result"]) == {"topic": "durable workflows"}
    # the second model call saw the tool's result
    tool_messages = [m for m in model.seen[1] if isinstance(m, ToolMessage)]
    assert json.loads(str(tool_messages[0].content)) == {"topic": "durable workflows"}
    assert "Write about durable workflows" in str(model.seen[0][-1].content)
    assert output["usage"]["step"]["totalTokens"] == 23 + 15
    assert output["usage"]["step"]["liveCalls"] == 2


async def test_side_effect_tools_only_when_enabled(make_harness: MakeHarness) -> None:
    model = fake(
        tool_call("set_variable", {"name": "approved", "value": True}),
        tool_call("publish_message", {"topic": "posts", "data": {"t": 1}}, "t2"),
        tool_call("publish_message", {"topic": "secrets", "data": {}}, "t3"),
        answer({"title": "ok"}),
        tool_calling=True,
    )
    h = await make_harness(model)
    config = {
        "prompt": "go",
        "tools": ["set_variable", "publish_message"],
        "allowSideEffects": True,
        "publishTopics": ["posts"],
        "outputSchema": SCHEMA,
    }
    execution = await h.run(flow(config))
    assert execution.variables["approved"] is True
    calls = (await _output(h, execution.id))["toolCalls"]
    assert "messageId" in calls[1]["result"] and "not one of" in calls[2]["result"]
    assert [m.data for m in h.bus.messages("posts")] == [{"t": 1}]
    assert h.bus.messages("secrets") == []


async def test_unknown_tool_and_denied_fetch_are_told_to_the_model(
    make_harness: MakeHarness,
) -> None:
    model = fake(
        tool_call("shell", {"cmd": "ls"}),
        tool_call("http_fetch", {"url": "http://169.254.169.254/computeMetadata"}, "t2"),
        tool_call("http_fetch", {"url": "https://evil.example/x"}, "t3"),
        answer({"title": "done"}),
        tool_calling=True,
    )
    h = await make_harness(model)
    config = {
        "prompt": "go",
        "tools": ["http_fetch"],
        "fetchHosts": ["docs.example.com"],
        "outputSchema": SCHEMA,
    }
    execution = await h.run(flow(config))
    assert execution.status == ExecutionStatus.SUCCEEDED
    results = [c["result"] for c in (await _output(h, execution.id))["toolCalls"]]
    assert "no tool named 'shell'" in results[0]
    assert "not allowed" in results[1] and "not allowed" in results[2]


async def test_malformed_answer_is_repaired_once_then_fails(make_harness: MakeHarness) -> None:
    h = await make_harness(fake(AIMessage("not json"), answer({"title": "fixed"})))
    execution = await h.run(flow({"prompt": "go", "outputSchema": SCHEMA}))
    assert execution.status == ExecutionStatus.SUCCEEDED
    assert (await _output(h, execution.id))["data"] == {"title": "fixed"}

    h = await make_harness(fake(AIMessage("not json"), answer({"title": 3})))
    execution = await h.run(flow({"prompt": "go", "outputSchema": SCHEMA}))
    assert execution.status == ExecutionStatus.FAILED
    assert execution.error_info is not None
    assert execution.error_info.code == "LLM_OUTPUT_INVALID"
    assert "/title: expected string" in execution.error_info.message


async def test_model_timeout_fails_the_step_with_a_code(make_harness: MakeHarness) -> None:
    h = await make_harness(fake(answer({"title": "late"}), delay=2.0))
    execution = await h.run(flow({"prompt": "go", "model": {"timeoutSeconds": 0.05}}))
    assert execution.error_info is not None and execution.error_info.code == "MODEL_TIMEOUT"


async def test_step_budget_exceeded_fails(make_harness: MakeHarness) -> None:
    model = fake(answer({"title": "x"}, 40, 20))
    h = await make_harness(model)
    execution = await h.run(flow({"prompt": "go", "budget": {"maxTokens": 50}}))
    assert execution.status == ExecutionStatus.FAILED
    assert execution.error_info is not None and execution.error_info.code == "BUDGET_EXCEEDED"
    run = (await h.runs(execution.id))[0]
    assert run.state["aiUsage"]["totalTokens"] == 60  # the spend is recorded on the run


async def test_execution_budget_stops_before_the_next_call(make_harness: MakeHarness) -> None:
    model = fake(answer({"title": "a"}, 60, 10), answer({"title": "b"}))
    h = await make_harness(model)
    budget = {"executionMaxTokens": 70}
    execution = await h.run(
        flow({"prompt": "a", "budget": budget}, {"prompt": "b", "budget": budget})
    )
    assert execution.error_info is not None and execution.error_info.code == "BUDGET_EXCEEDED"
    assert execution.error_info.step_id == "w1"
    assert model.calls == 1  # the second step never called the model


async def test_budget_pause_then_resume_approves_without_a_new_call(
    make_harness: MakeHarness,
) -> None:
    model = fake(answer({"title": "x"}, 900, 100))
    h = await make_harness(model, sqlite=True)
    raw = flow(
        {
            "prompt": "go",
            "outputSchema": SCHEMA,
            "budget": {"maxCostUsd": 0.00001, "onExceeded": "pause"},
        }
    )
    execution = await h.run(raw)
    assert execution.status == ExecutionStatus.PAUSED
    assert "execution.paused" in await h.event_types(execution.id)
    resumed = await h.app.resume(execution.id)
    assert resumed.status == ExecutionStatus.RUNNING
    await h.drain()
    done = await h.app.get_execution(execution.id)
    assert done.status == ExecutionStatus.SUCCEEDED, done.error
    output = await _output(h, execution.id)
    assert output["data"] == {"title": "x"} and output["source"] == "replay"
    assert model.calls == 1


async def test_crash_after_the_model_answered_replays_instead_of_calling(
    make_harness: MakeHarness,
) -> None:
    model = fake(tool_call("read_variables", {}), answer({"title": "once"}), tool_calling=True)
    h = await make_harness(model, sqlite=True)
    workflow_id = await h.create(
        flow({"prompt": "go", "tools": ["read_variables"], "outputSchema": SCHEMA})
    )
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
    assert model.calls == 2
    h.clock.advance(3600)
    await h.deliver(task)
    await h.drain()
    done = await h.app.get_execution(execution.id)
    assert done.status == ExecutionStatus.SUCCEEDED
    assert model.calls == 2  # replayed: no model call the second time
    output = await _output(h, execution.id)
    assert output["source"] == "replay" and output["usage"]["step"]["liveCalls"] == 0


async def test_a_retry_replays_the_turns_already_paid_for(make_harness: MakeHarness) -> None:
    model = fake(answer({"title": "second"}), tool_calling=True)
    h = await make_harness(model)
    step = {"onError": {"retry": {"maxAttempts": 2, "initialDelaySeconds": 1}}}
    config = {
        "prompt": "go",
        "tools": ["read_variables"],
        "outputSchema": SCHEMA,
        "model": {"timeoutSeconds": 5},
    }
    workflow_id = await h.create(flow(config, **step))
    tools_step = h.registry.get("llm")
    calls = {"n": 0}
    real_execute = tools_step.execute

    async def flaky(ctx: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:  # first attempt: the model's first turn, then a transient error
            from shared.ai.replay import RunStateReplay

            replay = RunStateReplay(h.store)
            await replay.save(
                ctx.run,
                "turn:0",
                {
                    "content": "",
                    "toolCalls": [{"id": "t1", "name": "read_variables", "args": {}}],
                    "usage": {"inputTokens": 5, "outputTokens": 1},
                },
            )
            from shared.errors import StepFailed

            raise StepFailed("flaky", code="MODEL_UNAVAILABLE", retryable=True)
        return await real_execute(ctx)

    tools_step.execute = flaky  # type: ignore[method-assign]
    execution = await h.start(workflow_id)
    await h.drain()
    tools_step.execute = real_execute  # type: ignore[method-assign]
    done = await h.app.get_execution(execution.id)
    assert done.status == ExecutionStatus.SUCCEEDED, done.error
    output = await _output(h, execution.id)
    assert output["source"] == "mixed"  # turn 1 replayed from attempt 1, turn 2 live
    assert model.calls == 1


async def test_memory_is_shared_by_steps_with_the_same_key(make_harness: MakeHarness) -> None:
    model = fake(AIMessage("first answer"), AIMessage("second answer"))
    h = await make_harness(model)
    memory = {"key": "chat"}
    execution = await h.run(
        flow({"prompt": "one", "memory": memory}, {"prompt": "two", "memory": memory})
    )
    assert execution.status == ExecutionStatus.SUCCEEDED
    second = [str(m.content) for m in model.seen[1]]
    assert second[1:] == ["one", "first answer", "two"]


async def test_recording_is_replayed_when_no_model_is_configured(
    make_harness: MakeHarness, tmp_path: Path
) -> None:
    recording = {
        "workflow": "writer",
        "steps": {
            "w0": {
                "turns": [
                    {
                        "content": json.dumps({"title": "rec"}),
                        "usage": {"inputTokens": 3, "outputTokens": 2},
                    }
                ]
            }
        },
    }
    (tmp_path / "writer.recording.json").write_text(json.dumps(recording))
    h = await make_harness(ai_recordings_dir=str(tmp_path))
    execution = await h.run(flow({"prompt": "go", "outputSchema": SCHEMA}))
    assert execution.status == ExecutionStatus.SUCCEEDED
    output = await _output(h, execution.id)
    assert (output["source"], output["recorded"], output["recording"]) == (
        "recording",
        True,
        "writer.recording.json",
    )
    assert output["data"] == {"title": "rec"} and output["usage"]["step"]["liveCalls"] == 0


async def test_no_model_and_no_recording_fails_clearly(make_harness: MakeHarness) -> None:
    h = await make_harness()
    execution = await h.run(flow({"prompt": "go"}))
    assert execution.error_info is not None and execution.error_info.code == "NO_MODEL"
    assert "no recording" in execution.error_info.message
