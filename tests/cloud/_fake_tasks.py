"""A Cloud Tasks fake that keeps tasks by name and refuses duplicates like the service."""

from __future__ import annotations

from typing import Any

import grpc
from _grpc_fake import FakeService, Handler
from google.cloud import tasks_v2


class FakeCloudTasks(FakeService):
    service = "google.cloud.tasks.v2.CloudTasks"

    def __init__(self) -> None:
        super().__init__()
        self.tasks: dict[str, tasks_v2.Task] = {}

    def methods(self) -> dict[str, tuple[Handler, Any, Any]]:
        return {"CreateTask": (self._create, tasks_v2.CreateTaskRequest, tasks_v2.Task)}

    def _create(self, request: tasks_v2.CreateTaskRequest, context: grpc.ServicerContext) -> Any:
        task = request.task
        if not task.name.startswith(f"{request.parent}/tasks/"):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "task name not under parent")
        with self.lock:
            if task.name in self.tasks:
                context.abort(grpc.StatusCode.ALREADY_EXISTS, f"{task.name} exists")
            self.tasks[task.name] = task
        return task

    def created(self) -> list[tasks_v2.CreateTaskRequest]:
        """Every CreateTask request received, duplicates included."""
        with self.lock:
            return [request for name, request in self.calls if name == "CreateTask"]
