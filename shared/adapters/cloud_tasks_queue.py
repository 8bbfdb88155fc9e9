"""The ``TaskQueue`` of the cloud: one Cloud Tasks HTTP task per hop to execute-step.

Each task POSTs ``encode_task(task)`` (ids and the trace context) to the execute-step
URL with an OIDC token of the configured service account, so the function can require
a Google-signed token with the expected audience, and a ``traceparent`` header.

Names: ``{queue}/tasks/{hash}-{runId}-{wakeSeq}``. The name is deterministic (one task
per step run and wake-up), so enqueueing the same task twice is refused by Cloud Tasks
with ALREADY_EXISTS, which is success here: the task the first call created is the
one that will be delivered. The leading hash spreads names over Cloud Tasks' key space
(sequential or common prefixes make task creation slower). Cloud Tasks remembers a
name for about an hour after its task finished, so a *new* delivery of the same run
needs a new ``wake_seq``.

Times: the schedule time is the run's due time, capped at 30 days ahead (Cloud Tasks'
limit). A run delivered before it is due is re-enqueued by the engine with the next
``wake_seq``, which is how waits longer than 30 days hop. The dispatch deadline is how
long Cloud Tasks waits for execute-step's answer (15 s to 30 min).

Errors: UNAVAILABLE is retried briefly in the call; what still fails with
UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, ABORTED or INTERNAL is raised as
``TransientError``, anything else as a non-retryable ``WorkflowError``
(``TASK_QUEUE_ERROR``). Nothing connects until the first ``enqueue``.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from google.api_core import exceptions as gexc
from google.api_core import retry_async
from google.cloud import tasks_v2
from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcAsyncIOTransport
from grpc import aio

from shared.adapters._gapic import async_client, translate
from shared.adapters.clock import SystemClock, as_utc
from shared.observability import TRACEPARENT, current_traceparent
from shared.ports import Clock, StepTask
from shared.task_codec import encode_task

if TYPE_CHECKING:
    from shared.settings import Settings

__all__ = [
    "MAX_SCHEDULE_AHEAD",
    "CloudTasksConfig",
    "CloudTasksQueue",
    "clamp_deadline",
    "schedule_time_for",
    "task_id",
]

log = logging.getLogger(__name__)

MAX_SCHEDULE_AHEAD = timedelta(days=30) - timedelta(minutes=1)
"""Cloud Tasks refuses schedule times more than 30 days after *its* clock; the minute
covers a local clock running ahead. A run due later arrives early and is re-enqueued."""
MIN_DEADLINE = 15.0
MAX_DEADLINE = 1800.0
MAX_ID = 500
"""Cloud Tasks task ids: ``[A-Za-z0-9_-]{1,500}``."""
_PREFIX = 8
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")

DeadlineFor = Callable[[StepTask], float | None]


def task_id(task: StepTask) -> str:
    """``{hash}-{runId}-{wakeSeq}[-{tag}]``: deterministic, spread, at most 500 safe
    characters.

    The hash is over the unsanitised name, so two run ids that differ only in
    characters replaced by ``_`` (or beyond the cut) still get different ids.
    """
    prefix = hashlib.sha256(task.name.encode()).hexdigest()[:_PREFIX]
    suffix = f"-{task.wake_seq}" + (f"-{_UNSAFE.sub('_', task.tag)}" if task.tag else "")
    room = MAX_ID - len(prefix) - 1 - len(suffix)
    return f"{prefix}-{_UNSAFE.sub('_', task.run_id)[:room]}{suffix}"


def schedule_time_for(due_at: datetime, now: datetime) -> datetime:
    """The task's schedule time: ``due_at``, but no later than Cloud Tasks accepts."""
    return min(as_utc(due_at), as_utc(now) + MAX_SCHEDULE_AHEAD)


def clamp_deadline(seconds: float) -> float:
    """A dispatch deadline Cloud Tasks accepts (15 s to 30 min)."""
    return min(MAX_DEADLINE, max(MIN_DEADLINE, seconds))


