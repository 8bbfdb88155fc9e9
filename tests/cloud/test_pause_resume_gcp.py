"""Pause and resume in gcp mode: Firestore (emulator) and the real Cloud Tasks client.

Cloud Tasks refuses a task name it has seen in the last hour, delivered or not. The
Cloud Tasks emulator does not (see EMULATORS.md), so the queue here is the gRPC fake
that keeps every name, and the test delivers its tasks to the engine by hand. A task
delivered during a pause is answered ``paused`` and is spent; resume must create new
ones (issue 11, item 2).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import pytest
from _fake_tasks import FakeCloudTasks
from _grpc_fake import serve
from google.cloud.firestore import AsyncClient

from shared.adapters.clock import ManualClock
from shared.adapters.cloud_tasks_queue import CloudTasksConfig, CloudTasksQueue
from shared.adapters.firestore_store import FirestoreStore
from shared.adapters.local_bus import LocalEventBus
from shared.api.tasks import decode_task
from shared.app import WorkflowApp
from shared.app.service import StartRequest
from shared.engine.definitions import DefinitionCache
from shared.engine.runtime import Engine, HopResult
from shared.engine.steps import StepRegistry, StepServices
from shared.models import ExecutionStatus
from shared.steps import register_builtins

pytestmark = pytest.mark.emulator

QUEUE = "projects/demo/locations/europe-west1/queues/steps"
NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
WORKFLOW = {
    "name": "approval",
    "steps": [
        {
            "id": "ask",
            "type": "wait_for_event",
            "config": {"event": "go", "timeoutSeconds": 600},
            "nextSteps": ["after"],
        },
        {"id": "after", "type": "transform", "config": {"output": "${prev.payload}"}},
    ],
}


class Cloud:
    """An engine on Firestore whose tasks go to the fake; ``deliver`` plays the queue."""

    def __init__(self, store: FirestoreStore, queue: CloudTasksQueue, fake: FakeCloudTasks):
        self.fake = fake
        self.delivered: set[str] = set()
        self.clock = ManualClock(NOW)
        self.bus = LocalEventBus()
        registry = register_builtins(StepRegistry())
        services = StepServices(event_bus=self.bus, workflows=store, executions=store)
        self.engine = Engine(
            executions=store,
            definitions=DefinitionCache(store),
            queue=queue,
            registry=registry,
            services=services,
            clock=self.clock,
        )
        self.app = WorkflowApp(workflows=store, executions=store, engine=self.engine)

    async def deliver(self) -> list[HopResult]:
        """Deliver every task not delivered yet that is due (each name once)."""
        results = []
        for name, task in list(self.fake.tasks.items()):
            due = task.schedule_time.timestamp()
            if name in self.delivered or due > self.clock.now().timestamp():
                continue
            self.delivered.add(name)
            step = decode_task(task.http_request.body, received_at=self.clock.now())
            results.append(await self.engine.handle_task(step))
        return results


@pytest.fixture
def fake() -> Iterator[tuple[FakeCloudTasks, str]]:
    service = FakeCloudTasks()
    with serve(service) as address:
        yield service, address


@pytest.fixture
async def cloud(firestore_project: str, fake: tuple[FakeCloudTasks, str]) -> AsyncIterator[Cloud]:
    store = FirestoreStore(lambda: AsyncClient(project=firestore_project))
    config = CloudTasksConfig(
        queue_path=QUEUE,
        url="https://execute-step.example/",
        service_account="tasks@demo.iam.gserviceaccount.com",
        emulator_host=fake[1],
        retry_seconds=0.0,
    )
    queue = CloudTasksQueue(config)
    harness = Cloud(store, queue, fake[0])
    try:
        yield harness
    finally:
        await queue.close()
        await harness.bus.close()
        await store.close()


async def test_event_sent_while_paused_completes_after_resume(cloud: Cloud) -> None:
    workflow_id = (await cloud.app.create_workflow(WORKFLOW)).id
    execution = await cloud.app.start_execution(StartRequest(workflow_id, {}))
    assert [r.status for r in await cloud.deliver()] == ["done"]
    assert (await cloud.app.get_execution(execution.id)).status == ExecutionStatus.WAITING

    await cloud.app.pause(execution.id)
    assert (await cloud.app.send_event(execution.id, "go", "late"))["delivered"] is True
    assert [r.status for r in await cloud.deliver()] == ["paused"]

    resumed = await cloud.app.resume(execution.id)
    assert resumed.status == ExecutionStatus.RUNNING
    assert [r.status for r in await cloud.deliver()] == ["done"], "a task under a new name"
    done = await cloud.app.get_execution(execution.id)
    assert done.status == ExecutionStatus.SUCCEEDED and done.result == "late"


async def test_resume_while_waiting_stays_waiting_and_listed(cloud: Cloud) -> None:
    workflow_id = (await cloud.app.create_workflow(WORKFLOW)).id
    execution = await cloud.app.start_execution(StartRequest(workflow_id, {}))
    await cloud.deliver()
    await cloud.app.pause(execution.id)
    assert (await cloud.app.resume(execution.id)).status == ExecutionStatus.WAITING
    waiting = await cloud.app.list_executions(status=ExecutionStatus.WAITING)
    assert [e.id for e in waiting.items] == [execution.id]
    await cloud.app.send_event(execution.id, "go", 1)
    await cloud.deliver()
    assert (await cloud.app.get_execution(execution.id)).status == ExecutionStatus.SUCCEEDED
