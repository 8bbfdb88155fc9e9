"""LocalTaskQueue: schedule times, ordering, retries, names, duplicates, lifecycle."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest

from shared.adapters.clock import ManualClock, SystemClock
from shared.adapters.local_queue import LocalTaskQueue, backoff_seconds
from shared.ports import Clock, StepTask


def task(
    run_id: str,
    delay: float = 0.0,
    *,
    clock: Clock | None = None,
    wake_seq: int = 0,
) -> StepTask:
    """A task for ``run_id`` due ``delay`` seconds from the clock's now."""
    now = (clock or SystemClock()).now()
    return StepTask("exec-1", run_id, now + timedelta(seconds=delay), wake_seq)


class Recorder:
    """A handler that records (task name, loop time) of every delivery."""

    def __init__(self, fail_first: int = 0, sleep: float = 0.0) -> None:
        self.calls: list[tuple[str, float]] = []
        self.fail_first = fail_first
        self.sleep = sleep
        self.active = 0
        self.max_active = 0

    async def __call__(self, step_task: StepTask) -> None:
        self.calls.append((step_task.name, asyncio.get_running_loop().time()))
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            if self.sleep:
                await asyncio.sleep(self.sleep)
            if len(self.calls) <= self.fail_first:
                raise RuntimeError("boom")
        finally:
            self.active -= 1

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.calls]