@dataclass(frozen=True)
class CloudTasksConfig:
    """Where tasks go and how Cloud Tasks delivers them."""

    queue_path: str
    """``projects/P/locations/L/queues/Q``."""
    url: str
    """The execute-step URL every task POSTs to."""
    service_account: str = ""
    """Email of the account whose OIDC token is sent; empty sends none (emulator)."""
    audience: str = ""
    """The token's audience; empty means ``url``."""
    dispatch_deadline_seconds: float = 600.0
    emulator_host: str = ""
    """``host:port`` of an emulator or fake (plain text, no credentials)."""
    emulator_token: Callable[[], str] | None = None
    """With ``emulator_host``: mints the ID token the emulator cannot (the dev key's), sent
    as ``Authorization: Bearer``; real Cloud Tasks sends ``service_account``'s itself."""
    rpc_timeout_seconds: float = 10.0
    """Timeout of one CreateTask call."""
    retry_seconds: float = 5.0
    """How long UNAVAILABLE answers are retried within one ``enqueue`` (0: never)."""

    def __post_init__(self) -> None:
        parts = self.queue_path.split("/")
        if len(parts) != 6 or parts[0::2] != ["projects", "locations", "queues"] or "" in parts:
            raise ValueError(f"not projects/P/locations/L/queues/Q: {self.queue_path!r}")
        if not self.url.startswith(("https://", "http://")):
            raise ValueError(f"url must be an http(s) URL: {self.url!r}")

    @classmethod
    def from_settings(cls, settings: Settings, project: str) -> CloudTasksConfig:
        return cls(
            queue_path=tasks_v2.CloudTasksClient.queue_path(
                project, settings.gcp.location, settings.gcp.tasks_queue
            ),
            url=settings.gcp.execute_step_url,
            service_account=settings.gcp.tasks_service_account,
            audience=settings.gcp.tasks_audience,
            dispatch_deadline_seconds=settings.gcp.dispatch_deadline_seconds,
            emulator_host=settings.gcp.tasks_emulator_host,
        )


class CloudTasksQueue:
    """``TaskQueue`` on a Cloud Tasks queue (the async client, built on first use)."""

    def __init__(
        self,
        config: CloudTasksConfig,
        *,
        clock: Clock | None = None,
        interceptors: Sequence[aio.ClientInterceptor] = (),
        client_factory: Callable[[], tasks_v2.CloudTasksAsyncClient] | None = None,
        deadline_for: DeadlineFor | None = None,
    ) -> None:
        """Args:
        interceptors: gRPC client interceptors (the cost benchmark counts calls).
        client_factory: builds the client instead (tests); ``interceptors`` is then unused.
        deadline_for: the dispatch deadline of one task in seconds (None: the config's).
        """
        self.config = config
        self._clock: Clock = clock or SystemClock()
        self._interceptors = list(interceptors)
        self._client_factory = client_factory
        self._deadline_for = deadline_for
        self._client: tasks_v2.CloudTasksAsyncClient | None = None

    def _get_client(self) -> tasks_v2.CloudTasksAsyncClient:
        if self._client is None:
            if self._client_factory is not None:
                self._client = self._client_factory()
            else:
                self._client = async_client(
                    tasks_v2.CloudTasksAsyncClient,
                    CloudTasksGrpcAsyncIOTransport,
                    endpoint=self.config.emulator_host,
                    interceptors=self._interceptors,
                )
        return self._client

    def task_name(self, task: StepTask) -> str:
        return f"{self.config.queue_path}/tasks/{task_id(task)}"

    def build_task(self, task: StepTask) -> tasks_v2.Task:
        """The Cloud Tasks task for one step task (what ``enqueue`` sends).

        The trace context (the task's own, else the current span's) goes in the body and
        in a ``traceparent`` header, so execute-step continues the enqueuer's trace.
        """
        config = self.config
        if task.trace is None:
            task = replace(task, trace=current_traceparent())
        headers = {"Content-Type": "application/json"}
        if task.trace:
            headers[TRACEPARENT] = task.trace
        request = tasks_v2.HttpRequest(
            url=config.url,
            http_method=tasks_v2.HttpMethod.POST,
            headers=headers,
            body=encode_task(task),
        )
        if config.emulator_host and config.emulator_token is not None:
            request.headers["Authorization"] = f"Bearer {config.emulator_token()}"
        elif config.service_account:
            request.oidc_token = tasks_v2.OidcToken(
                service_account_email=config.service_account,
                audience=config.audience or config.url,
            )
        seconds = self._deadline_for(task) if self._deadline_for else None
        deadline = clamp_deadline(seconds or config.dispatch_deadline_seconds)
        return tasks_v2.Task(
            name=self.task_name(task),
            http_request=request,
            schedule_time=schedule_time_for(task.due_at, self._clock.now()),
            dispatch_deadline=timedelta(seconds=deadline),
        )

    async def enqueue(self, task: StepTask) -> None:
        """Create the task; a task of that name already existing is success."""
        client = self._get_client()
        retry = None
        if self.config.retry_seconds > 0:
            retry = retry_async.AsyncRetry(
                predicate=retry_async.if_exception_type(gexc.ServiceUnavailable),
                initial=0.1,
                maximum=1.0,
                multiplier=2.0,
                timeout=self.config.retry_seconds,
            )
        try:
            await client.create_task(
                parent=self.config.queue_path,
                task=self.build_task(task),
                retry=retry,
                timeout=self.config.rpc_timeout_seconds,
            )
        except gexc.AlreadyExists:
            log.debug("task %s exists already: enqueue is a no-op", task.name)
        except gexc.GoogleAPICallError as exc:
            what = f"Cloud Tasks CreateTask {task.name}"
            raise translate(exc, what, "TASK_QUEUE_ERROR") from exc

    async def close(self) -> None:
        """Close the client's channel (a later ``enqueue`` opens a new one)."""
        client, self._client = self._client, None
        if client is not None:
            await client.transport.close()  # type: ignore[no-untyped-call]
