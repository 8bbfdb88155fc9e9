"""Run translated definitions on the local engine (in memory) against a local HTTP server."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from shared.app.service import StartRequest
from shared.composition import build_local
from shared.models import WorkflowExecution
from shared.settings import Settings


class _Handler(BaseHTTPRequestHandler):
    counts: dict[str, int] = {}

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _answer(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _route(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        sent = json.loads(self.rfile.read(length) or b"null") if length else None
        path, _, query = self.path.partition("?")
        counts = type(self).counts
        counts[path] = counts.get(path, 0) + 1
        if path == "/echo":
            self._answer(200, {"method": method, "body": sent, "query": query})
        elif path == "/items":
            self._answer(200, {"items": [{"id": 1, "price": 10}, {"id": 2, "price": 32}]})
        elif path.startswith("/items/"):
            item = int(path.rsplit("/", 1)[1])
            self._answer(200, {"id": item, "price": item * 10})
        elif path == "/flaky":
            self._answer(503 if counts[path] < 3 else 200, {"attempt": counts[path]})
        elif path == "/missing":
            self._answer(404, {"error": "not found"})
        else:
            self._answer(200, {"path": path, "method": method})

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")


@contextmanager
def http_server() -> Iterator[str]:
    """A local JSON service; yields its base URL (``http://127.0.0.1:PORT``)."""
    _Handler.counts = {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


LAST_STEPS: list[str] = []
"""Step ids the last ``run_definition`` ran, in order."""


def request_counts() -> dict[str, int]:
    return dict(_Handler.counts)


async def run_definition(
    definition: dict[str, Any], data: dict[str, Any] | None = None, base_url: str | None = None
) -> WorkflowExecution:
    """Create the workflow and run it to a terminal status (30 s at most)."""
    hosts = [base_url.removeprefix("http://")] if base_url else []
    settings = Settings.local_mode(":memory:", http_allowed_hosts=hosts)
    async with build_local(settings, memory=True) as runtime:
        workflow = await runtime.app.create_workflow(definition)
        started = await runtime.app.start_execution(StartRequest(workflow.id, data or {}))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while True:
            execution = await runtime.app.get_execution(started.id)
            if execution.status.terminal:
                LAST_STEPS[:] = [r.step_id for r in await runtime.app.step_history(started.id)]
                return execution
            if loop.time() > deadline:
                raise AssertionError(f"execution still {execution.status} after 30 s")
            await asyncio.sleep(0.02)
