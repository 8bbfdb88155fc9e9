"""Moving running executions to another version (issue 14, part 4; docs/migration.md).

Runs on the memory and SQLite stores (the ``h`` fixture). A compatible move mid-run
finishes on the target's steps without running done steps again; an unsafe one is
refused with coded reasons and changes nothing; 100 waiting executions move in bulk;
a move racing with a step's (duplicated) deliveries never loses or doubles a step.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from typing import Any

import pytest
from harness import Harness, linear

from shared.app.migration import (
    migrate_execution,
    migrate_request,
    migrate_workflow_executions,
)
from shared.engine.migration import MigrationRefused, plan_migration
from shared.errors import InputInvalid, NotFound
from shared.models import ExecutionStatus, StepRun, StepRunStatus, WorkflowExecution

ONE = {"id": "one", "type": "count"}
ASK = {"id": "ask", "type": "wait_for_event", "config": {"event": "go", "timeoutSeconds": 600}}


def three(tag: str) -> dict[str, Any]:
    return {"id": "three", "type": "transform", "config": {"output": f"{tag}:${{prev.payload}}"}}


V1 = linear(ONE, ASK, three("v1"), name="migrate-me")
V2 = linear(ONE, ASK, three("v2"), name="migrate-me")


async def versions(h: Harness, *raws: dict[str, Any]) -> str:
    """A workflow with one version per definition given (1, 2, ...)."""
    workflow_id = await h.create(raws[0])
    for raw in raws[1:]:
        await h.app.update_workflow(workflow_id, {**raw, "name": raws[0]["name"]})
    return workflow_id


async def waiting_at_ask(h: Harness, workflow_id: str) -> WorkflowExecution:
    execution = await h.start(workflow_id, version=1)
    await h.drain(advance=False)
    stored = await h.app.get_execution(execution.id)
    assert stored.status == ExecutionStatus.WAITING
    return stored


async def migrate(
    h: Harness, execution_id: str, to_version: int, dry_run: bool = False, **kw: Any
) -> Any:
    request = migrate_request(to_version, kw.get("mapping"), kw.get("rerun"), dry_run)
    return await migrate_execution(h.app, execution_id, request)


def calls_by_step(h: Harness, runs: list[StepRun]) -> Counter[str]:
    step_of = {r.id: r.step_id for r in runs}
    counted: Counter[str] = Counter()
    for run_id, n in h.counter.calls.items():
        if run_id in step_of:
            counted[step_of[run_id]] += n
    return counted


async def test_compatible_migration_mid_run_finishes_on_the_target_version(h: Harness) -> None:
    workflow_id = await versions(h, V1, V2)
    execution = await waiting_at_ask(h, workflow_id)
    assert execution.workflow_version == 1

    dry = await migrate(h, execution.id, 2, dry_run=True)
    assert dry.applied is False and dry.plan.ok, dry.plan.problems
    assert [(m.from_step, m.to_step) for m in dry.plan.moves] == [("ask", "ask")]
    assert (await h.app.get_execution(execution.id)).workflow_version == 1  # dry: unchanged

    done = await migrate(h, execution.id, 2)
    assert done.applied is True
    moved = await h.app.get_execution(execution.id)
    assert moved.workflow_version == 2 and moved.status == ExecutionStatus.WAITING
    enqueued = h.queue.enqueued

    assert (await h.app.send_event(execution.id, "go", "yes"))["delivered"] is True
    await h.drain()
    final = await h.app.get_execution(execution.id)
    assert final.status == ExecutionStatus.SUCCEEDED
    assert final.result == "v2:yes"  # the target's step three ran
    runs = await h.runs(execution.id)
    assert calls_by_step(h, runs) == Counter({"one": 1})  # step one was not run again
    assert [r.step_id for r in runs if r.status == StepRunStatus.SUCCEEDED].count("one") == 1
    assert h.queue.enqueued == enqueued + 1  # only the event's wake-up: the move enqueued none

    events = await h.app.events(execution.id)
    migrated = [e for e in events if e.type == "execution.migrated"]
    assert len(migrated) == 1
    assert migrated[0].data["fromVersion"] == 1 and migrated[0].data["toVersion"] == 2
    assert [e.seq for e in events] == list(range(1, len(events) + 1))


async def test_mapping_renames_a_waiting_step_and_keeps_its_wait(h: Harness) -> None:
    renamed = {**ASK, "id": "approve"}
    v2 = linear(ONE, renamed, three("v2"), name="migrate-me")
    workflow_id = await versions(h, V1, v2)
    execution = await waiting_at_ask(h, workflow_id)
    before = {r.id: r for r in await h.runs(execution.id)}

    refused = await migrate(h, execution.id, 2, dry_run=True)
    assert [p.code for p in refused.plan.problems] == ["MIGRATION_STEP_MISSING"]

    result = await migrate(h, execution.id, 2, mapping={"ask": "approve"})
    assert result.applied
    after = {r.id: r for r in await h.runs(execution.id)}
    assert set(after) == set(before)  # same runs: ids, keys, due times kept
    waiting = [r for r in after.values() if r.status == StepRunStatus.WAITING]
    assert [r.step_id for r in waiting] == ["approve"]
    old = before[waiting[0].id]
    assert waiting[0].due_at == old.due_at and waiting[0].wake_seq == old.wake_seq
    assert waiting[0].idempotency_key == old.idempotency_key
    assert waiting[0].state == old.state

    assert (await h.app.send_event(execution.id, "go", 7))["delivered"] is True
    await h.drain()
    final = await h.app.get_execution(execution.id)
    assert final.status == ExecutionStatus.SUCCEEDED and final.result == "v2:7"
    history = [r.step_id for r in await h.app.step_history(execution.id)]
    assert history == ["one", "approve", "three"]


async def test_incompatible_migration_is_refused_with_reasons_and_changes_nothing(
    h: Harness,
) -> None:
    other_event = {**ASK, "id": "approve", "config": {"event": "stop", "timeoutSeconds": 600}}
    reads = {
        "id": "three",
        "type": "transform",
        "config": {"output": "${vars.customer + string(prev.payload)}"},
    }
    v2 = linear(ONE, other_event, reads, name="migrate-me")
    v3 = linear(ONE, {"id": "ask", "type": "transform", "config": {"output": 1}}, name="m")
    workflow_id = await versions(h, V1, v2, v3)
    execution = await waiting_at_ask(h, workflow_id)
    before_execution = (await h.app.get_execution(execution.id)).model_dump()
    before_runs = [r.model_dump() for r in await h.runs(execution.id)]
    before_events = await h.event_types(execution.id)

    with pytest.raises(MigrationRefused) as missing:
        await migrate(h, execution.id, 2)
    codes = {p.code: p.path for p in missing.value.plan.problems}
    assert codes["MIGRATION_STEP_MISSING"].startswith("/runs/")
    assert missing.value.code == "MIGRATION_REFUSED" and not missing.value.retryable

    with pytest.raises(MigrationRefused) as changed:
        await migrate(h, execution.id, 2, mapping={"ask": "approve"})
    codes = {p.code: p.path for p in changed.value.plan.problems}
    assert codes["MIGRATION_WAIT_CHANGED"].startswith("/runs/")
    assert codes["MIGRATION_VARIABLE_MISSING"] == "/steps/three/vars/customer"
    assert "MIGRATION_STEP_MISSING" not in codes

    with pytest.raises(MigrationRefused) as typed:
        await migrate(h, execution.id, 3)
    assert [p.code for p in typed.value.plan.problems] == ["MIGRATION_STEP_TYPE_CHANGED"]

    with pytest.raises(MigrationRefused) as same:
        await migrate(h, execution.id, 1)
    assert [p.code for p in same.value.plan.problems] == ["MIGRATION_SAME_VERSION"]

    with pytest.raises(NotFound):
        await migrate(h, execution.id, 9)

    assert (await h.app.get_execution(execution.id)).model_dump() == before_execution
    assert [r.model_dump() for r in await h.runs(execution.id)] == before_runs
    assert await h.event_types(execution.id) == before_events

    # The execution is untouched: it still finishes on version 1.
    await h.app.send_event(execution.id, "go", "ok")
    await h.drain()
    final = await h.app.get_execution(execution.id)
    assert final.status == ExecutionStatus.SUCCEEDED and final.result == "v1:ok"

    with pytest.raises(MigrationRefused) as ended:
        await migrate(h, execution.id, 2, mapping={"ask": "approve"})
    assert "MIGRATION_TERMINAL" in {p.code for p in ended.value.plan.problems}


async def test_a_done_step_the_target_reaches_again_needs_rerun(h: Harness) -> None:
    looping = linear(
        {**ONE, "maxIterations": 3},
        {**ASK, "nextSteps": ["one"]},
        name="migrate-me",
    )
    workflow_id = await versions(h, V1, looping)
    execution = await waiting_at_ask(h, workflow_id)

    plan = (await migrate(h, execution.id, 2, dry_run=True)).plan
    assert [(p.code, p.path) for p in plan.problems] == [("MIGRATION_STEP_RERUN", "/steps/one")]
    assert plan.reruns == ["one"]
    allowed = await migrate(h, execution.id, 2, dry_run=True, rerun=["one"])
    assert allowed.plan.ok and allowed.plan.rerun == ["one"]


async def test_variables_the_target_declares_are_added(h: Harness) -> None:
    reads = {"id": "three", "type": "transform", "config": {"output": "${vars.region}"}}
    v2 = linear(ONE, ASK, reads, name="migrate-me", variables={"region": "eu"})
    workflow_id = await versions(h, V1, v2)
    execution = await waiting_at_ask(h, workflow_id)
    result = await migrate(h, execution.id, 2)
    assert result.plan.added_variables == {"region": "eu"}
    await h.app.send_event(execution.id, "go", None)
    await h.drain()
    final = await h.app.get_execution(execution.id)
    assert final.status == ExecutionStatus.SUCCEEDED and final.result == "eu"


async def test_bulk_migration_of_100_waiting_executions(h: Harness) -> None:
    workflow_id = await versions(h, V1, V2)
    ids = []
    for _ in range(100):
        ids.append((await h.start(workflow_id, version=1)).id)
    await h.drain(advance=False)

    request = migrate_request(2, None, None, dry_run=False)
    results = await migrate_workflow_executions(
        h.app, workflow_id, request, from_version=1, limit=500
    )
    assert sorted(r.execution_id for r in results) == sorted(ids)
    assert all(r.applied for r in results), [r.to_dict() for r in results if not r.applied]
    again = await migrate_workflow_executions(h.app, workflow_id, request, limit=500)
    assert again == []  # all on version 2 now: nothing left to move

    for execution_id in ids:
        assert (await h.app.send_event(execution_id, "go", execution_id[:4]))["delivered"]
    await h.drain()
    for execution_id in ids:
        final = await h.app.get_execution(execution_id)
        assert final.status == ExecutionStatus.SUCCEEDED
        assert final.workflow_version == 2 and final.result == f"v2:{execution_id[:4]}"
    runs = [r for e in ids for r in await h.runs(e)]
    assert sum(calls_by_step(h, runs).values()) == 100  # step one once per execution


async def test_bulk_checks_its_limits(h: Harness) -> None:
    workflow_id = await versions(h, V1, V2)
    request = migrate_request(2, None, None, dry_run=True)
    with pytest.raises(InputInvalid):
        await migrate_workflow_executions(h.app, workflow_id, request, limit=501)
    with pytest.raises(NotFound):
        await migrate_workflow_executions(h.app.for_tenant("other"), workflow_id, request)


RACE_V1 = linear(
    {"id": "one", "type": "count"},
    {"id": "two", "type": "count"},
    {"id": "three", "type": "count"},
    name="race",
)
RACE_V2 = linear(
    {"id": "one", "type": "count"},
    {"id": "two", "type": "count", "timeoutSeconds": 30},
    {"id": "four", "type": "count", "timeoutSeconds": 20},
    name="race",
)
"""Version 2 replaces step three with step four: a run of three moves to four."""


async def test_migration_racing_with_step_completion_loses_and_doubles_nothing(
    h: Harness,
) -> None:
    workflow_id = await versions(h, RACE_V1, RACE_V2)
    h.counter.delay = 0.002
    rng = random.Random(14)
    outcomes: Counter[str] = Counter()
    for _ in range(12):
        execution = await h.start(workflow_id, version=1)
        # Deliver some steps first, so the move meets the execution at varied places.
        for _ in range(rng.randrange(3)):
            for task in h.queue.take_due(h.clock.now()):
                await h.deliver(task)

        async def move(execution_id: str = execution.id) -> str:
            await asyncio.sleep(rng.random() * 0.004)
            for _ in range(50):
                try:
                    await migrate(h, execution_id, 2, mapping={"three": "four"})
                    return "applied"
                except MigrationRefused as refused:
                    codes = {p.code for p in refused.plan.problems}
                    if "MIGRATION_TERMINAL" in codes:
                        return "ended first"
                    assert codes == {"MIGRATION_RUNNING_STEP"}, codes
                    await asyncio.sleep(0.001)
            return "gave up"

        async def deliver_all() -> None:
            while tasks := h.queue.take_due(h.clock.now()):
                await asyncio.sleep(rng.random() * 0.003)  # queue latency, varied
                await asyncio.gather(*(h.deliver(t, times=2, concurrent=True) for t in tasks))

        outcome, _ = await asyncio.gather(move(), deliver_all())
        outcomes[outcome] += 1
        await h.drain()
        final = await h.app.get_execution(execution.id)
        assert final.status == ExecutionStatus.SUCCEEDED, final
        last = "four" if outcome == "applied" else "three"
        runs = await h.runs(execution.id)
        assert calls_by_step(h, runs) == Counter({"one": 1, "two": 1, last: 1})
        succeeded = [r.step_id for r in await h.app.step_history(execution.id)]
        assert succeeded == ["one", "two", last]
        assert all(r.status == StepRunStatus.SUCCEEDED for r in runs)
        types = await h.event_types(execution.id)
        assert types.count("execution.migrated") == (1 if outcome == "applied" else 0)
        assert final.workflow_version == (2 if outcome == "applied" else 1)
    assert outcomes["applied"] > 0 and outcomes["gave up"] == 0, outcomes


def test_a_running_run_is_a_retryable_reason() -> None:
    from shared.models import WorkflowDefinition

    source = WorkflowDefinition.model_validate({**RACE_V1, "id": "w", "version": 1})
    target = WorkflowDefinition.model_validate({**RACE_V2, "id": "w", "version": 2})
    execution = WorkflowExecution(id="e", workflow_id="w", workflow_version=1)
    run = StepRun(
        id="r", execution_id="e", step_id="two", step_type="count", status=StepRunStatus.RUNNING
    )
    plan = plan_migration(execution, [run], source, target)
    assert [p.code for p in plan.problems] == ["MIGRATION_RUNNING_STEP"]
    assert plan.retryable
    run.status = StepRunStatus.SCHEDULED
    assert plan_migration(execution, [run], source, target).ok
    queued = execution.model_copy(update={"status": ExecutionStatus.QUEUED})
    assert [p.code for p in plan_migration(queued, [run], source, target).problems] == [
        "MIGRATION_QUEUED"
    ]


def test_requests_are_checked() -> None:
    with pytest.raises(InputInvalid):
        migrate_request(0)
    with pytest.raises(InputInvalid):
        migrate_request(True)
    with pytest.raises(InputInvalid) as hostile:
        migrate_request(2, {"ask": "../../etc"})
    assert hostile.value.path == "/mapping/ask"
    with pytest.raises(InputInvalid):
        migrate_request(2, {f"s{i}": "t" for i in range(1001)})
    with pytest.raises(InputInvalid):
        migrate_request(2, None, ["ok", "${vars.x}"])
    assert migrate_request(2, {"a": "b"}, ["c"]).mapping == {"a": "b"}


FAN_V1 = {
    "name": "fan",
    "steps": [
        {
            "id": "fan",
            "type": "parallel",
            "config": {"branches": [{"name": "a", "start": "a"}, {"name": "b", "start": "b"}]},
            "nextSteps": ["after"],
        },
        {"id": "a", "type": "wait_for_event", "config": {"event": "a", "timeoutSeconds": 60}},
        {"id": "b", "type": "wait_for_event", "config": {"event": "b", "timeoutSeconds": 60}},
        {"id": "after", "type": "transform", "config": {"output": "v1"}},
    ],
}


async def test_fan_out_in_flight_moves_only_when_the_fan_out_step_is_unchanged(
    h: Harness,
) -> None:
    changed: dict[str, Any] = {**FAN_V1, "steps": [dict(s) for s in FAN_V1["steps"]]}
    changed["steps"][0]["config"] = {
        "branches": [{"name": "a", "start": "a"}, {"name": "bee", "start": "b"}]
    }
    changed["steps"][2] = {"id": "b", "type": "transform", "config": {"output": 1}}
    same_fan: dict[str, Any] = {**FAN_V1, "steps": [dict(s) for s in FAN_V1["steps"]]}
    same_fan["steps"][3] = {"id": "after", "type": "transform", "config": {"output": "v3"}}
    workflow_id = await versions(h, FAN_V1, changed, same_fan)
    execution = await h.start(workflow_id, version=1)
    await h.drain(advance=False)
    live = {r.step_id: r.status for r in await h.runs(execution.id) if not r.status.terminal}
    assert live == {
        "fan": StepRunStatus.WAITING,
        "a": StepRunStatus.WAITING,
        "b": StepRunStatus.WAITING,
    }

    with pytest.raises(MigrationRefused) as refused:
        await migrate(h, execution.id, 2)
    codes = sorted(p.code for p in refused.value.plan.problems)
    assert codes == ["MIGRATION_FANOUT_CHANGED", "MIGRATION_STEP_TYPE_CHANGED"]

    moved = await migrate(h, execution.id, 3)
    assert moved.applied and sorted(m.to_step or "" for m in moved.plan.moves) == [
        "a",
        "b",
        "fan",
    ]
    await h.app.send_event(execution.id, "a", 1)
    await h.app.send_event(execution.id, "b", 2)
    await h.drain()
    final = await h.app.get_execution(execution.id)
    assert final.status == ExecutionStatus.SUCCEEDED and final.result == "v3"


async def test_the_deadline_timer_is_left_alone_and_mapping_keys_are_checked(
    h: Harness,
) -> None:
    workflow_id = await versions(h, {**V1, "timeoutSeconds": 3600}, V2)
    execution = await waiting_at_ask(h, workflow_id)
    deadline = [r for r in await h.runs(execution.id) if r.step_type == "$deadline"]
    assert len(deadline) == 1
    plan = (await migrate(h, execution.id, 2, dry_run=True, mapping={"nope": "ask"})).plan
    assert [(p.code, p.path) for p in plan.problems] == [
        ("MIGRATION_MAPPING_UNKNOWN_SOURCE", "/mapping/nope")
    ]
    assert (await migrate(h, execution.id, 2)).applied
    after = [r for r in await h.runs(execution.id) if r.step_type == "$deadline"]
    assert [r.model_dump() for r in after] == [r.model_dump() for r in deadline]
    moved = await h.app.get_execution(execution.id)
    assert moved.deadline == execution.deadline
