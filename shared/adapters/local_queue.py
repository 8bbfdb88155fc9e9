"""An in-process task dispatcher that behaves like Cloud Tasks, for local mode and tests.

What it shares with Cloud Tasks: a task is never delivered before its schedule time
(``StepTask.due_at``); a handler that raises is a failed delivery (like a 5xx) retried
with exponential backoff up to ``max_attempts``; a second task with the same name is
refused while the first is pending; delivery is at least once, and ``duplicate_rate``
injects extra deliveries so consumers must be idempotent; a delivery runs in the
trace context its task carries (``StepTask.trace``), as a Cloud Task's request does.

What it does not: Cloud Tasks remembers a task name for about an hour after the task
finished or was deleted; this queue forgets it as soon as the task is acknowledged or
dropped, so the same name can be enqueued again right away. Nothing is persisted:
``stop()`` drops pending tasks, because the store is the source of truth and the
engine's sweeper re-enqueues step runs that were left scheduled.

Times are compared against the injected clock's ``now()`` while the waiting itself is
real (``asyncio`` sleeps). With a ``ManualClock``, a worker re-reads the clock at least
every ``_MAX_SLEEP`` seconds; call ``wake()`` after moving the clock to react at once.

Fairness (docs/flow-control.md, "Fairness"): a task not yet due waits in one timer heap;
once due it moves to its tenant's own ready heap (due-time order), and workers take
from the tenants' ready heaps in turn (round robin, one delivery per turn), so a tenant
with 10,000 due tasks gets the same share of the workers as a tenant with one. The
tenant comes from ``tenant_of(execution_id)`` (the store's execution, cached in a
bounded LRU), resolved once at ``enqueue``; an execution it cannot resolve (missing,
resolver failing or slow) goes to a default bucket, it is never lost. ``fair=False``
puts every task in one bucket: plain due-time order, FIFO across tenants.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import random
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from shared.adapters._tenant_cache import TenantCache, TenantResolver
from shared.adapters.clock import SystemClock, as_utc
from shared.errors import WorkflowError
from shared.observability import attached, current_traceparent, traceparent_context
from shared.ports import Clock, StepTask
from shared.ports.fairness import working_for

__all__ = [
    "DEFAULT_BUCKET",
    "LocalTaskQueue",
    "QueueStats",
    "TaskHandler",
    "TenantResolver",
    "backoff_seconds",
]

logger = logging.getLogger(__name__)

TaskHandler = Callable[[StepTask], Awaitable[None]]

DEFAULT_BUCKET = ""
"""The fairness bucket of tasks whose tenant is unknown (or of every task when not fair)."""

_RESOLVE_TIMEOUT = 5.0
"""Longest ``enqueue`` waits for the tenant resolver before using the default bucket."""

_MAX_SLEEP = 0.5
"""Longest a worker sleeps before re-reading the clock (seconds of real time)."""


def _retry_after(exc: Exception) -> float | None:
    """The wait a retryable refusal asks for (``details.retryAfterSeconds``), if any."""
    if isinstance(exc, WorkflowError) and exc.retryable:
        wait = exc.details.get("retryAfterSeconds")
        if isinstance(wait, int | float) and not isinstance(wait, bool) and wait >= 0:
            return float(min(wait, 3600.0))
    return None


def backoff_seconds(failures: int, min_backoff: float, max_backoff: float) -> float:
    """Delay before the next attempt after ``failures`` (>= 1) failed deliveries."""
    exponent = min(max(failures - 1, 0), 64)
    return float(min(max_backoff, min_backoff * 2**exponent))


@dataclass
class QueueStats:
    """Counters of what the queue did since it was created."""

    enqueued: int = 0
    """Tasks accepted by ``enqueue``."""
    deduplicated: int = 0
    """Enqueues ignored because a task with the same name was pending or in flight."""
    delivered: int = 0
    """Handler calls, retries and injected duplicates included."""
    acknowledged: int = 0
    """Handler calls that returned normally."""
    retried: int = 0
    """Failed deliveries rescheduled with backoff."""
    duplicated: int = 0
    """Extra deliveries injected by ``duplicate_rate``."""
    dropped: int = 0
    """Tasks given up after ``max_attempts`` failed deliveries."""
    deferred: int = 0
    """Deliveries refused with a ``Retry-After`` (a tenant's step throughput), put back
    at that time without counting as a failed attempt."""
    discarded: int = 0
    """Tasks pending or in flight when ``stop()`` was called."""
    unresolved: int = 0
    """Enqueues whose tenant could not be resolved (put in the default bucket)."""
    woken: int = 0
    """Idle workers woken to take a delivery (one per delivery pushed while workers are
    idle, not every idle worker)."""


@dataclass
class _Entry:
    """One pending delivery."""

    task: StepTask
    failures: int = 0
    duplicate: bool = False
    bucket: str = DEFAULT_BUCKET
    """The fairness bucket (tenant) the task is dispatched in."""


_Item = tuple[datetime, int, _Entry]


class LocalTaskQueue:
    """A ``TaskQueue`` that dispatches to an async handler in this process."""

    def __init__(
        self,
        handler: TaskHandler,
        *,
        clock: Clock | None = None,
        workers: int = 8,
        max_attempts: int = 100,
        min_backoff: float = 0.1,
        max_backoff: float = 60.0,
        duplicate_rate: float = 0.0,
        seed: int | None = None,
        tenant_of: TenantResolver | None = None,
        fair: bool = True,
        tenant_cache_size: int = 10_000,
    ) -> None:
        """Args:
        tenant_of: resolves a task's tenant from its execution id (None: one bucket).
        fair: round robin across tenants among due tasks; False is due-time order only.
        tenant_cache_size: execution ids whose tenant is remembered (LRU).
        """
        if workers < 1:
            raise ValueError("workers must be at least 1")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if not 0 <= min_backoff <= max_backoff:
            raise ValueError("backoff must satisfy 0 <= min_backoff <= max_backoff")
        if not 0.0 <= duplicate_rate <= 1.0:
            raise ValueError("duplicate_rate must be between 0 and 1")
        if tenant_cache_size < 1:
            raise ValueError("tenant_cache_size must be at least 1")
        self._handler = handler
        self._clock: Clock = clock or SystemClock()
        self._worker_count = workers
        self._max_attempts = max_attempts
        self._min_backoff = min_backoff
        self._max_backoff = max_backoff
        self._duplicate_rate = duplicate_rate
        self._rng = random.Random(seed)
        self._tenants = (
            TenantCache(tenant_of, size=tenant_cache_size, timeout=_RESOLVE_TIMEOUT)
            if tenant_of is not None and fair
            else None
        )
        self._heap: list[_Item] = []
        """Deliveries not yet seen due (the timer heap)."""
        self._ready: dict[str, list[_Item]] = {}
        """Due deliveries per bucket, each a heap in due-time order."""
        self._turns: deque[str] = deque()
        """Buckets with due deliveries, in the order they get a worker next."""
        self._ready_count = 0
        self._seq = itertools.count()
        self._names: set[str] = set()
        self._in_flight = 0
        self._workers: list[asyncio.Task[None]] = []
        self._sleepers: deque[asyncio.Future[None]] = deque()
        """Idle workers, each waiting on its own future: a new delivery wakes one of
        them, not all (every idle worker woken per enqueue cost a wake-up each)."""
        self._idle = asyncio.Event()
        self._idle.set()
        self.stats = QueueStats()

    async def enqueue(self, task: StepTask) -> None:
        """Deliver ``task`` at or after ``task.due_at``; ignored if its name is pending.

        A task without a trace context gets the current one: its delivery continues
        the enqueuer's trace, as a Cloud Task's does.
        """
        if self._deduplicated(task):
            return
        bucket = await self._bucket_of(task)
        if self._deduplicated(task):  # enqueued by someone else while resolving
            return
        if task.trace is None:
            trace = current_traceparent()
            if trace is not None:
                task = replace(task, trace=trace)
        self._names.add(task.name)
        self.stats.enqueued += 1
        self._push(as_utc(task.due_at), _Entry(task, bucket=bucket))

    def _deduplicated(self, task: StepTask) -> bool:
        if task.name not in self._names:
            return False
        self.stats.deduplicated += 1
        logger.debug("task %s already pending; enqueue ignored", task.name)
        return True

    async def _bucket_of(self, task: StepTask) -> str:
        """The execution's tenant (the task's in-process hint, else cached), or the
        default bucket if it cannot be told."""
        if self._tenants is None:
            return DEFAULT_BUCKET
        if task.tenant:
            return task.tenant
        tenant = await self._tenants.tenant_of(task.execution_id)
        if tenant is None:
            self.stats.unresolved += 1
            return DEFAULT_BUCKET
        return tenant

    async def start(self) -> None:
        """Spawn the workers in the running loop; a no-op if already started."""
        if self._workers:
            return
        self._workers = [
            asyncio.create_task(self._work(), name=f"local-task-queue-{i}")
            for i in range(self._worker_count)
        ]

    async def stop(self) -> None:
        """Cancel the workers and drop every pending or in-flight task."""
        workers, self._workers = self._workers, []
        discarded = self.pending_count() + self._in_flight
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        self.stats.discarded += discarded
        self._heap.clear()
        self._ready.clear()
        self._turns.clear()
        self._ready_count = 0
        self._names.clear()
        self._in_flight = 0
        self._sleepers.clear()
        self._update_idle()

    async def join(self, timeout: float | None = None) -> bool:
        """Wait until nothing is pending or in flight; False if ``timeout`` ran out first."""
        try:
            async with asyncio.timeout(timeout):
                while self._outstanding():
                    await self._idle.wait()
        except TimeoutError:
            return False
        return True

    def wake(self) -> None:
        """Make sleeping workers re-read the clock (call after moving a ManualClock)."""
        while self._sleepers:
            sleeper = self._sleepers.popleft()
            if not sleeper.done():
                sleeper.set_result(None)

    def _wake_one(self) -> None:
        """Wake one idle worker, if any: it takes the delivery, or sleeps until it is due."""
        while self._sleepers:
            sleeper = self._sleepers.popleft()
            if not sleeper.done():
                sleeper.set_result(None)
                self.stats.woken += 1
                return

    @property
    def running(self) -> bool:
        """Whether the workers are started."""
        return bool(self._workers)

    def pending_count(self) -> int:
        """Deliveries waiting in the queue (scheduled retries and duplicates included)."""
        return len(self._heap) + self._ready_count

    def pending_by_bucket(self) -> dict[str, int]:
        """Deliveries waiting per fairness bucket (tenant; ``""`` is the default one)."""
        counts = {bucket: len(items) for bucket, items in self._ready.items()}
        for _, _, entry in self._heap:
            counts[entry.bucket] = counts.get(entry.bucket, 0) + 1
        return counts

    def in_flight_count(self) -> int:
        """Deliveries whose handler is running now."""
        return self._in_flight

    def next_due(self) -> datetime | None:
        """The earliest due time among pending deliveries, or None if there are none."""
        heads = [items[0][0] for items in self._ready.values()]
        if self._heap:
            heads.append(self._heap[0][0])
        return min(heads, default=None)

    async def __aenter__(self) -> LocalTaskQueue:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def _push(self, due_at: datetime, entry: _Entry) -> None:
        heapq.heappush(self._heap, (due_at, next(self._seq), entry))
        self._idle.clear()
        self._wake_one()

    def _outstanding(self) -> int:
        return self.pending_count() + self._in_flight

    def _promote(self, now: datetime) -> None:
        """Move the deliveries due by ``now`` from the timer heap to their buckets."""
        while self._heap and self._heap[0][0] <= now:
            item = heapq.heappop(self._heap)
            bucket = item[2].bucket
            items = self._ready.get(bucket)
            if items is None:
                items = self._ready[bucket] = []
                self._turns.append(bucket)
            heapq.heappush(items, item)
            self._ready_count += 1

    def _pop_ready(self) -> _Entry:
        """The earliest due delivery of the bucket whose turn it is."""
        bucket = self._turns.popleft()
        items = self._ready[bucket]
        _, _, entry = heapq.heappop(items)
        if items:
            self._turns.append(bucket)
        else:
            del self._ready[bucket]
        self._ready_count -= 1
        return entry

    def _update_idle(self) -> None:
        if self._outstanding() == 0:
            self._idle.set()

    async def _work(self) -> None:
        while True:
            entry = await self._take()
            try:
                await self._deliver(entry)
            finally:
                self._in_flight -= 1
                self._update_idle()

    async def _take(self) -> _Entry:
        """Wait for a due delivery and claim it, taking the buckets in turn."""
        while True:
            # Checking and joining the sleepers happen without an await in between: a
            # delivery pushed after the check wakes this worker (no lost wake-ups).
            now = self._clock.now()
            self._promote(now)
            if self._turns:
                entry = self._pop_ready()
                self._in_flight += 1
                if self._turns:
                    self._wake_one()  # more are due: another idle worker takes the next
                return entry
            timeout: float | None = None
            if self._heap:
                delay = (self._heap[0][0] - now).total_seconds()
                timeout = min(delay, _MAX_SLEEP)
            sleeper: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._sleepers.append(sleeper)
            try:
                async with asyncio.timeout(timeout):
                    await sleeper
            except TimeoutError:
                pass
            finally:
                if not sleeper.done():  # timed out or cancelled: leave the sleepers
                    sleeper.cancel()
                    with contextlib.suppress(ValueError):
                        self._sleepers.remove(sleeper)

    async def _deliver(self, entry: _Entry) -> None:
        """Call the handler once and record the outcome."""
        self.stats.delivered += 1
        if (
            not entry.duplicate
            and self._duplicate_rate > 0
            and self._rng.random() < self._duplicate_rate
        ):
            self.stats.duplicated += 1
            extra = _Entry(entry.task, entry.failures, duplicate=True, bucket=entry.bucket)
            self._push(self._clock.now(), extra)
        try:
            with attached(traceparent_context(entry.task.trace)), working_for(entry.bucket or None):
                await self._handler(entry.task)
        except Exception as exc:
            self._on_failure(entry, exc)
            return
        self.stats.acknowledged += 1
        if not entry.duplicate:
            self._names.discard(entry.task.name)

    def _on_failure(self, entry: _Entry, exc: Exception) -> None:
        """Reschedule a failed delivery with backoff, or drop it when out of attempts."""
        name = entry.task.name
        if entry.duplicate:
            # The original delivery owns the retries; a failed extra copy is just noise.
            logger.warning("duplicate delivery of task %s failed: %r", name, exc)
            return
        wait = _retry_after(exc)
        if wait is not None:
            # Refused for now (a quota with Retry-After), not failed: Cloud Tasks would
            # retry on the 429; here the task waits that long and keeps its attempts.
            self.stats.deferred += 1
            due_at = self._clock.now() + timedelta(seconds=wait)
            self._push(due_at, _Entry(entry.task, entry.failures, bucket=entry.bucket))
            return
        failures = entry.failures + 1
        if failures >= self._max_attempts:
            self.stats.dropped += 1
            self._names.discard(name)
            logger.error("task %s dropped after %d failed attempts", name, failures, exc_info=exc)
            return
        delay = backoff_seconds(failures, self._min_backoff, self._max_backoff)
        self.stats.retried += 1
        logger.warning(
            "task %s failed (attempt %d/%d), retrying in %.3fs: %r",
            name,
            failures,
            self._max_attempts,
            delay,
            exc,
        )
        due_at = self._clock.now() + timedelta(seconds=delay)
        self._push(due_at, _Entry(entry.task, failures, bucket=entry.bucket))
