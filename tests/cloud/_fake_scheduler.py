"""A Cloud Scheduler fake keeping jobs in a dict (no emulator exists).

It answers like the service where the reconciler depends on it: ALREADY_EXISTS for a
second create, NOT_FOUND for a missing job, field masks on update, paused and enabled
states, server-set fields (``user_update_time``, ``schedule_time``) on every job, and
ListJobs in pages of two so the client's pager follows page tokens.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import grpc
from _grpc_fake import EmptyType, FakeService, Handler
from google.cloud import scheduler_v1

State = scheduler_v1.Job.State
MUTATING = ("CreateJob", "UpdateJob", "DeleteJob", "PauseJob", "ResumeJob")
PAGE = 2


class FakeCloudScheduler(FakeService):
    service = "google.cloud.scheduler.v1.CloudScheduler"

    def __init__(self) -> None:
        super().__init__()
        self.jobs: dict[str, scheduler_v1.Job] = {}

    def methods(self) -> dict[str, tuple[Handler, Any, Any]]:
        s = scheduler_v1
        return {
            "ListJobs": (self._list, s.ListJobsRequest, s.ListJobsResponse),
            "GetJob": (self._get, s.GetJobRequest, s.Job),
            "CreateJob": (self._create, s.CreateJobRequest, s.Job),
            "UpdateJob": (self._update, s.UpdateJobRequest, s.Job),
            "DeleteJob": (self._delete, s.DeleteJobRequest, EmptyType),
            "PauseJob": (self._pause, s.PauseJobRequest, s.Job),
            "ResumeJob": (self._resume, s.ResumeJobRequest, s.Job),
        }

    def mutations(self) -> list[str]:
        return self.called(*MUTATING)

    def _stamp(self, job: scheduler_v1.Job) -> scheduler_v1.Job:
        job.user_update_time = datetime.now(UTC)
        job.schedule_time = datetime(2030, 1, 1, tzinfo=UTC)
        return job

    def _existing(self, name: str, context: grpc.ServicerContext) -> scheduler_v1.Job:
        with self.lock:
            job = self.jobs.get(name)
        if job is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"{name} not found")
        return job

    def _list(self, request: scheduler_v1.ListJobsRequest, context: Any) -> Any:
        with self.lock:
            names = sorted(n for n in self.jobs if n.startswith(f"{request.parent}/jobs/"))
            start = int(request.page_token or 0)
            page = [self.jobs[n] for n in names[start : start + PAGE]]
        token = str(start + PAGE) if start + PAGE < len(names) else ""
        return scheduler_v1.ListJobsResponse(jobs=page, next_page_token=token)

    def _get(self, request: scheduler_v1.GetJobRequest, context: Any) -> Any:
        return self._existing(request.name, context)

    def _create(self, request: scheduler_v1.CreateJobRequest, context: Any) -> Any:
        job = request.job
        if not job.name.startswith(f"{request.parent}/jobs/"):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "job name not under parent")
        with self.lock:
            if job.name in self.jobs:
                context.abort(grpc.StatusCode.ALREADY_EXISTS, f"{job.name} exists")
            job.state = State.ENABLED
            self.jobs[job.name] = self._stamp(job)
        return job

    def _update(self, request: scheduler_v1.UpdateJobRequest, context: Any) -> Any:
        job = self._existing(request.job.name, context)
        if not request.update_mask.paths:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "empty update mask")
        for path in request.update_mask.paths:
            setattr(job, path, getattr(request.job, path))
        return self._stamp(job)

    def _delete(self, request: scheduler_v1.DeleteJobRequest, context: Any) -> None:
        self._existing(request.name, context)
        with self.lock:
            del self.jobs[request.name]

    def _pause(self, request: scheduler_v1.PauseJobRequest, context: Any) -> Any:
        job = self._existing(request.name, context)
        job.state = State.PAUSED
        return job

    def _resume(self, request: scheduler_v1.ResumeJobRequest, context: Any) -> Any:
        job = self._existing(request.name, context)
        job.state = State.ENABLED
        return job
