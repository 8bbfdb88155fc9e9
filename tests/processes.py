"""A service under test as a real process: a free port, its output in a file (a full
pipe nobody reads would block it), ready by TCP or HTTP, stopped by its process group."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wfe_dev_argv(db: Path) -> list[str]:
    """``wfe dev`` (on the process's port) with a demo service on another free port."""
    argv = [sys.executable, "-m", "shared.cli", "dev", "--port", "{port}"]
    return [*argv, "--demo-port", str(free_port()), "--db", str(db)]


class ServiceProcess:
    """``argv`` (where ``{port}`` stands for the chosen port) started in ``folder``."""

    def __init__(
        self,
        argv: list[str],
        folder: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path = ROOT,
    ) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.ws = f"ws://127.0.0.1:{self.port}"
        self.log_path = folder / f"process-{self.port}.log"
        self.log = self.log_path.open("w")
        self.process = subprocess.Popen(
            [part.replace("{port}", str(self.port)) for part in argv],
            cwd=cwd,
            env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
            stdout=self.log,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )

    def wait_listening(self, timeout: float = 60) -> None:
        """Until the port accepts a TCP connection: no HTTP request is sent."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"process exited with {self.process.returncode}")
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.1)
        raise AssertionError("the process did not listen in time")

    def wait_healthy(self, path: str = "/health", timeout: float = 60) -> None:
        """Until ``GET path`` answers 200."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"process exited with {self.process.returncode}")
            try:
                if httpx.get(f"{self.base}{path}", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError("the process did not come up")

    def stop(self) -> str:
        """SIGTERM (SIGKILL after 20 s) to the process group; everything it wrote."""
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.log.close()
        return self.log_path.read_text(errors="replace")
