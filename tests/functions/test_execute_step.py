"""The execute-step function (the Cloud Tasks target), in-process."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from _triggers import function_client

from shared.api.edge import Edge
from shared.api.tasks import encode_task
from shared.app.service import StartRequest
from shared.composition import LocalRuntime
from shared.engine.runtime import Engine
from shared.errors import Conflict, InvalidState
from shared.models import StepRunStatus
from shared.ports import StepTask

CHAIN = {
    "name": "chain",
    "steps": [
        {
            "id": "a",
            "type": "transform",
            "config": {"set": {"x": "${input.n + 1}"}},
            "nextSteps": ["b"],
        },
        {"id": "b", "type": "transform", "config": {"set": {"y": "${vars.x * 10}"}}},
    ],
    "output": {"y": "${vars.y}"},
}


@pytest.fixture
async def client(runtime: LocalRuntime, edge: Edge) -> AsyncIterator[httpx.AsyncClient]:
    # The function under test is the only worker, as in the cloud: the local dispatcher
    # stops delivering (tasks the engine enqueues just wait in its heap).
    await runtime.queue.stop()
    async with function_client(edge, "execute-step") as http:
        yield http
    await runtime.queue.stop()  # drop what the engine enqueued meanwhile: nobody delivers it


async def first_task(runtime: LocalRuntime) -> tuple[str, StepTask]:
    definition = await runtime.app.create_workflow(CHAIN)
    execution = await runtime.app.start_execution(StartRequest(definition.id, {"n": 4}))
    [run] = await runtime.store.list_runs(execution.id)
    assert run.status == StepRunStatus.SCHEDULED and run.due_at is not None
    return execution.id, StepTask(execution.id, run.id, run.due_at, run.wake_seq)


async def test_a_real_task_runs_and_advances_the_execution(
    client: httpx.AsyncClient, runtime: LocalRuntime
) -> None:
    execution_id, task = await first_task(runtime)
    before = await runtime.app.get_execution(execution_id)
    assert (before.status.terminal, before.current_step) == (False, None)

    response = await client.post("/", content=encode_task(task))

    assert response.status_code == 200, response.text
    assert response.json() == {"status": "done", "steps": ["a", "b"]}
    execution = await runtime.app.get_execution(execution_id)
    assert (execution.status, execution.result) == ("succeeded", {"y": 50})


async def test_the_same_task_twice_is_a_duplicate_with_one_recorded_step(
    client: httpx.AsyncClient, runtime: LocalRuntime
) -> None:
    execution_id, task = await first_task(runtime)

    first = await client.post("/", content=encode_task(task))
    second = await client.post("/", content=encode_task(task))

    assert (first.status_code, second.status_code) == (200, 200)
    assert (first.json()["status"], second.json()["status"]) == ("done", "duplicate")
    runs = await runtime.store.list_runs(execution_id)
    assert sorted(run.step_id for run in runs) == ["a", "b"]
    assert all(run.status == StepRunStatus.SUCCEEDED for run in runs)


async def test_unknown_work_is_acknowledged(client: httpx.AsyncClient) -> None:
    body = b'{"executionId": "nope", "runId": "nope", "wakeSeq": 0}'
    response = await client.post("/", content=body)
    assert (response.status_code, response.json()["status"]) == (200, "unknown")


@pytest.mark.parametrize(
    "body",
    [
        b"garbage",
        b"",
        b"[1, 2]",
        b'{"runId": "r", "wakeSeq": 0}',
        b'{"executionId": "e", "runId": 7, "wakeSeq": 0}',
        b'{"executionId": "e", "runId": "r", "wakeSeq": -1}',
        b'{"executionId": "e", "runId": "r", "wakeSeq": true}',
        b"\xff\xfe",
    ],
)
async def test_an_undecodable_payload_is_a_400(
    client: httpx.AsyncClient, runtime: LocalRuntime, body: bytes
) -> None:
    response = await client.post("/", content=body)
    assert response.status_code == 400
    assert response.json()["status"] == "rejected"
    assert response.json()["error"]["code"] == "INVALID_INPUT"


async def test_retryable_errors_are_503_and_permanent_ones_200(
    client: httpx.AsyncClient, runtime: LocalRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, task = await first_task(runtime)
    failures: list[Exception] = [Conflict("contention"), InvalidState("no longer applies")]

    async def failing(self: Engine, task: StepTask) -> Any:
        raise failures.pop(0)

    monkeypatch.setattr(Engine, "handle_task", failing)
    transient = await client.post("/", content=encode_task(task))
    permanent = await client.post("/", content=encode_task(task))

    assert (transient.status_code, transient.json()["status"]) == (503, "retry")
    assert transient.json()["error"]["code"] == "CONFLICT"
    assert (permanent.status_code, permanent.json()["status"]) == (200, "failed")


async def test_cloud_tasks_headers_reach_the_structured_log(
    client: httpx.AsyncClient, runtime: LocalRuntime, caplog: pytest.LogCaptureFixture
) -> None:
    _, task = await first_task(runtime)
    headers = {
        "X-CloudTasks-TaskName": "run-abc-0",
        "X-CloudTasks-TaskRetryCount": "3",
        "X-CloudTasks-QueueName": "steps",
    }
    with caplog.at_level(logging.INFO, logger="shared.api.tasks"):
        response = await client.post("/", content=encode_task(task), headers=headers)
    assert response.status_code == 200
    [record] = [r for r in caplog.records if r.name == "shared.api.tasks"]
    fields = record.__dict__["json_fields"]
    assert fields["taskName"] == "run-abc-0"
    assert fields["retryCount"] == 3
    assert fields["queueName"] == "steps"
    assert (fields["runId"], fields["status"]) == (task.run_id, "done")


async def test_health_and_method(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/")).status_code == 405


async def test_sweep_endpoint_requeues_overdue_runs(
    runtime: LocalRuntime, client: httpx.AsyncClient
) -> None:
    definition = await runtime.app.create_workflow(CHAIN)
    await runtime.app.start_execution(StartRequest(definition.id, {"n": 4}))
    runtime.settings.engine.sweep_grace_seconds = 0  # the run is overdue at once
    answer = await client.post("/sweep")
    assert answer.status_code == 200
    assert answer.json() == {"status": "swept", "requeued": 1}
