"""The pieces of the gcp end-to-end test: the four functions as processes, the local
HTTP helper (a flaky service for the http step and a tap relaying Pub/Sub pushes to
trigger-handler), and the Cloud Tasks emulator seen through the real client."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
from google.cloud import tasks_v2
from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport

from shared.dev.emulators import free_port

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TARGETS = {"create": "create", "execute-step": "execute_step", "trigger-handler": "trigger_handler"}


@dataclass
class Helper:
    """``/flaky``: 503 to the first call, then 200. ``/push?topic=T``: a Pub/Sub push,
    relayed to trigger-handler; its answers are kept."""

    trigger_url: str = ""
    url: str = ""
    flaky_calls: int = 0
    pushes: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answered(self) -> list[dict[str, Any]]:
        """The pushes trigger-handler acknowledged (200)."""
        with self.lock:
            return [push for push in self.pushes if push["httpStatus"] == 200]

    def relay(self, path: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, bytes]:
        query = path.partition("?")[2]
        forward = urllib.request.Request(
            f"{self.trigger_url}/pubsub?{query}",
            data=body,
            headers={"content-type": headers.get("content-type", "application/json")},
        )
        try:
            with urllib.request.urlopen(forward, timeout=30) as reply:
                status, answer = reply.status, reply.read()
        except urllib.error.HTTPError as failed:
            status, answer = failed.code, failed.read()
        with self.lock:
            message = json.loads(body)["message"]
            push: dict[str, Any] = json.loads(answer) if status == 200 else {}
            push.update(httpStatus=status, messageId=message.get("messageId"))
            self.pushes.append(push)
        return status, answer


@contextmanager
def helper_server() -> Iterator[Helper]:
    helper = Helper()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _answer(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            with helper.lock:
                helper.flaky_calls += 1
                first = helper.flaky_calls == 1
            self._answer(503 if first else 200, b'{"ok": %s}' % (b"false" if first else b"true"))

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            self._answer(*helper.relay(self.path, body, dict(self.headers)))

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    helper.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield helper
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Function:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def start_function(name: str, env: dict[str, str], logs: Path, port: int = 0) -> Function:
    """One function in its own process group: functions-framework, or uvicorn for
    status-stream (functions-framework cannot hold WebSockets)."""
    port = port or free_port()
    if name == "status-stream":
        argv = [str(BIN / "uvicorn"), "--app-dir", "functions/status-stream", "main:app"]
        argv += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    else:
        argv = [str(BIN / "functions-framework"), "--source", f"functions/{name}/main.py"]
        argv += ["--target", TARGETS[name], "--asgi", "--host", "127.0.0.1", "--port", str(port)]
    log = logs / f"{name}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )
    return Function(name, port, process, log)


def wait_ready(function: Function, path: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if function.process.poll() is not None:
            raise AssertionError(f"{function.name} exited:\n{function.tail()}")
        try:
            with urllib.request.urlopen(function.url + path, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{function.name} not ready after {timeout} s:\n{function.tail()}")


def stop_function(function: Function) -> None:
    if function.process.poll() is None:
        os.killpg(function.process.pid, signal.SIGTERM)
        try:
            function.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(function.process.pid, signal.SIGKILL)
            function.process.wait()


class Tasks:
    """The Cloud Tasks emulator through the real (sync) client."""

    def __init__(self, host: str, queue_path: str) -> None:
        self.channel = grpc.insecure_channel(host)
        self.client = tasks_v2.CloudTasksClient(
            transport=CloudTasksGrpcTransport(channel=self.channel)
        )
        self.queue_path = queue_path

    def pending(self) -> list[tasks_v2.Task]:
        return list(self.client.list_tasks(parent=self.queue_path))

    def duplicate(self, task: tasks_v2.Task, name: str) -> str:
        """The same task again under another name; its full name."""
        copy = tasks_v2.Task(
            name=f"{self.queue_path}/tasks/{name}",
            http_request=task.http_request,
            schedule_time=task.schedule_time,
        )
        return str(self.client.create_task(parent=self.queue_path, task=copy).name)

    def close(self) -> None:
        self.channel.close()
