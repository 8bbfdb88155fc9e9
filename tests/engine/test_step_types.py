"""Each built-in step type, driven through the real engine on both stores."""

from __future__ import annotations

from datetime import timedelta

from harness import Harness, linear

from shared.models import ExecutionStatus


async def test_transform_sets_variables_and_chains_inline(h: Harness) -> None:
    execution = await h.run(
        linear(
            {"id": "a", "type": "transform", "config": {"set": {"x": "${input.n * 2}"}}},
            {
                "id": "b",
                "type": "transform",
                "config": {"set": {"y": "${vars.x + 1}", "z": "${vars.y * 10}"}},
            },
            output="${vars}",
        ),
        {"n": 5},
    )
    assert execution.status == ExecutionStatus.SUCCEEDED
    assert execution.variables == {"n": 5, "x": 10, "y": 11, "z": 110}
    assert execution.result == {"n": 5, "x": 10, "y": 11, "z": 110}
    assert h.queue.enqueued == 1, "the second transform must run inline, without a hop"
    assert await h.statuses(execution.id) == [("a", "succeeded"), ("b", "succeeded")]


async def test_branch_takes_first_true_case_then_default(h: Harness) -> None:
    raw = {
        "name": "b",
        "steps": [
            {
                "id": "route",
                "type": "branch",
                "nextSteps": ["big", "small", "other"],
                "config": {
                    "cases": [
                        {"when": "input.amount > 100", "next": "big"},
                        {"when": "input.amount > 10", "next": "small"},
                    ],
                    "default": "other",
                },
            },
            {"id": "big", "type": "transform", "config": {"output": "big"}},
            {"id": "small", "type": "transform", "config": {"output": "small"}},
            {"id": "other", "type": "transform", "config": {"output": "other"}},
        ],
    }
    workflow_id = await h.create(raw)
    results = {}
    for amount in (500, 50, 5):
        execution = await h.start(workflow_id, {"amount": amount})
        await h.drain()
        results[amount] = (await h.app.get_execution(execution.id)).result
    assert results == {500: "big", 50: "small", 5: "other"}


async def test_branch_without_match_fails_with_code(h: Harness) -> None:
    execution = await h.run(
        {
            "name": "b",
            "steps": [
                {
                    "id": "route",
                    "type": "branch",
                    "nextSteps": ["x"],
                    "config": {"cases": [{"when": "input.go == true", "next": "x"}]},
                },
                {"id": "x", "type": "transform"},
            ],
        },
        {"go": False},
    )
    assert execution.status == ExecutionStatus.FAILED
    assert execution.error_info is not None
    assert execution.error_info.code == "NO_BRANCH_MATCHED"
    assert execution.error_info.step_id == "route"


async def test_conditions_skip_a_step(h: Harness) -> None:
    execution = await h.run(
        linear(
            {"id": "a", "type": "transform", "config": {"output": 1}},
            {
                "id": "b",
                "type": "transform",
                "config": {"set": {"hit": True}},
                "conditions": [{"expression": "input.flag"}],
            },
            {"id": "c", "type": "transform", "config": {"output": "${prev}"}},
        ),
        {"flag": False},
    )
    assert await h.statuses(execution.id) == [
        ("a", "succeeded"),
        ("b", "skipped"),
        ("c", "succeeded"),
    ]
    assert "hit" not in execution.variables
    assert execution.result == 1, "a skipped step passes its input through"


async def test_wait_seconds_is_a_durable_timer(h: Harness) -> None:
    workflow_id = await h.create(
        linear(
            {"id": "w", "type": "wait", "config": {"seconds": 3600}},
            {"id": "after", "type": "transform", "config": {"output": "done"}},
        )
    )
    execution = await h.start(workflow_id)
    await h.drain(advance=False)
    assert (await h.app.get_execution(execution.id)).status == ExecutionStatus.WAITING
    assert h.queue.next_due() == h.clock.now() + timedelta(seconds=3600)
    h.clock.advance(1800)
    await h.drain(advance=False)
    assert (await h.app.get_execution(execution.id)).status == ExecutionStatus.WAITING
    h.clock.advance(1800)
    await h.drain(advance=False)
    done = await h.app.get_execution(execution.id)
    assert done.status == ExecutionStatus.SUCCEEDED and done.result == "done"


async def test_wait_until_a_time_from_an_expression(h: Harness) -> None:
    target = (h.clock.now() + timedelta(days=45)).isoformat()
    workflow_id = await h.create(
        linear(
            {"id": "w", "type": "wait", "config": {"until": "${input.at}"}},
            {"id": "after", "type": "transform", "config": {"output": "${prev}"}},
        )
    )
    execution = await h.start(workflow_id, {"at": target})
    await h.drain()
    done = await h.app.get_execution(execution.id)
    assert done.status == ExecutionStatus.SUCCEEDED
    assert done.result == {"waitedUntil": target}
    assert h.clock.now().isoformat() == target


