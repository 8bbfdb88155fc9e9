"""The cloud ``TriggerBackend``: schedule triggers as Cloud Scheduler jobs.

Each active workflow with a schedule trigger has a job ``{parent}/jobs/wfe-{id}`` that
POSTs to the trigger-handler at ``ScheduleSpec.target_path`` with an OIDC token (a
tenant other than the default one bound by ``&binding=<HMAC>``, which the
trigger-handler verifies: ``shared.ports.tenant_binding``); the
trigger-handler starts one execution per (workflow, job, tick), so Scheduler's retries
are safe. For the jobs of the ``wfe-`` prefix (the deployment owns it in its project
and location), reconciling **creates** missing jobs, **updates** differing ones (a
field mask of what differs) and **resumes** stopped ones; a job no longer desired is
**paused** when ``keep_paused`` says its workflow still exists, inactive, with a
schedule (resumed on activation, missed ticks not replayed), and **deleted** otherwise.
A second pass makes no mutating call. A failing job is logged, the others are still
reconciled, and the first error is raised at the end.

Event triggers are not reconciled here: in the cloud, Pub/Sub push subscriptions to
the trigger-handler are Terraform's, and ``EventSpec`` entries are ignored.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

from google.api_core import exceptions as gexc
from google.cloud import scheduler_v1
from google.cloud.scheduler_v1.services.cloud_scheduler.transports import (
    CloudSchedulerGrpcAsyncIOTransport,
)
from google.protobuf import field_mask_pb2
from grpc import aio

from shared.adapters._gapic import async_client, translate
from shared.ports import DEFAULT_TENANT, JOB_PREFIX, ReconcileReport, ScheduleSpec, TriggerSpec
from shared.ports.tenant_binding import bind_path

__all__ = ["CloudSchedulerBackend", "JobPolicy", "KeepPaused", "SchedulerConfig"]

log = logging.getLogger(__name__)

KeepPaused = Callable[[str, str], Awaitable[bool]]
"""(workflow id, tenant) -> whether an undesired job is kept paused rather than deleted."""

Job = scheduler_v1.Job
State = scheduler_v1.Job.State


@dataclass(frozen=True)
class JobPolicy:
    """How Cloud Scheduler calls the trigger-handler and retries a failed call."""

    attempt_deadline_seconds: float = 60.0
    """Wait for an answer this long (Cloud Scheduler: 15 s to 30 min for HTTP)."""
    retry_count: int = 3
    """Retries of a failed tick (0 to 5); the tick's execution id makes them safe."""
    min_backoff_seconds: float = 5.0
    max_backoff_seconds: float = 300.0
    max_doublings: int = 5
    max_retry_seconds: float = 0.0
    """Give up retrying a tick after this long (0: only ``retry_count`` limits it)."""

    def __post_init__(self) -> None:
        if not 15.0 <= self.attempt_deadline_seconds <= 1800.0:
            raise ValueError("attempt_deadline_seconds must be within 15..1800")
        if not 0 <= self.retry_count <= 5:
            raise ValueError("retry_count must be within 0..5")
        if not 0 <= self.min_backoff_seconds <= self.max_backoff_seconds:
            raise ValueError("backoff must satisfy 0 <= min <= max")
        if self.max_doublings < 0 or self.max_retry_seconds < 0:
            raise ValueError("max_doublings and max_retry_seconds must be >= 0")

    def retry_config(self) -> scheduler_v1.RetryConfig:
        return scheduler_v1.RetryConfig(
            retry_count=self.retry_count,
            max_retry_duration=timedelta(seconds=self.max_retry_seconds),
            min_backoff_duration=timedelta(seconds=self.min_backoff_seconds),
            max_backoff_duration=timedelta(seconds=self.max_backoff_seconds),
            max_doublings=self.max_doublings,
        )


@dataclass(frozen=True)
class SchedulerConfig:
    """Where the jobs live and whom they call."""

    parent: str
    """``projects/P/locations/L``."""
    target_url: str
    """Base URL of the trigger-handler; a job calls it + ``ScheduleSpec.target_path``."""
    service_account: str = ""
    """Email of the account whose OIDC token is sent; empty sends none."""
    audience: str = ""
    """The token's audience; empty means ``target_url``."""
    binding_key: str = ""
    """Signs the tenant of a job's URL (``shared.ports.tenant_binding``); jobs of the runtime's
    own tenant carry none, others cannot be created without it."""
    policy: JobPolicy = field(default_factory=JobPolicy)
    endpoint: str = ""
    """``host:port`` of a fake (plain text, no credentials); empty: Google's endpoint."""
    rpc_timeout_seconds: float = 30.0

    def __post_init__(self) -> None:
        parts = self.parent.split("/")
        if len(parts) != 4 or parts[0::2] != ["projects", "locations"] or "" in parts:
            raise ValueError(f"parent is not projects/P/locations/L: {self.parent!r}")
        if not self.target_url.startswith(("https://", "http://")):
            raise ValueError(f"target_url must be an http(s) URL: {self.target_url!r}")


