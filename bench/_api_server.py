"""A real ``wfe dev`` process for bench/api.py: a free port, a temporary data directory,
its output in a file (a full pipe nobody reads would block it), stopped by its process
group. The same launch as tests/processes.py (``python -m shared.cli dev``)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from shared.api.identity import DevKeys

__all__ = ["DevServer", "free_port"]

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class DevServer:
    """``wfe dev`` on a free port with its SQLite file, dev key and log in ``folder``.

    Rate limits are off (``WFE_RATE_LIMITS=false``): the benchmark is one client
    sending as fast as it can, which the limits exist to refuse. Everything else is the
    default ``wfe dev`` (log level INFO, one line per request, as a user runs it)."""

    def __init__(self, folder: Path, *, log_level: str = "INFO", emulators: bool = False) -> None:
        self.folder = folder
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.ws = f"ws://127.0.0.1:{self.port}"
        self.log_path = folder / "wfe-dev.log"
        self.env = {
            "PYTHONPATH": str(ROOT),
            "WFE_RATE_LIMITS": "false",
            "WFE_DEV_KEY_FILE": str(folder / "dev-key.pem"),
            "WFE_LOG_LEVEL": log_level,
        }
        key_file = folder / "dev-key.pem"
        key_file.write_text(DevKeys.generate().private_pem)
        key_file.chmod(0o600)
        self.emulators = emulators
        if emulators:  # ``make dev-emulators``: wfe dev in gcp mode on the three emulators
            (folder / "no-examples").mkdir(exist_ok=True)
            argv = [sys.executable, "-m", "shared.dev.on_emulators", "--port", str(self.port)]
            argv += ["--firestore-port", "0", "--pubsub-port", "0", "--tasks-port", "0"]
            argv += ["--examples", str(folder / "no-examples"), "--", "--demo-port", "0"]
            self.log_path = folder / "wfe-dev-emulators.log"
        else:
            argv = [sys.executable, "-m", "shared.cli", "dev", "--port", str(self.port)]
            argv += ["--demo-port", "0", "--no-examples", "--db", str(folder / "dev.db")]
        self.argv = argv
        self._log = self.log_path.open("w")
        self.process = subprocess.Popen(
            argv,
            cwd=ROOT,
            env={**os.environ, **self.env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )

    def wait_healthy(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"wfe dev exited with {self.process.returncode}:\n{self.tail()}")
            try:
                if httpx.get(f"{self.base}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"wfe dev did not come up in {timeout} s:\n{self.tail()}")

    def rss_bytes(self) -> int | None:
        """The server's resident set size (``VmRSS``), for the report."""
        try:
            with open(f"/proc/{self.process.pid}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            return None
        return None

    def cpu_seconds(self) -> float | None:
        """User plus system CPU time of the server process (every thread) so far."""
        try:
            with open(f"/proc/{self.process.pid}/stat") as stat:
                fields = stat.read().rpartition(")")[2].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def tail(self, lines: int = 40) -> str:
        self._log.flush()
        text = self.log_path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def tracebacks(self) -> list[str]:
        """The errors the server logged with a traceback (a healthy run logs none): the
        first and last line of each message."""
        self._log.flush()
        found = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if "Traceback" not in line:
                continue
            try:
                message = str(json.loads(line).get("message", line))
            except ValueError:
                message = line
            parts = message.strip().splitlines()
            found.append(f"{parts[0][:200]} ... {parts[-1][:300]}")
        return found

    def stop(self) -> None:
        """SIGTERM (SIGKILL after 20 s) to the process group. The emulator launcher gets
        its SIGTERM alone: it stops wfe dev, then each emulator by its own group."""
        if self.emulators and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=40)
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._log.close()