async def test_wait_for_event_resumed_by_a_signal(h: Harness) -> None:
    workflow_id = await h.create(
        linear(
            {
                "id": "ask",
                "type": "wait_for_event",
                "config": {"event": "approval", "timeoutSeconds": 86400},
            },
            {"id": "after", "type": "transform", "config": {"output": "${prev.payload.ok}"}},
        )
    )
    execution = await h.start(workflow_id)
    await h.drain(advance=False)
    assert (await h.app.get_execution(execution.id)).status == ExecutionStatus.WAITING
    answer = await h.app.send_event(execution.id, "approval", {"ok": True})
    assert answer["delivered"] is True
    await h.drain(advance=False)
    done = await h.app.get_execution(execution.id)
    assert done.status == ExecutionStatus.SUCCEEDED and done.result is True


async def test_signal_sent_before_the_wait_is_kept(h: Harness) -> None:
    workflow_id = await h.create(
        linear(
            {"id": "first", "type": "count"},
            {
                "id": "ask",
                "type": "wait_for_event",
                "config": {"event": "go", "timeoutSeconds": 60},
            },
            {"id": "after", "type": "transform", "config": {"output": "${prev.payload}"}},
        )
    )
    execution = await h.start(workflow_id)
    answer = await h.app.send_event(execution.id, "go", "early")
    assert answer["delivered"] is False
    await h.drain(advance=False)
    done = await h.app.get_execution(execution.id)
    assert done.status == ExecutionStatus.SUCCEEDED and done.result == "early"


async def test_wait_for_event_times_out_into_fallback(h: Harness) -> None:
    execution = await h.run(
        {
            "name": "t",
            "steps": [
                {
                    "id": "ask",
                    "type": "wait_for_event",
                    "nextSteps": ["approved"],
                    "config": {"event": "approval", "timeoutSeconds": 30},
                    "onError": {"strategy": "fallback", "fallbackStep": "escalate"},
                },
                {"id": "approved", "type": "transform", "config": {"output": "approved"}},
                {"id": "escalate", "type": "transform", "config": {"output": "${prev.error.code}"}},
            ],
        }
    )
    assert execution.status == ExecutionStatus.SUCCEEDED
    assert execution.result == "EVENT_TIMEOUT"
    assert await h.statuses(execution.id) == [("ask", "failed"), ("escalate", "succeeded")]


async def test_parallel_joins_branch_outputs(h: Harness) -> None:
    execution = await h.run(
        {
            "name": "p",
            "steps": [
                {
                    "id": "fan",
                    "type": "parallel",
                    "nextSteps": ["after"],
                    "config": {
                        "branches": [
                            {"name": "left", "start": "l1"},
                            {"name": "right", "start": "r1"},
                        ]
                    },
                },
                {"id": "l1", "type": "count", "nextSteps": ["l2"]},
                {"id": "l2", "type": "transform", "config": {"output": "L"}},
                {"id": "r1", "type": "wait", "config": {"seconds": 5}, "nextSteps": ["r2"]},
                {"id": "r2", "type": "transform", "config": {"output": "R"}},
                {"id": "after", "type": "transform", "config": {"output": "${prev}"}},
            ],
        }
    )
    assert execution.status == ExecutionStatus.SUCCEEDED
    assert execution.result == {"left": "L", "right": "R"}
    steps = dict(await h.statuses(execution.id))
    assert steps["fan"] == "succeeded" and steps["after"] == "succeeded"


async def test_parallel_branch_failure_fails_the_parallel_step(h: Harness) -> None:
    h.counter.fail_codes["bad"] = ("BOOM", False)
    execution = await h.run(
        {
            "name": "p",
            "steps": [
                {
                    "id": "fan",
                    "type": "parallel",
                    "nextSteps": ["after"],
                    "config": {
                        "branches": [
                            {"name": "ok", "start": "good"},
                            {"name": "ko", "start": "bad"},
                        ]
                    },
                },
                {"id": "good", "type": "count"},
                {"id": "bad", "type": "count"},
                {"id": "after", "type": "transform"},
            ],
        }
    )
    assert execution.status == ExecutionStatus.FAILED
    assert execution.error_info is not None and execution.error_info.code == "BOOM"
    assert execution.error_info.step_id == "fan"
    failed = {r.id: r for r in await h.runs(execution.id)}[execution.failed_run_id or ""]
    assert failed.step_id == "bad", "the innermost failed run is the one to redrive"


