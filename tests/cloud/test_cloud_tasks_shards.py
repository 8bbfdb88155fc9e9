"""Cloud Tasks queue shards: each tenant's tasks go to one queue, picked by its tenant.

Routing is checked end to end on the Cloud Tasks emulator: the queue a delivery came
from is the ``X-CloudTasks-QueueName`` header the emulator sends. The pure parts
(shard choice, queue ids, config from settings) need no emulator.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from _recorder import recording
from google.cloud import tasks_v2
from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcAsyncIOTransport
from grpc import aio

from shared.adapters.cloud_tasks_queue import (
    CloudTasksConfig,
    CloudTasksQueue,
    shard_of,
    shard_queue_ids,
)
from shared.api.tasks import decode_task
from shared.ports import StepTask
from shared.settings import Settings

URL = "https://execute-step.example/"
LOCATION = "us-central1"
BASE = "projects/demo/locations/us-central1/queues/wfe-steps"


async def create_queue(host: str, project: str, queue_id: str) -> str:
    """A new queue on the emulator (the real client, a plain-text channel)."""
    transport = CloudTasksGrpcAsyncIOTransport(channel=aio.insecure_channel(host))
    client = tasks_v2.CloudTasksAsyncClient(transport=transport)
    parent = f"projects/{project}/locations/{LOCATION}"
    try:
        queue = await client.create_queue(
            parent=parent, queue=tasks_v2.Queue(name=f"{parent}/queues/{queue_id}")
        )
    finally:
        await transport.close()  # type: ignore[no-untyped-call]
    return str(queue.name)


def test_shard_of_is_stable_and_spreads_tenants() -> None:
    assert shard_of("acme", 1) == 0
    # Stable across processes: SHA-256 of the name, not the salted hash().
    assert (
        shard_of("acme", 4)
        == int.from_bytes(__import__("hashlib").sha256(b"acme").digest()[:8], "big") % 4
    )
    counts = [0] * 4
    for index in range(400):
        counts[shard_of(f"tenant-{index}", 4)] += 1
    assert min(counts) > 60  # 100 expected per shard


def test_queue_ids_and_config_from_settings() -> None:
    assert shard_queue_ids("wfe-steps", 1) == ["wfe-steps"]
    assert shard_queue_ids("wfe-steps", 3) == ["wfe-steps", "wfe-steps-1", "wfe-steps-2"]
    settings = Settings.from_env(
        {
            "WFE_BACKEND": "gcp",
            "WFE_TASKS_QUEUE_SHARDS": "3",
            "WFE_EXECUTE_STEP_URL": URL,
            "WFE_LOCATION": "us-central1",
        }
    )
    config = CloudTasksConfig.from_settings(settings, "demo")
    assert config.queue_paths == (BASE, f"{BASE}-1", f"{BASE}-2")
    one = CloudTasksConfig.from_settings(Settings.from_env({"WFE_EXECUTE_STEP_URL": URL}), "p")
    assert one.shard_paths == ()


@pytest.mark.parametrize(
    "shards",
    [("projects/demo/locations/l/queues",), (BASE,), ("projects/demo/queues/x/y/z/w",)],
)
def test_rejects_bad_or_repeated_shards(shards: tuple[str, ...]) -> None:
    with pytest.raises(ValueError):
        CloudTasksConfig(queue_path=BASE, url=URL, shard_paths=shards)


async def test_one_queue_never_asks_for_the_tenant() -> None:
    asked: list[str] = []

    async def tenant_of(execution_id: str) -> str | None:
        asked.append(execution_id)
        return "acme"

    queue = CloudTasksQueue(CloudTasksConfig(queue_path=BASE, url=URL), tenant_of=tenant_of)
    assert await queue.queue_for(StepTask("e1", "r1", datetime.now(UTC))) == BASE
    assert asked == []


@pytest.mark.emulator
async def test_each_tenant_is_delivered_from_its_own_shard(tasks_emulator_host: str) -> None:
    project = f"test-{uuid.uuid4().hex[:12]}"
    paths = [await create_queue(tasks_emulator_host, project, q) for q in ("s", "s-1", "s-2")]
    tenants = {f"x-{t}-{i}": t for t in ("acme", "globex", "initech", "umbrella") for i in (1, 2)}
    tenants["x-broken-1"] = "boom"
    asked: list[str] = []

    async def tenant_of(execution_id: str) -> str | None:
        asked.append(execution_id)
        if execution_id == "x-broken-1":
            raise RuntimeError("store unavailable")
        return tenants.get(execution_id)  # x-missing-1: None

    with recording() as recorder:
        config = CloudTasksConfig(
            queue_path=paths[0],
            shard_paths=tuple(paths[1:]),
            url=f"{recorder.url}/tasks/execute-step",
            emulator_host=tasks_emulator_host,
        )
        queue = CloudTasksQueue(config, tenant_of=tenant_of)
        ids = [*tenants, "x-missing-1"]
        try:
            for execution_id in ids:
                for wake in (0, 1):  # a second hop of the same execution: cached tenant
                    run = f"run-{execution_id}"
                    await queue.enqueue(StepTask(execution_id, run, datetime.now(UTC), wake))
        finally:
            await queue.close()
        got = await asyncio.to_thread(recorder.wait_for, 2 * len(ids))
    queue_of: dict[str, set[str]] = {}
    for request in got:
        task = decode_task(request.body)
        queue_of.setdefault(task.execution_id, set()).add(request.headers["x-cloudtasks-queuename"])
    queue_ids = paths  # the emulator sends the full queue name
    for execution_id, tenant in tenants.items():
        if execution_id == "x-broken-1":
            continue
        assert queue_of[execution_id] == {queue_ids[shard_of(tenant, 3)]}, execution_id
    # Unknown or unresolvable tenants: shard 0, and nothing lost.
    assert queue_of["x-missing-1"] == {queue_ids[0]}
    assert queue_of["x-broken-1"] == {queue_ids[0]}
    assert len({queue_of[e].pop() for e in tenants if e != "x-broken-1"}) > 1  # spread
    # Resolved tenants are asked once per execution; unresolved ones every time.
    assert asked.count("x-acme-1") == 1
    assert asked.count("x-missing-1") == 2
