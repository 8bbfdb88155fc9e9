"""CloudTasksQueue against the Cloud Tasks emulator: tasks really delivered over HTTP.

The emulator does not refuse duplicate names nor send OIDC tokens (see
``test_cloud_tasks_queue.py`` for those, against a gRPC fake); it does keep queues,
deliver HTTP tasks with the ``X-CloudTasks-*`` headers, honour schedule times and
retry 5xx answers.
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import uvicorn
from _recorder import recording
from google.cloud import tasks_v2
from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcAsyncIOTransport
from grpc import aio
from starlette.types import ASGIApp, Receive, Scope, Send

from bench._grpc_count import RpcCounter
from shared.adapters.cloud_tasks_queue import CloudTasksConfig, CloudTasksQueue, task_id
from shared.adapters.memory_store import MemoryStore
from shared.api.tasks import create_tasks_app, decode_task, encode_task
from shared.app.service import StartRequest
from shared.composition import Runtime, build_gcp
from shared.composition.edge import build_edge
from shared.ports import StepTask
from shared.settings import GcpSettings, Settings

pytestmark = pytest.mark.emulator

LOCATION = "us-central1"
RUN = "0123456789abcdef0123456789abcdef"


async def create_queue(host: str, project: str, queue_id: str = "steps") -> str:
    """A new queue on the emulator (the real client, a plain-text channel)."""
    transport = CloudTasksGrpcAsyncIOTransport(channel=aio.insecure_channel(host))
    client = tasks_v2.CloudTasksAsyncClient(transport=transport)
    parent = f"projects/{project}/locations/{LOCATION}"
    try:
        queue = await client.create_queue(
            parent=parent, queue=tasks_v2.Queue(name=f"{parent}/queues/{queue_id}")
        )
    finally:
        await transport.close()
    return str(queue.name)


@pytest.fixture
async def queue_path(tasks_emulator_host: str) -> str:
    return await create_queue(tasks_emulator_host, f"test-{uuid.uuid4().hex[:12]}")


async def test_a_task_is_delivered_with_its_headers(
    tasks_emulator_host: str, queue_path: str
) -> None:
    with recording() as recorder:
        config = CloudTasksConfig(
            queue_path=queue_path,
            url=f"{recorder.url}/tasks/execute-step",
            service_account="tasks@demo.iam.gserviceaccount.com",
            emulator_host=tasks_emulator_host,
        )
        queue = CloudTasksQueue(config)
        task = StepTask("exec-1", RUN, datetime.now(UTC), wake_seq=2)
        try:
            await queue.enqueue(task)
        finally:
            await queue.close()
        (got,) = await asyncio.to_thread(recorder.wait_for, 1)
    assert (got.method, got.path) == ("POST", "/tasks/execute-step")
    assert got.body == encode_task(task)
    assert got.headers["content-type"] == "application/json"
    assert got.headers["x-cloudtasks-taskname"] == task_id(task)
    assert got.headers["x-cloudtasks-queuename"].endswith("steps")
    assert got.headers["x-cloudtasks-taskretrycount"] == "0"
    assert got.headers["x-cloudtasks-taskexecutioncount"] == "0"
    decoded = decode_task(got.body)
    assert (decoded.execution_id, decoded.run_id, decoded.wake_seq) == ("exec-1", RUN, 2)


async def test_schedule_time_and_retries_of_5xx(tasks_emulator_host: str, queue_path: str) -> None:
    with recording(answers=[503]) as recorder:
        config = CloudTasksConfig(
            queue_path=queue_path, url=f"{recorder.url}/x", emulator_host=tasks_emulator_host
        )
        queue = CloudTasksQueue(config)
        loop = asyncio.get_running_loop()
        due = datetime.now(UTC) + timedelta(seconds=1.5)
        enqueued_at = loop.time()
        try:
            await queue.enqueue(StepTask("exec-1", RUN, due))
        finally:
            await queue.close()
        first, second = await asyncio.to_thread(recorder.wait_for, 2)
    assert first.at - enqueued_at >= 1.0, "not delivered before its schedule time"
    assert [
        first.headers["x-cloudtasks-taskretrycount"],
        second.headers["x-cloudtasks-taskretrycount"],
    ] == ["0", "1"]
    assert first.body == second.body


# -- the engine's hops through the emulator ----------------------------------------------

WORKFLOW = {
    "name": "through-the-emulator",
    "steps": [
        {"id": "start", "type": "transform", "config": {"set": {"n": 1}}, "nextSteps": ["pause"]},
        {"id": "pause", "type": "wait", "config": {"seconds": 0.5}, "nextSteps": ["both"]},
        {
            "id": "both",
            "type": "parallel",
            "config": {"branches": [{"name": "a", "start": "a"}, {"name": "b", "start": "b"}]},
            "nextSteps": ["done"],
        },
        {"id": "a", "type": "transform", "config": {"output": "A"}},
        {"id": "b", "type": "wait", "config": {"seconds": 0.2}},
        {"id": "done", "type": "transform", "config": {"output": {"ok": True}}},
    ],
}


def _free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


class ExecuteStep:
    """execute-step's app, installed once the runtime it serves is built (the runtime's
    settings need this server's URL first)."""

    url = ""
    app: ASGIApp | None = None

    def serve(self, runtime: Runtime) -> None:
        self.app = create_tasks_app(build_edge(runtime.settings, runtime=runtime), lifespan=False)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.app is not None, "no runtime served yet"
        await self.app(scope, receive, send)


@pytest.fixture
async def execute_step_server() -> AsyncIterator[ExecuteStep]:
    """execute-step's app under uvicorn in this loop."""
    sock = _free_socket()
    target = ExecuteStep()
    config = uvicorn.Config(target, lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    target.url = f"http://127.0.0.1:{sock.getsockname()[1]}/tasks/execute-step"
    try:
        yield target
    finally:
        server.should_exit = True
        await serving
        sock.close()


async def test_an_execution_runs_through_the_emulator(
    tasks_emulator_host: str, queue_path: str, execute_step_server: ExecuteStep
) -> None:
    project = queue_path.split("/")[1]
    settings = Settings(
        backend="gcp",
        token_verifier="dev",  # the queue signs a dev token per task; execute-step checks it
        gcp=GcpSettings(
            project=project,
            location=LOCATION,
            tasks_queue=queue_path.rsplit("/", 1)[-1],
            execute_step_url=execute_step_server.url,
            tasks_emulator_host=tasks_emulator_host,
        ),
    )
    counter = RpcCounter()
    runtime = build_gcp(settings, store=MemoryStore(), interceptors=counter.aio_interceptors())
    execute_step_server.serve(runtime)
    try:
        await runtime.start()
        definition = await runtime.app.create_workflow(WORKFLOW)
        execution = await runtime.app.start_execution(StartRequest(definition.id, {}))
        for _ in range(300):
            execution = await runtime.app.get_execution(execution.id)
            if execution.status.terminal:
                break
            await asyncio.sleep(0.1)
        runs = await runtime.app.step_history(execution.id)
    finally:
        await runtime.stop()
    assert execution.status == "succeeded", execution
    assert execution.result == {"ok": True}
    assert counter.count("CreateTask") >= 4, "hops at the start, the waits and the fan-out"
    assert {run.step_id for run in runs} >= {"start", "pause", "both", "a", "b", "done"}
