"""The local ``TriggerBackend``: a cron scheduler and event-bus subscriptions in-process.

Schedules fire through the same use case as Cloud Scheduler's HTTP calls
(``fire_schedule``, with the job name and the tick's time), so a tick delivered twice
(two processes on one database, a retry) starts one execution. Subscriptions feed
messages of the in-process bus to ``dispatch_event``, so a ``publish`` step of one
workflow starts the workflows listening on that topic.

Missed ticks are not replayed: a job registered (or a process started) at 10:00:30
fires first at the next tick after that moment, and ticks that fell while the
process was down, or while it was blocked, are skipped except the latest one
(which fires late). This is Cloud Scheduler's behaviour for a paused job, and it
keeps a laptop that wakes up after a night from starting hundreds of executions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from croniter import croniter

from shared.app.service import WorkflowApp
from shared.app.triggers import (
    PubSubEvent,
    ScheduleFire,
    dispatch_event,
    fire_schedule,
    format_time,
    short_topic,
)
from shared.errors import WorkflowError
from shared.ports import (
    Clock,
    EventSpec,
    PublishedMessage,
    ReconcileReport,
    ScheduleSpec,
    TriggerSpec,
)

__all__ = ["LocalCronScheduler", "LocalTriggerBackend", "Subscribable"]

log = logging.getLogger(__name__)

FireFn = Callable[[ScheduleSpec, datetime], Awaitable[object]]
_DELIVERY_ATTEMPTS = 3


class Subscribable(Protocol):
    """The part of the local event bus the backend needs."""

    def subscribe(
        self, topic: str, callback: Callable[[PublishedMessage], Awaitable[None]]
    ) -> Callable[[], None]: ...


def latest_tick(cron: str, timezone: str, now: datetime) -> datetime:
    """The last tick at or before ``now``, in the schedule's time zone (DST-aware)."""
    local = now.astimezone(ZoneInfo(timezone)) + timedelta(microseconds=1)
    tick: datetime = croniter(cron, local).get_prev(datetime)
    return tick


def next_tick(cron: str, timezone: str, now: datetime) -> datetime:
    tick: datetime = croniter(cron, now.astimezone(ZoneInfo(timezone))).get_next(datetime)
    return tick


@dataclass
class _Job:
    spec: ScheduleSpec
    last_tick: datetime
    """The latest tick handled (or skipped because it predates the job)."""


class LocalCronScheduler:
    """Fires each job once per cron tick; ``tick(now)`` is the whole algorithm."""

    def __init__(self, fire: FireFn, clock: Clock, *, max_sleep: float = 10.0) -> None:
        self._fire = fire
        self._clock = clock
        self._max_sleep = max_sleep
        self._jobs: dict[str, _Job] = {}
        self._changed = asyncio.Event()
        self._loop: asyncio.Task[None] | None = None

    @property
    def jobs(self) -> dict[str, ScheduleSpec]:
        return {name: job.spec for name, job in self._jobs.items()}

    def upsert(self, spec: ScheduleSpec) -> None:
        """Add or replace a job; a new or changed schedule starts from now (no replay)."""
        current = self._jobs.get(spec.job_name)
        if current is not None and (current.spec.cron, current.spec.timezone) == (
            spec.cron,
            spec.timezone,
        ):
            current.spec = spec
            return
        now = self._clock.now()
        self._jobs[spec.job_name] = _Job(spec, latest_tick(spec.cron, spec.timezone, now))
        self._changed.set()

    def remove(self, job_name: str) -> None:
        self._jobs.pop(job_name, None)

    def clear(self) -> None:
        self._jobs.clear()

    async def tick(self, now: datetime | None = None) -> list[tuple[str, datetime]]:
        """Fire every job whose latest tick at ``now`` was not handled yet."""
        now = now or self._clock.now()
        fired: list[tuple[str, datetime]] = []
        for name, job in list(self._jobs.items()):
            due = latest_tick(job.spec.cron, job.spec.timezone, now)
            if due <= job.last_tick:
                continue
            try:
                await self._fire(job.spec, due)
            except WorkflowError as exc:
                if exc.retryable:  # same tick again next time: its execution id is stable
                    log.warning("schedule %s tick %s failed, will retry: %s", name, due, exc)
                    continue
                log.error("schedule %s tick %s failed: %s", name, due, exc)
            except Exception:
                log.exception("schedule %s tick %s failed", name, due)
            else:
                fired.append((name, due))
            job.last_tick = due
        return fired

    def seconds_to_next(self, now: datetime) -> float:
        """How long the loop may sleep: until the next tick of any job, capped."""
        delays = [
            (next_tick(job.spec.cron, job.spec.timezone, now) - now).total_seconds()
            for job in self._jobs.values()
        ]
        return max(0.05, min([self._max_sleep, *delays]))

    async def start(self) -> None:
        if self._loop is None:
            self._changed = asyncio.Event()
            self._loop = asyncio.create_task(self._run(), name="local-cron")

    async def stop(self) -> None:
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
            self._loop = None

    async def _run(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:  # a bug must not stop every schedule of the process
                log.exception("local cron pass failed")
            self._changed.clear()
            delay = self.seconds_to_next(self._clock.now())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), delay)