def test_backoff_doubles_and_is_capped() -> None:
    assert [backoff_seconds(n, 0.1, 60.0) for n in (1, 2, 3, 4)] == [0.1, 0.2, 0.4, 0.8]
    assert backoff_seconds(10, 0.1, 60.0) == pytest.approx(51.2)
    assert backoff_seconds(11, 0.1, 60.0) == 60.0
    assert backoff_seconds(100_000, 0.1, 60.0) == 60.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"workers": 0},
        {"max_attempts": 0},
        {"min_backoff": 2.0, "max_backoff": 1.0},
        {"duplicate_rate": 1.5},
    ],
)
def test_rejects_invalid_settings(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        LocalTaskQueue(Recorder(), **kwargs)  # type: ignore[arg-type]


async def test_task_is_not_delivered_before_due_time() -> None:
    recorder = Recorder()
    async with LocalTaskQueue(recorder) as queue:
        start = asyncio.get_running_loop().time()
        await queue.enqueue(task("r1", 0.3))
        await asyncio.sleep(0.2)
        assert recorder.calls == []
        assert await queue.join(timeout=2.0)
    ((_, delivered_at),) = recorder.calls
    assert 0.28 <= delivered_at - start < 0.6


async def test_past_due_task_is_delivered_at_once() -> None:
    recorder = Recorder()
    async with LocalTaskQueue(recorder) as queue:
        start = asyncio.get_running_loop().time()
        await queue.enqueue(task("r1", -60))
        assert await queue.join(timeout=1.0)
    assert recorder.calls[0][1] - start < 0.1


async def test_delivers_in_due_time_order() -> None:
    recorder = Recorder()
    queue = LocalTaskQueue(recorder, workers=1)
    for run_id, delay in [("c", 0.15), ("a", -1.0), ("d", 0.2), ("b", 0.05)]:
        await queue.enqueue(task(run_id, delay))
    async with queue:
        assert await queue.join(timeout=2.0)
    assert recorder.names == ["a-0", "b-0", "c-0", "d-0"]


async def test_earlier_task_wakes_a_sleeping_worker() -> None:
    recorder = Recorder()
    async with LocalTaskQueue(recorder, workers=1) as queue:
        await queue.enqueue(task("late", 0.45))
        await asyncio.sleep(0.05)
        enqueued_at = asyncio.get_running_loop().time()
        await queue.enqueue(task("early"))
        assert await queue.join(timeout=2.0)
    assert recorder.names == ["early-0", "late-0"]
    assert recorder.calls[0][1] - enqueued_at < 0.1


async def test_retries_with_growing_backoff_then_acknowledges() -> None:
    recorder = Recorder(fail_first=3)
    async with LocalTaskQueue(recorder, min_backoff=0.05, max_backoff=1.0) as queue:
        await queue.enqueue(task("r1"))
        assert await queue.join(timeout=3.0)
    times = [at for _, at in recorder.calls]
    gaps = [later - earlier for earlier, later in pairwise(times)]
    assert len(gaps) == 3
    for gap, expected in zip(gaps, [0.05, 0.1, 0.2], strict=True):
        assert expected * 0.9 <= gap < expected + 0.1
    assert gaps[0] < gaps[1] < gaps[2]
    assert (queue.stats.delivered, queue.stats.retried, queue.stats.acknowledged) == (4, 3, 1)


async def test_backoff_is_capped_by_max_backoff() -> None:
    recorder = Recorder(fail_first=4)
    async with LocalTaskQueue(recorder, min_backoff=0.04, max_backoff=0.06) as queue:
        await queue.enqueue(task("r1"))
        assert await queue.join(timeout=3.0)
    times = [at for _, at in recorder.calls]
    assert times[-1] - times[-2] == pytest.approx(0.06, abs=0.04)


async def test_drops_after_max_attempts_and_releases_the_name() -> None:
    recorder = Recorder(fail_first=1000)
    async with LocalTaskQueue(recorder, max_attempts=3, min_backoff=0.01) as queue:
        await queue.enqueue(task("r1"))
        assert await queue.join(timeout=2.0)
        assert (queue.stats.delivered, queue.stats.retried, queue.stats.dropped) == (3, 2, 1)
        await queue.enqueue(task("r1"))
        assert queue.stats.enqueued == 2
        assert await queue.join(timeout=2.0)


async def test_same_name_is_ignored_while_pending() -> None:
    recorder = Recorder()
    queue = LocalTaskQueue(recorder)
    await queue.enqueue(task("r1", 0.05))
    await queue.enqueue(task("r1", 0.0))
    await queue.enqueue(task("r1", 0.0, wake_seq=1))
    assert queue.pending_count() == 2
    assert queue.stats.deduplicated == 1
    async with queue:
        assert await queue.join(timeout=2.0)
        assert sorted(recorder.names) == ["r1-0", "r1-1"]
        await queue.enqueue(task("r1"))  # delivered, so the name is free again
        assert await queue.join(timeout=2.0)
    assert sorted(recorder.names) == ["r1-0", "r1-0", "r1-1"]


async def test_same_name_is_ignored_while_in_flight() -> None:
    release = asyncio.Event()
    calls: list[str] = []

    async def blocking(step_task: StepTask) -> None:
        calls.append(step_task.name)
        await release.wait()

    async with LocalTaskQueue(blocking) as queue:
        await queue.enqueue(task("r1"))
        await asyncio.sleep(0.05)
        assert queue.in_flight_count() == 1
        await queue.enqueue(task("r1"))
        assert queue.stats.deduplicated == 1
        release.set()
        assert await queue.join(timeout=1.0)
    assert calls == ["r1-0"]


async def test_duplicate_rate_one_delivers_every_task_twice() -> None:
    recorder = Recorder()
    async with LocalTaskQueue(recorder, duplicate_rate=1.0, seed=7) as queue:
        for index in range(5):
            await queue.enqueue(task(f"r{index}"))
        assert await queue.join(timeout=2.0)
    assert Counter(recorder.names) == {f"r{index}-0": 2 for index in range(5)}
    assert (queue.stats.duplicated, queue.stats.delivered) == (5, 10)


async def _duplicated_names(seed: int) -> set[str]:
    recorder = Recorder()
    async with LocalTaskQueue(recorder, duplicate_rate=0.3, seed=seed, workers=1) as queue:
        for index in range(100):
            await queue.enqueue(task(f"r{index:03d}"))
        assert await queue.join(timeout=5.0)
    return {name for name, count in Counter(recorder.names).items() if count == 2}


async def test_partial_duplicate_rate_is_seeded() -> None:
    first = await _duplicated_names(seed=3)
    assert 5 < len(first) < 60
    assert await _duplicated_names(seed=3) == first


async def test_join_waits_for_in_flight_work_and_times_out() -> None:
    recorder = Recorder(sleep=0.2)
    queue = LocalTaskQueue(recorder)
    assert await queue.join(timeout=0.01)
    await queue.enqueue(task("r1"))
    assert not await queue.join(timeout=0.05)  # not started: it just queues
    async with queue:
        assert not await queue.join(timeout=0.1)
        assert queue.in_flight_count() == 1
        assert await queue.join(timeout=1.0)
        assert recorder.active == 0
        assert len(recorder.calls) == 1


async def test_stop_drops_pending_and_in_flight_tasks() -> None:
    cancelled: list[str] = []

    async def stuck(step_task: StepTask) -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.append(step_task.name)
            raise

    queue = LocalTaskQueue(stuck)
    await queue.start()
    await queue.enqueue(task("now"))
    await queue.enqueue(task("later", 60))
    await asyncio.sleep(0.05)
    await queue.stop()
    assert cancelled == ["now-0"]
    assert (queue.pending_count(), queue.in_flight_count(), queue.next_due()) == (0, 0, None)
    assert queue.stats.discarded == 2
    assert await queue.join(timeout=0.01)
    assert not queue.running


async def test_can_start_again_after_stop() -> None:
    recorder = Recorder()
    queue = LocalTaskQueue(recorder)
    await queue.start()
    await queue.stop()
    async with queue:
        await queue.enqueue(task("r1"))
        assert await queue.join(timeout=1.0)
    assert recorder.names == ["r1-0"]


async def test_concurrency_is_limited_to_workers() -> None:
    recorder = Recorder(sleep=0.05)
    async with LocalTaskQueue(recorder, workers=3) as queue:
        for index in range(10):
            await queue.enqueue(task(f"r{index}"))
        assert await queue.join(timeout=3.0)
    assert len(recorder.calls) == 10
    assert recorder.max_active == 3


async def test_next_due_and_pending_count_before_start() -> None:
    clock = ManualClock(datetime(2030, 1, 1, tzinfo=UTC))
    queue = LocalTaskQueue(Recorder(), clock=clock)
    assert queue.next_due() is None
    await queue.enqueue(task("b", 20, clock=clock))
    await queue.enqueue(task("a", 10, clock=clock))
    assert queue.pending_count() == 2
    assert queue.next_due() == datetime(2030, 1, 1, 0, 0, 10, tzinfo=UTC)


async def test_manual_clock_governs_due_times() -> None:
    clock = ManualClock(datetime(2030, 1, 1, tzinfo=UTC))
    recorder = Recorder()
    async with LocalTaskQueue(recorder, clock=clock) as queue:
        await queue.enqueue(task("r1", 3600, clock=clock))
        await asyncio.sleep(0.2)
        assert recorder.calls == []
        clock.advance(3600)
        moved_at = asyncio.get_running_loop().time()
        queue.wake()
        assert await queue.join(timeout=1.0)
    assert recorder.calls[0][1] - moved_at < 0.1


async def test_naive_due_time_is_taken_as_utc() -> None:
    recorder = Recorder()
    async with LocalTaskQueue(recorder) as queue:
        naive = datetime.now(UTC).replace(tzinfo=None) - timedelta(seconds=1)
        await queue.enqueue(StepTask("exec-1", "r1", naive))
        assert await queue.join(timeout=1.0)
    assert recorder.names == ["r1-0"]


def test_clocks_are_utc_aware() -> None:
    assert SystemClock().now().tzinfo is UTC
    clock = ManualClock(datetime(2030, 1, 1))
    assert clock.now() == datetime(2030, 1, 1, tzinfo=UTC)
    assert clock.advance(1.5) == datetime(2030, 1, 1, 0, 0, 1, 500_000, tzinfo=UTC)
    assert clock.advance(timedelta(minutes=1)).minute == 1
    with pytest.raises(ValueError):
        clock.advance(-1)
    clock.set(datetime(2029, 1, 1, tzinfo=UTC))
    assert clock.now().year == 2029


async def test_a_delivery_wakes_one_idle_worker_not_all() -> None:
    # Every idle worker used to wait on one event that each push set: 16 workers woke
    # for each delivery (and 15 went back to sleep), which was most of the queue's cost
    # for an execution run alone.
    recorder = Recorder()
    queue = LocalTaskQueue(recorder, workers=16)
    looks = [0]
    real = queue._promote

    def counted(now: datetime) -> None:  # each look of a worker at the queue
        looks[0] += 1
        real(now)

    queue._promote = counted  # type: ignore[method-assign]
    async with queue:
        await asyncio.sleep(0)  # every worker is idle
        looks[0] = 0
        for index in range(10):
            await queue.enqueue(task(f"r{index}"))
            assert await queue.join(5)
        assert recorder.names == [f"r{index}-0" for index in range(10)]
        assert looks[0] <= 20, looks  # one worker woken and back per delivery (was 16+)
        assert queue.stats.woken == 10


async def test_a_burst_is_taken_by_many_workers_at_once() -> None:
    # Waking one worker per push must still spread a burst over the idle workers.
    recorder = Recorder(sleep=0.05)
    queue = LocalTaskQueue(recorder, workers=8)
    async with queue:
        await asyncio.sleep(0)
        for index in range(8):
            await queue.enqueue(task(f"r{index}"))
        assert await queue.join(5)
    assert recorder.max_active == 8


async def test_a_worker_woken_for_a_later_delivery_sleeps_until_it_is_due() -> None:
    recorder = Recorder()
    queue = LocalTaskQueue(recorder, workers=4)
    async with queue:
        await asyncio.sleep(0)
        began = asyncio.get_running_loop().time()
        await queue.enqueue(task("later", 0.2))
        await queue.enqueue(task("now"))
        assert await queue.join(5)
    assert recorder.names == ["now-0", "later-0"]
    assert recorder.calls[1][1] - began >= 0.19
