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

Fairness (docs/flow-control.md, "Fairness"): with ``shard_paths``, K queues in all, the
tasks of one tenant all go to queue ``shard_of(tenant, K)`` (``queue_path`` is shard 0),
the tenant being the execution's (``tenant_of``, cached per execution). Each queue has
its own dispatch rate and concurrency, so a tenant flooding its queue delays only the
tenants hashed to the same one. A task whose tenant cannot be resolved goes to shard 0.

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
from shared.adapters._tenant_cache import TenantCache, TenantResolver
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
    "shard_of",
    "shard_queue_ids",
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


def shard_of(tenant: str, shards: int) -> int:
    """The queue shard of ``tenant`` among ``shards``: stable across processes and
    restarts (SHA-256, not Python's salted ``hash``)."""
    if shards <= 1:
        return 0
    return int.from_bytes(hashlib.sha256(tenant.encode()).digest()[:8], "big") % shards


def shard_queue_ids(queue_id: str, shards: int) -> list[str]:
    """``[queue_id, queue_id-1, ..., queue_id-(shards-1)]``: the ids Terraform creates."""
    return [queue_id] + [f"{queue_id}-{index}" for index in range(1, shards)]


def _check_queue_path(path: str) -> None:
    parts = path.split("/")
    if len(parts) != 6 or parts[0::2] != ["projects", "locations", "queues"] or "" in parts:
        raise ValueError(f"not projects/P/locations/L/queues/Q: {path!r}")


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
    shard_paths: tuple[str, ...] = ()
    """Further queues, shards 1..K-1 (``queue_path`` is shard 0); a tenant's tasks all go
    to one shard. Empty: every task goes to ``queue_path``."""

    def __post_init__(self) -> None:
        for path in self.queue_paths:
            _check_queue_path(path)
        if len(set(self.queue_paths)) != len(self.queue_paths):
            raise ValueError("queue shards must be distinct queues")
        if not self.url.startswith(("https://", "http://")):
            raise ValueError(f"url must be an http(s) URL: {self.url!r}")

    @property
    def queue_paths(self) -> tuple[str, ...]:
        """Every shard's queue, shard 0 first."""
        return (self.queue_path, *self.shard_paths)

    @classmethod
    def from_settings(cls, settings: Settings, project: str) -> CloudTasksConfig:
        gcp = settings.gcp
        paths = [
            tasks_v2.CloudTasksClient.queue_path(project, gcp.location, queue_id)
            for queue_id in shard_queue_ids(gcp.tasks_queue, gcp.tasks_queue_shards)
        ]
        return cls(
            queue_path=paths[0],
            shard_paths=tuple(paths[1:]),
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
        tenant_of: TenantResolver | None = None,
        tenant_cache_size: int = 10_000,
    ) -> None:
        """Args:
        interceptors: gRPC client interceptors (the cost benchmark counts calls).
        client_factory: builds the client instead (tests); ``interceptors`` is then unused.
        deadline_for: the dispatch deadline of one task in seconds (None: the config's).
        tenant_of: an execution's tenant, to pick its queue shard (unused with one queue;
            without it every task goes to shard 0).
        tenant_cache_size: execution ids whose tenant is remembered (LRU).
        """
        self.config = config
        self._clock: Clock = clock or SystemClock()
        self._interceptors = list(interceptors)
        self._client_factory = client_factory
        self._deadline_for = deadline_for
        self._client: tasks_v2.CloudTasksAsyncClient | None = None
        self._tenants = (
            TenantCache(tenant_of, size=tenant_cache_size)
            if tenant_of is not None and config.shard_paths
            else None
        )

    async def queue_for(self, task: StepTask) -> str:
        """The queue ``task`` goes to: its tenant's shard, shard 0 if the tenant is unknown."""
        paths = self.config.queue_paths
        if self._tenants is None:
            return paths[0]
        tenant = await self._tenants.tenant_of(task.execution_id)
        return paths[shard_of(tenant, len(paths))] if tenant is not None else paths[0]

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

    def task_name(self, task: StepTask, queue_path: str | None = None) -> str:
        return f"{queue_path or self.config.queue_path}/tasks/{task_id(task)}"

    def build_task(self, task: StepTask, queue_path: str | None = None) -> tasks_v2.Task:
        """The Cloud Tasks task for one step task (what ``enqueue`` sends) in
        ``queue_path`` (default: shard 0).

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
            name=self.task_name(task, queue_path),
            http_request=request,
            schedule_time=schedule_time_for(task.due_at, self._clock.now()),
            dispatch_deadline=timedelta(seconds=deadline),
        )

    async def enqueue(self, task: StepTask) -> None:
        """Create the task in its tenant's queue; a task of that name already existing
        is success."""
        queue_path = await self.queue_for(task)
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
                parent=queue_path,
                task=self.build_task(task, queue_path),
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
