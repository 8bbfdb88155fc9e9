"""A local HTTP endpoint that records what the emulators deliver to it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    """Header names lower-cased."""
    body: bytes
    at: float
    """``time.monotonic()`` when it arrived."""


class Recorder:
    """Requests received, in order; ``answers`` are the status codes of the first ones."""

    def __init__(self, answers: list[int] | None = None) -> None:
        self.received: list[Received] = []
        self.answers = list(answers or [])
        self.url = ""
        self._arrived = threading.Condition()

    def record(self, request: Received) -> int:
        with self._arrived:
            self.received.append(request)
            self._arrived.notify_all()
            return self.answers.pop(0) if self.answers else 200

    def wait_for(self, count: int, timeout: float = 20.0) -> list[Received]:
        """The first ``count`` requests, waiting for them; AssertionError on timeout."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while len(self.received) < count:
                left = deadline - time.monotonic()
                assert left > 0, f"{len(self.received)} of {count} requests after {timeout}s"
                self._arrived.wait(left)
            return list(self.received[:count])


@contextmanager
def recording(answers: list[int] | None = None) -> Iterator[Recorder]:
    """Serve a Recorder on a free local port (``recorder.url``) while the block runs."""
    recorder = Recorder(answers)

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {name.lower(): value for name, value in self.headers.items()}
            status = recorder.record(
                Received(self.command, self.path, headers, body, time.monotonic())
            )
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        do_POST = do_PUT = do_GET = _handle

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    recorder.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield recorder
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
