"""The log lines of a real ``create`` process, as Cloud Logging would read them.

``functions-framework --target create --asgi`` runs the function the way Cloud Run
does (gunicorn with uvicorn workers); every line it writes must be one JSON entry
with a ``severity``, the lines of a request must carry the trace of its
``traceparent``, and a traceback must be one entry, not one per line.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.adapters._sqlite_schema import SCHEMA_VERSION

ROOT = Path(__file__).resolve().parents[2]
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE}-00f067aa0ba902b7-01"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Function:
    base: str
    process: subprocess.Popen[str]

    def lines(self) -> list[str]:
        """Everything the process wrote (stdout and stderr), once it has stopped."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
        out, _ = self.process.communicate(timeout=30)
        return [line for line in out.splitlines() if line.strip()]


def _start(db_path: Path) -> Function:
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "functions_framework",
            "--target",
            "create",
            "--asgi",
            "--source",
            str(ROOT / "functions" / "create" / "main.py"),
            "--port",
            str(port),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        env={
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "WFE_DB_PATH": str(db_path),
            "WFE_PROJECT": "demo-project",
        },
    )
    return Function(f"http://127.0.0.1:{port}", process)


def _wait_listening(function: Function, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert function.process.poll() is None, "the function exited"
        try:
            httpx.get(f"{function.base}/health", timeout=2)
            return
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError("the function did not listen")


@pytest.fixture
def function(tmp_path: Path) -> Iterator[Function]:
    running = _start(tmp_path / "wfe.db")
    try:
        _wait_listening(running)
        yield running
    finally:
        if running.process.poll() is None:
            os.killpg(running.process.pid, signal.SIGKILL)
            running.process.wait(timeout=10)


def _entries(lines: list[str]) -> list[dict[str, Any]]:
    """Every line parsed; a line that is not a JSON object fails the test."""
    entries = []
    for line in lines:
        entry = json.loads(line)
        assert isinstance(entry, dict), line
        entries.append(entry)
    return entries


def test_request_lines_are_json_with_severity_and_the_callers_trace(function: Function) -> None:
    answer = httpx.get(
        f"{function.base}/api/v1/workflows/does-not-exist",
        headers={"traceparent": TRACEPARENT},
        timeout=10,
    )
    assert answer.status_code == 404
    entries = _entries(function.lines())
    assert entries, "the process logged nothing"
    assert all(entry.get("severity") for entry in entries)
    traced = [e for e in entries if e.get("logging.googleapis.com/trace", "").endswith(TRACE)]
    assert traced, "no line of the request carries its trace id"
    assert all(
        e["logging.googleapis.com/trace"] == f"projects/demo-project/traces/{TRACE}" for e in traced
    )
    assert any("does-not-exist" in e.get("message", "") for e in traced)


def test_a_failure_is_one_error_entry_with_its_traceback(tmp_path: Path) -> None:
    """A database that claims the current schema but has no tables opens fine and fails
    the first query: the traceback of that failure must be one ERROR entry."""
    db_path = tmp_path / "wfe.db"
    with contextlib.closing(sqlite3.connect(db_path)) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    running = _start(db_path)
    try:
        _wait_listening(running)
        httpx.get(
            f"{running.base}/api/v1/workflows", headers={"traceparent": TRACEPARENT}, timeout=10
        )
        lines = running.lines()
    finally:
        if running.process.poll() is None:
            os.killpg(running.process.pid, signal.SIGKILL)
            running.process.wait(timeout=10)
    assert not [line for line in lines if line.lstrip().startswith('File "')], "one per line"
    entries = _entries(lines)
    failures = [e for e in entries if "Traceback (most recent call last)" in e["message"]]
    assert failures, "no traceback was logged"
    assert all(e["severity"] in ("ERROR", "CRITICAL") for e in failures)
    assert any("no such table" in e["message"] for e in failures)