class LocalTriggerBackend:
    """Local cron jobs for schedule specs, bus subscriptions for event specs."""

    def __init__(
        self, app: WorkflowApp, bus: Subscribable, clock: Clock, *, max_sleep: float = 10.0
    ) -> None:
        self._app = app
        self._bus = bus
        self._clock = clock
        self.scheduler = LocalCronScheduler(self._fire, clock, max_sleep=max_sleep)
        self._specs: dict[str, TriggerSpec] = {}
        self._subscriptions: dict[tuple[str, str], Callable[[], None]] = {}

    @property
    def specs(self) -> dict[str, TriggerSpec]:
        return dict(self._specs)

    @property
    def subscriptions(self) -> list[tuple[str, str]]:
        """(tenant, topic) pairs subscribed on the bus."""
        return sorted(self._subscriptions)

    async def reconcile(
        self, desired: Sequence[TriggerSpec], *, workflow_ids: Collection[str] | None = None
    ) -> ReconcileReport:
        def in_scope(spec: TriggerSpec) -> bool:
            return workflow_ids is None or spec.workflow_id in workflow_ids

        wanted = {spec.key: spec for spec in desired if in_scope(spec)}
        current = {key: spec for key, spec in self._specs.items() if in_scope(spec)}
        added = [key for key in wanted if key not in current]
        updated = [key for key in wanted if key in current and current[key] != wanted[key]]
        removed = [key for key in current if key not in wanted]
        for key in removed:
            spec = self._specs.pop(key)
            if isinstance(spec, ScheduleSpec):
                self.scheduler.remove(spec.job_name)
        for key in (*added, *updated):
            spec = self._specs[key] = wanted[key]
            if isinstance(spec, ScheduleSpec):
                self.scheduler.upsert(spec)
        self._sync_subscriptions()
        return ReconcileReport(
            tuple(added), tuple(updated), tuple(removed), len(wanted) - len(added) - len(updated)
        )

    def _sync_subscriptions(self) -> None:
        needed = {
            (spec.tenant, short_topic(spec.topic))
            for spec in self._specs.values()
            if isinstance(spec, EventSpec)
        }
        for pair in set(self._subscriptions) - needed:
            self._subscriptions.pop(pair)()
        for tenant, topic in needed - set(self._subscriptions):
            self._subscriptions[(tenant, topic)] = self._bus.subscribe(
                topic, self._subscriber(tenant)
            )

    def _subscriber(self, tenant: str) -> Callable[[PublishedMessage], Awaitable[None]]:
        async def deliver(message: PublishedMessage) -> None:
            await self._on_message(tenant, message)

        return deliver

    async def _on_message(self, tenant: str, message: PublishedMessage) -> None:
        event = PubSubEvent(
            topic=message.topic,
            message_id=message.message_id,
            data=message.data,
            attributes=dict(message.attributes),
            publish_time=format_time(self._clock.now()),
        )
        app = self._app.for_tenant(tenant)
        for attempt in range(1, _DELIVERY_ATTEMPTS + 1):
            try:
                await dispatch_event(app, event)
                return
            except WorkflowError as exc:  # the bus does not redeliver: retry here
                if not exc.retryable or attempt == _DELIVERY_ATTEMPTS:
                    raise
                await asyncio.sleep(0.1 * 2**attempt)

    async def _fire(self, spec: ScheduleSpec, tick: datetime) -> None:
        fire = ScheduleFire(spec.workflow_id, spec.job_name, tick)
        await fire_schedule(self._app.for_tenant(spec.tenant), fire)

    async def start(self) -> None:
        await self.scheduler.start()

    async def stop(self) -> None:
        await self.scheduler.stop()
        for unsubscribe in self._subscriptions.values():
            unsubscribe()
        self._subscriptions.clear()
        self._specs.clear()  # a later start() begins with a full reconcile
        self.scheduler.clear()