async def test_map_keeps_order_and_concurrency_limit(h: Harness) -> None:
    workflow_id = await h.create(
        {
            "name": "m",
            "steps": [
                {
                    "id": "each",
                    "type": "map",
                    "nextSteps": ["total"],
                    "config": {"items": "input.xs", "start": "work", "concurrency": 2},
                },
                {"id": "work", "type": "count", "nextSteps": ["square"]},
                {"id": "square", "type": "transform", "config": {"output": "${item * item}"}},
                {"id": "total", "type": "transform", "config": {"output": "${prev}"}},
            ],
        }
    )
    execution = await h.start(workflow_id, {"xs": [3, 1, 4, 1, 5]})
    peak = 0
    while True:
        due = h.queue.take_due(h.clock.now())
        if not due:
            break
        runs = await h.runs(execution.id)
        live = {r.scope for r in runs if r.scope and r.status.value in ("scheduled", "running")}
        peak = max(peak, len(live))
        for task in due:
            await h.deliver(task)
    done = await h.app.get_execution(execution.id)
    assert done.status == ExecutionStatus.SUCCEEDED
    assert done.result == [9, 1, 16, 1, 25]
    assert peak == 2
    assert sum(h.counter.calls.values()) == 5


async def test_map_over_empty_list(h: Harness) -> None:
    execution = await h.run(
        {
            "name": "m",
            "steps": [
                {"id": "each", "type": "map", "config": {"items": "[]", "start": "w"}},
                {"id": "w", "type": "count"},
            ],
        }
    )
    assert execution.status == ExecutionStatus.SUCCEEDED and execution.result == []


async def test_subworkflow_returns_child_result(h: Harness) -> None:
    await h.create(
        {
            "name": "child",
            "steps": [
                {"id": "double", "type": "transform", "config": {"output": "${input.n * 2}"}}
            ],
        }
    )
    execution = await h.run(
        linear(
            {
                "id": "call",
                "type": "subworkflow",
                "config": {"workflowName": "child", "input": {"n": "${input.n}"}},
            },
            {"id": "after", "type": "transform", "config": {"output": "${prev + 1}"}},
            name="parent",
        ),
        {"n": 20},
    )
    assert execution.status == ExecutionStatus.SUCCEEDED and execution.result == 41
    call = (await h.runs(execution.id))[0]
    child = await h.app.get_execution(call.state["childExecutionId"])
    assert child.parent is not None and child.parent.run_id == call.id
    assert child.result == 40


async def test_subworkflow_failure_fails_parent_step(h: Harness) -> None:
    h.counter.fail_codes["explode"] = ("CHILD_BROKE", False)
    child_id = await h.create({"name": "child", "steps": [{"id": "explode", "type": "count"}]})
    execution = await h.run(
        {
            "name": "parent",
            "steps": [{"id": "call", "type": "subworkflow", "config": {"workflowId": child_id}}],
        }
    )
    assert execution.status == ExecutionStatus.FAILED
    assert execution.error_info is not None
    assert execution.error_info.code == "CHILD_FAILED"


async def test_publish_puts_one_message_on_the_bus(h: Harness) -> None:
    execution = await h.run(
        linear(
            {
                "id": "pub",
                "type": "publish",
                "config": {
                    "topic": "orders",
                    "data": {"id": "${input.id}"},
                    "attributes": {"kind": "created"},
                },
            },
        ),
        {"id": 7},
    )
    assert execution.status == ExecutionStatus.SUCCEEDED
    messages = h.bus.messages("orders")
    assert [m.data for m in messages] == [{"id": 7}]
    assert messages[0].attributes["kind"] == "created"
    assert messages[0].attributes["executionId"] == execution.id
    assert execution.result == {"messageId": messages[0].message_id, "topic": "orders"}


async def test_template_with_two_expressions_is_interpolated(h: Harness) -> None:
    execution = await h.run(
        linear({"id": "a", "type": "transform", "config": {"output": "${input.a}/${input.b}"}}),
        {"a": "x", "b": 2},
    )
    assert execution.result == "x/2"


async def test_failing_output_template_fails_the_execution(h: Harness) -> None:
    execution = await h.run(
        linear(
            {"id": "a", "type": "transform", "config": {"set": {"n": 1}}},
            output="${vars.missing.field}",
        )
    )
    assert execution.status == ExecutionStatus.FAILED
    assert execution.error_info is not None and execution.error_info.code == "OUTPUT_ERROR"


async def test_retries_keep_the_idempotency_key(h: Harness) -> None:
    h.counter.fail_codes["s"] = ("UPSTREAM", True)
    execution = await h.run(
        linear(
            {
                "id": "s",
                "type": "count",
                "onError": {"retry": {"maxAttempts": 3, "initialDelaySeconds": 1}},
            }
        )
    )
    runs = await h.runs(execution.id)
    assert len({r.id for r in runs}) == 3
    assert len({r.idempotency_key for r in runs}) == 1


async def test_child_execution_has_a_started_event(h: Harness) -> None:
    await h.create({"name": "child", "steps": [{"id": "c", "type": "transform"}]})
    execution = await h.run(
        {
            "name": "parent",
            "steps": [{"id": "call", "type": "subworkflow", "config": {"workflowName": "child"}}],
        }
    )
    child_id = (await h.runs(execution.id))[0].state["childExecutionId"]
    assert (await h.event_types(child_id))[0] == "execution.started"
