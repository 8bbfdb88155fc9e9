"""CloudTasksQueue with the real google-cloud-tasks client against an in-test gRPC fake."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from _fake_tasks import FakeCloudTasks
from _grpc_fake import serve
from google.cloud import tasks_v2

from bench._grpc_count import RpcCounter
from shared.adapters.clock import ManualClock
from shared.adapters.cloud_tasks_queue import (
    MAX_SCHEDULE_AHEAD,
    CloudTasksConfig,
    CloudTasksQueue,
    task_id,
)
from shared.api.tasks import decode_task, encode_task
from shared.errors import TransientError, WorkflowError
from shared.ports import StepTask

Fake = tuple[FakeCloudTasks, str]
QUEUE = "projects/demo/locations/europe-west1/queues/steps"
URL = "https://execute-step-abc-ew.a.run.app/"
ACCOUNT = "tasks-invoker@demo.iam.gserviceaccount.com"
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
RUN = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def fake() -> Iterator[Fake]:
    service = FakeCloudTasks()
    with serve(service) as address:
        yield service, address


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


def make_queue(address: str, clock: ManualClock, **overrides: object) -> CloudTasksQueue:
    fields: dict[str, object] = {
        "queue_path": QUEUE,
        "url": URL,
        "service_account": ACCOUNT,
        "emulator_host": address,
        "retry_seconds": 0.0,
    }
    fields.update(overrides)
    config = CloudTasksConfig(**fields)  # type: ignore[arg-type]
    return CloudTasksQueue(config, clock=clock)


@pytest.fixture
async def queue(fake: Fake, clock: ManualClock) -> AsyncIterator[CloudTasksQueue]:
    q = make_queue(fake[1], clock)
    yield q
    await q.close()


def step(run_id: str = RUN, wake_seq: int = 0, due: datetime = NOW) -> StepTask:
    return StepTask(execution_id="exec-1", run_id=run_id, due_at=due, wake_seq=wake_seq)


async def test_one_http_task_per_hop(fake: Fake, queue: CloudTasksQueue) -> None:
    service, _ = fake
    task = step()
    await queue.enqueue(task)
    (request,) = service.created()
    assert request.parent == QUEUE
    sent = request.task
    assert sent.name == f"{QUEUE}/tasks/{task_id(task)}"
    http = sent.http_request
    assert http.url == URL
    assert http.http_method == http.http_method.POST
    assert http.headers["Content-Type"] == "application/json"
    assert http.body == encode_task(task)
    decoded = decode_task(http.body)
    assert (decoded.execution_id, decoded.run_id, decoded.wake_seq) == ("exec-1", RUN, 0)


def test_task_names_are_hashed_deterministic_and_safe() -> None:
    first = task_id(step())
    assert first == task_id(step())
    assert re.fullmatch(rf"[0-9a-f]{{8}}-{RUN}-0", first)
    assert task_id(step(wake_seq=1)) != first
    assert task_id(step(wake_seq=1)).endswith(f"-{RUN}-1")
    prefixes = {task_id(step(run_id=f"{i:032x}"))[:8] for i in range(50)}
    assert len(prefixes) == 50, "sequential run ids get spread prefixes"
    odd = task_id(step(run_id="a/b.c" + "x" * 600, wake_seq=12))
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,500}", odd)
    assert len(odd) == 500 and odd.endswith("-12")
    assert task_id(step(run_id="a/b")) != task_id(step(run_id="a.b")), "hash of the raw id"
    check = task_id(replace(step(), tag="lease1767603600000"))
    assert check != first and check.endswith(f"-{RUN}-0-lease1767603600000"), "a lease check"
    tagged = task_id(replace(step(run_id="a/b.c" + "x" * 600, wake_seq=12), tag="lease1"))
    assert len(tagged) == 500 and tagged.endswith("-12-lease1")


async def test_second_enqueue_is_already_exists_and_success(
    fake: Fake, queue: CloudTasksQueue
) -> None:
    service, _ = fake
    await queue.enqueue(step())
    await queue.enqueue(step())  # refused by the service: success here
    assert len(service.created()) == 2
    assert len(service.tasks) == 1
    await queue.enqueue(step(wake_seq=1))  # a new wake-up is a new task
    assert len(service.tasks) == 2


async def test_oidc_token_account_and_audience(fake: Fake, clock: ManualClock) -> None:
    service, address = fake
    default = make_queue(address, clock)
    custom = make_queue(address, clock, audience="https://wfe.example.com")
    anonymous = make_queue(address, clock, service_account="")
    try:
        await default.enqueue(step(run_id="a" * 32))
        await custom.enqueue(step(run_id="b" * 32))
        await anonymous.enqueue(step(run_id="c" * 32))
    finally:
        for q in (default, custom, anonymous):
            await q.close()
    tokens = [request.task.http_request.oidc_token for request in service.created()]
    assert [(t.service_account_email, t.audience) for t in tokens] == [
        (ACCOUNT, URL),
        (ACCOUNT, "https://wfe.example.com"),
        ("", ""),
    ]


async def test_schedule_time_is_the_due_time_capped_at_30_days(
    fake: Fake, queue: CloudTasksQueue, clock: ManualClock
) -> None:
    service, _ = fake
    soon = NOW + timedelta(seconds=90)
    await queue.enqueue(step(run_id="a" * 32, due=soon))
    await queue.enqueue(step(run_id="b" * 32, due=NOW + timedelta(days=45)))
    await queue.enqueue(step(run_id="c" * 32, due=NOW - timedelta(minutes=5)))
    times = [request.task.schedule_time for request in service.created()]
    assert times[0] == soon
    assert times[1] == NOW + MAX_SCHEDULE_AHEAD
    assert NOW + timedelta(days=29, hours=23) < times[1] <= NOW + timedelta(days=30)
    assert times[2] == NOW - timedelta(minutes=5), "overdue: delivered at once"


async def test_dispatch_deadline_default_per_task_and_clamped(
    fake: Fake, clock: ManualClock
) -> None:
    service, address = fake
    plain = make_queue(address, clock, dispatch_deadline_seconds=120.0)
    per_step = CloudTasksQueue(
        plain.config,
        clock=clock,
        deadline_for=lambda task: {"a": 5.0, "b": 7200.0, "c": 330.0}.get(task.run_id[0]),
    )
    try:
        await plain.enqueue(step(run_id="0" * 32))
        for run in ("a", "b", "c", "d"):
            await per_step.enqueue(step(run_id=run * 32))
    finally:
        await plain.close()
        await per_step.close()
    deadlines = [r.task.dispatch_deadline.total_seconds() for r in service.created()]
    assert deadlines == [120.0, 15.0, 1800.0, 330.0, 120.0]


@pytest.mark.parametrize(
    "code",
    [
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    ],
)
async def test_transient_errors_are_retryable(
    fake: Fake, queue: CloudTasksQueue, code: grpc.StatusCode
) -> None:
    service, _ = fake
    service.fail_next("CreateTask", code)
    with pytest.raises(TransientError) as caught:
        await queue.enqueue(step())
    assert caught.value.retryable
    assert caught.value.details["grpcStatus"] == code.name
    await queue.enqueue(step())  # the next attempt goes through
    assert len(service.tasks) == 1


async def test_other_errors_are_not_retryable(fake: Fake, queue: CloudTasksQueue) -> None:
    service, _ = fake
    service.fail_next("CreateTask", grpc.StatusCode.PERMISSION_DENIED)
    with pytest.raises(WorkflowError) as caught:
        await queue.enqueue(step())
    assert not caught.value.retryable
    assert caught.value.code == "TASK_QUEUE_ERROR"


async def test_unavailable_is_retried_within_the_call(fake: Fake, clock: ManualClock) -> None:
    service, address = fake
    counter = RpcCounter()
    config = make_queue(address, clock, retry_seconds=5.0).config
    queue = CloudTasksQueue(config, clock=clock, interceptors=counter.aio_interceptors())
    service.fail_next("CreateTask", grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNAVAILABLE)
    try:
        await queue.enqueue(step())
    finally:
        await queue.close()
    assert len(service.tasks) == 1
    assert counter.count("CreateTask") == 3
    assert counter.count("/google.cloud.tasks.v2.CloudTasks/CreateTask") == 3


async def test_nothing_connects_before_the_first_enqueue(clock: ManualClock) -> None:
    queue = make_queue("127.0.0.1:1", clock)  # nothing listens there
    assert queue._client is None
    await queue.close()


def test_config_is_validated() -> None:
    with pytest.raises(ValueError):
        CloudTasksConfig(queue_path="projects/p/queues/q", url=URL)
    with pytest.raises(ValueError):
        CloudTasksConfig(queue_path=QUEUE, url="execute-step")


def test_the_counter_counts_sync_clients_too(fake: Fake) -> None:
    service, address = fake
    assert not service.tasks
    counter = RpcCounter()
    channel = grpc.intercept_channel(grpc.insecure_channel(address), counter.interceptor())
    transport = tasks_v2.services.cloud_tasks.transports.CloudTasksGrpcTransport(channel=channel)
    client = tasks_v2.CloudTasksClient(transport=transport)
    task = tasks_v2.Task(name=f"{QUEUE}/tasks/t1", http_request=tasks_v2.HttpRequest(url=URL))
    client.create_task(parent=QUEUE, task=task)
    transport.close()
    assert counter.snapshot() == {"/google.cloud.tasks.v2.CloudTasks/CreateTask": 1}
    assert counter.reset() == {"/google.cloud.tasks.v2.CloudTasks/CreateTask": 1}
    assert counter.count("CreateTask") == 0