def _owner(job: Job) -> tuple[str, str]:
    """(workflow id, tenant) of one of our jobs, from its name and target."""
    workflow_id = job.name.rsplit("/", 1)[-1][len(JOB_PREFIX) :]
    tenants = parse_qs(urlsplit(job.http_target.uri).query).get("tenant")
    return workflow_id, tenants[0] if tenants else DEFAULT_TENANT


def _differences(current: Job, wanted: Job) -> list[str]:
    """Field-mask paths where ``current`` is not what we want."""
    paths = [
        path
        for path in ("description", "schedule", "time_zone", "attempt_deadline")
        if getattr(current, path) != getattr(wanted, path)
    ]
    have, want = current.http_target, wanted.http_target
    if (
        have.uri != want.uri
        or have.http_method != want.http_method
        or have.body != want.body
        or have.oidc_token.service_account_email != want.oidc_token.service_account_email
        or have.oidc_token.audience != want.oidc_token.audience
    ):
        paths.append("http_target")
    if scheduler_v1.RetryConfig.serialize(current.retry_config) != (
        scheduler_v1.RetryConfig.serialize(wanted.retry_config)
    ):
        paths.append("retry_config")
    return paths


class CloudSchedulerBackend:
    """``TriggerBackend`` keeping Cloud Scheduler jobs in line with the schedule specs."""

    def __init__(
        self,
        config: SchedulerConfig,
        *,
        keep_paused: KeepPaused | None = None,
        interceptors: Sequence[aio.ClientInterceptor] = (),
        client_factory: Callable[[], scheduler_v1.CloudSchedulerAsyncClient] | None = None,
    ) -> None:
        """``keep_paused``: without it, undesired jobs are always deleted."""
        self.config = config
        self._keep_paused = keep_paused
        self._interceptors = list(interceptors)
        self._factory = client_factory
        self._client: scheduler_v1.CloudSchedulerAsyncClient | None = None

    def _get_client(self) -> scheduler_v1.CloudSchedulerAsyncClient:
        if self._client is None:
            if self._factory is not None:
                self._client = self._factory()
            else:
                self._client = async_client(
                    scheduler_v1.CloudSchedulerAsyncClient,
                    CloudSchedulerGrpcAsyncIOTransport,
                    endpoint=self.config.endpoint,
                    interceptors=self._interceptors,
                )
        return self._client

    def job_name(self, job_id: str) -> str:
        return f"{self.config.parent}/jobs/{job_id}"

    def job_for(self, spec: ScheduleSpec) -> Job:
        """The job a schedule spec wants."""
        config = self.config
        path = spec.target_path
        if "?tenant=" in path:  # bound, so the trigger-handler trusts the tenant
            path = bind_path(path, f"schedule/{spec.workflow_id}", spec.tenant, config.binding_key)
        url = config.target_url.rstrip("/") + path
        target = scheduler_v1.HttpTarget(uri=url, http_method=scheduler_v1.HttpMethod.POST)
        if config.service_account:
            target.oidc_token = scheduler_v1.OidcToken(
                service_account_email=config.service_account,
                audience=config.audience or config.target_url,
            )
        return Job(
            name=self.job_name(spec.job_name),
            description=f"workflow {spec.workflow_id} (tenant {spec.tenant}); managed by wfe",
            http_target=target,
            schedule=spec.cron,
            time_zone=spec.timezone,
            retry_config=config.policy.retry_config(),
            attempt_deadline=timedelta(seconds=config.policy.attempt_deadline_seconds),
        )

    async def reconcile(
        self, desired: Sequence[TriggerSpec], *, workflow_ids: Collection[str] | None = None
    ) -> ReconcileReport:
        wanted = {
            spec.job_name: spec
            for spec in desired
            if isinstance(spec, ScheduleSpec)
            and (workflow_ids is None or spec.workflow_id in workflow_ids)
        }
        current = await self._current(workflow_ids)
        added: list[str] = []
        updated: list[str] = []
        removed: list[str] = []
        errors: list[Exception] = []
        for job_id, spec in wanted.items():
            try:
                job = current.get(job_id)
                if job is None:
                    await self._create(self.job_for(spec))
                    added.append(spec.key)
                elif await self._update(job, self.job_for(spec)):
                    updated.append(spec.key)
            except Exception as exc:
                log.exception("reconciling scheduler job %s failed", job_id)
                errors.append(exc)
        for job_id, job in current.items():
            if job_id in wanted:
                continue
            try:
                if await self._retire(job):
                    removed.append(f"schedule:{job_id}")
            except Exception as exc:
                log.exception("retiring scheduler job %s failed", job_id)
                errors.append(exc)
        if errors:
            raise errors[0]
        unchanged = len(wanted) - len(added) - len(updated)
        return ReconcileReport(tuple(added), tuple(updated), tuple(removed), unchanged)

    async def _rpc(
        self, method: str, target: str, tolerate: tuple[type[Exception], ...] = (), **kwargs: Any
    ) -> Any:
        """One client call; a ``tolerate``d error answers None, others are translated."""
        call = getattr(self._get_client(), method)
        try:
            return await call(timeout=self.config.rpc_timeout_seconds, **kwargs)
        except tolerate:
            return None
        except gexc.GoogleAPICallError as exc:
            raise translate(exc, f"Cloud Scheduler {method} {target}", "SCHEDULER_ERROR") from exc

    async def _current(self, workflow_ids: Collection[str] | None) -> dict[str, Job]:
        """Our jobs: all of the prefix, or those of ``workflow_ids`` (read one by one)."""
        jobs: dict[str, Job] = {}
        if workflow_ids is None:
            pager = await self._rpc("list_jobs", self.config.parent, parent=self.config.parent)
            try:
                async for job in pager:
                    if job.name.rsplit("/", 1)[-1].startswith(JOB_PREFIX):
                        jobs[job.name.rsplit("/", 1)[-1]] = job
            except gexc.GoogleAPICallError as exc:  # a later page failed
                raise translate(exc, "Cloud Scheduler list_jobs", "SCHEDULER_ERROR") from exc
            return jobs
        for workflow_id in workflow_ids:
            name = self.job_name(f"{JOB_PREFIX}{workflow_id}")
            job = await self._rpc("get_job", name, (gexc.NotFound,), name=name)
            if job is not None:
                jobs[f"{JOB_PREFIX}{workflow_id}"] = job
        return jobs

    async def _create(self, job: Job) -> None:
        created = await self._rpc(
            "create_job", job.name, (gexc.AlreadyExists,), parent=self.config.parent, job=job
        )
        if created is None:  # another process created it meanwhile
            await self._update(await self._rpc("get_job", job.name, name=job.name), job)
            return
        log.info("scheduler job %s created (%s %s)", job.name, job.schedule, job.time_zone)

    async def _update(self, current: Job, wanted: Job) -> bool:
        """Bring an existing job in line; whether anything was changed."""
        paths = _differences(current, wanted)
        if current.state == State.UPDATE_FAILED and not paths:
            paths = ["schedule"]  # re-apply: the last update did not go through
        if paths:
            mask = field_mask_pb2.FieldMask(paths=paths)
            await self._rpc("update_job", wanted.name, job=wanted, update_mask=mask)
            log.info("scheduler job %s updated: %s", wanted.name, ", ".join(paths))
        stopped = current.state in (State.PAUSED, State.DISABLED)
        if stopped:
            await self._rpc("resume_job", wanted.name, name=wanted.name)
            log.info("scheduler job %s resumed", wanted.name)
        return bool(paths) or stopped

    async def _retire(self, job: Job) -> bool:
        """Pause the job of a deactivated workflow, delete any other; whether it changed."""
        workflow_id, tenant = _owner(job)
        if self._keep_paused is not None and await self._keep_paused(workflow_id, tenant):
            if job.state == State.PAUSED:
                return False
            await self._rpc("pause_job", job.name, name=job.name)
            log.info("scheduler job %s paused (workflow inactive)", job.name)
            return True
        await self._rpc("delete_job", job.name, (gexc.NotFound,), name=job.name)
        log.info("scheduler job %s deleted", job.name)
        return True

    async def start(self) -> None:
        """Nothing to run here: Cloud Scheduler calls the trigger-handler itself."""

    async def stop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.transport.close()  # type: ignore[no-untyped-call]
