"""One contract for every TaskQueue: the local dispatcher and Cloud Tasks (emulator).

What the engine relies on: a task arrives with its ids, not before its schedule time,
and a failed delivery (an exception locally, a 5xx from execute-step in the cloud) is
delivered again.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shared.adapters.local_queue import LocalTaskQueue
from shared.ports import StepTask
from shared.task_codec import decode_task

RUN = "0123456789abcdef0123456789abcdef"


@dataclass
class Deliveries:
    """What reached the consumer, with arrival times (monotonic)."""

    tasks: list[tuple[float, StepTask]] = field(default_factory=list)

    async def wait_for(self, count: int, timeout: float = 20.0) -> list[tuple[float, StepTask]]:
        deadline = time.monotonic() + timeout
        while len(self.tasks) < count:
            assert time.monotonic() < deadline, f"{len(self.tasks)} of {count} deliveries"
            await asyncio.sleep(0.05)
        return self.tasks[:count]


Harness = tuple[Callable[[StepTask], Awaitable[None]], Deliveries]


@asynccontextmanager
async def _local(fail_first: int) -> AsyncIterator[Harness]:
    seen = Deliveries()
    failures = [fail_first]

    async def handler(task: StepTask) -> None:
        seen.tasks.append((time.monotonic(), task))
        if failures[0] > 0:
            failures[0] -= 1
            raise RuntimeError("a failed delivery, like a 5xx")

    queue = LocalTaskQueue(handler, min_backoff=0.2, max_backoff=1.0)
    await queue.start()
    try:
        yield queue.enqueue, seen
    finally:
        await queue.stop()


@asynccontextmanager
async def _cloud_tasks(fail_first: int, request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    sys.path.insert(0, str(Path(__file__).parents[1] / "cloud"))  # the emulator helpers
    from _recorder import recording
    from test_tasks_emulator import create_queue

    from shared.adapters.cloud_tasks_queue import CloudTasksConfig, CloudTasksQueue

    host = request.getfixturevalue("tasks_emulator_host")
    queue_path = await create_queue(host, f"contract-{uuid.uuid4().hex[:12]}")
    seen = Deliveries()
    with recording(answers=[503] * fail_first) as recorder:
        config = CloudTasksConfig(
            queue_path=queue_path, url=f"{recorder.url}/execute-step", emulator_host=host
        )
        queue = CloudTasksQueue(config)

        async def watch() -> None:
            while True:
                for got in recorder.received[len(seen.tasks) :]:
                    seen.tasks.append((got.at, decode_task(got.body)))
                await asyncio.sleep(0.02)

        watcher = asyncio.create_task(watch())
        try:
            yield queue.enqueue, seen
        finally:
            watcher.cancel()
            await queue.close()


@pytest.fixture(params=["local", pytest.param("cloud_tasks", marks=pytest.mark.emulator)])
def open_queue(request: pytest.FixtureRequest) -> Callable[[int], object]:
    """``open_queue(fail_first)``: an async context giving (enqueue, deliveries)."""
    if request.param == "local":
        return _local
    return lambda fail_first: _cloud_tasks(fail_first, request)


async def test_a_task_arrives_with_its_ids(open_queue: Callable[[int], object]) -> None:
    async with open_queue(0) as (enqueue, seen):  # type: ignore[attr-defined]
        await enqueue(StepTask("exec-1", RUN, datetime.now(UTC), wake_seq=3))
        [(_, got)] = await seen.wait_for(1)
    assert (got.execution_id, got.run_id, got.wake_seq) == ("exec-1", RUN, 3)


async def test_a_task_waits_for_its_schedule_time(open_queue: Callable[[int], object]) -> None:
    async with open_queue(0) as (enqueue, seen):  # type: ignore[attr-defined]
        sent = time.monotonic()
        await enqueue(StepTask("exec-2", RUN, datetime.now(UTC) + timedelta(seconds=2)))
        [(arrived, _)] = await seen.wait_for(1)
    assert arrived - sent >= 1.5


async def test_a_failed_delivery_is_delivered_again(open_queue: Callable[[int], object]) -> None:
    async with open_queue(1) as (enqueue, seen):  # type: ignore[attr-defined]
        await enqueue(StepTask("exec-3", RUN, datetime.now(UTC)))
        first, second = await seen.wait_for(2)
    assert first[1].run_id == second[1].run_id == RUN
