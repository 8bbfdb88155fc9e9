"""The Google emulators the emulator suites talk to: found, started and stopped here.

The emulators come with the Google Cloud CLI (see ``../shared/EMULATORS.md``); they
cannot be installed from a package registry. ``find_firestore`` says how to start the
Firestore emulator or why it cannot run; ``Emulator`` runs one in its own process
group (the wrapper script starts a java child) and stops the whole group.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "Emulator",
    "Unavailable",
    "clear_firestore_project",
    "find_firestore",
    "firestore_emulator",
    "free_port",
]


class Unavailable(Exception):
    """The emulator is not installed here (no gcloud, component or java)."""


def _sdk_root() -> Path:
    """The Cloud SDK root: ``$CLOUDSDK_ROOT`` or what ``gcloud info`` reports."""
    configured = os.environ.get("CLOUDSDK_ROOT")
    if configured:
        return Path(configured)
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        raise Unavailable("gcloud missing")
    try:
        found = subprocess.run(
            [gcloud, "info", "--format=value(installation.sdk_root)"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout.strip()
    except (subprocess.SubprocessError, OSError) as exc:
        raise Unavailable(f"`gcloud info` failed: {exc}") from exc
    if not found:
        raise Unavailable("`gcloud info` reported no SDK root")
    return Path(found)


def find_firestore() -> Path:
    """The Firestore emulator's wrapper script; Unavailable says why there is none."""
    script = _sdk_root() / "platform" / "cloud-firestore-emulator" / "cloud_firestore_emulator"
    if not script.exists():
        raise Unavailable(f"Firestore emulator component not installed ({script} missing)")
    if shutil.which("java") is None:
        raise Unavailable("java missing (the Firestore emulator needs it)")
    return script


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Emulator:
    """One emulator process (group) listening on ``host``."""

    name: str
    argv: list[str]
    port: int
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        """Start the process in a new session and wait until it answers HTTP."""
        handle, log = tempfile.mkstemp(prefix=f"{self.name}-", suffix=".log")
        self.log_path = Path(log)
        with os.fdopen(handle, "wb") as sink:
            self.process = subprocess.Popen(
                self.argv, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                code = self.process.returncode
                raise RuntimeError(f"{self.name} exited with {code}: {self.tail()}")
            if self._answers():
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} not ready after {timeout:.0f} s: {self.tail()}")

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.host}/", timeout=1) as reply:
                return bool(reply.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def stop(self) -> None:
        """Stop the whole process group: TERM, then KILL if it lingers."""
        if self.process is None or self.process.poll() is not None:
            return
        group = os.getpgid(self.process.pid)
        os.killpg(group, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(group, signal.SIGKILL)
            self.process.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):  # the java child may linger
            os.killpg(group, signal.SIGKILL)

    def tail(self, lines: int = 20) -> str:
        """The end of the emulator's log, for error messages."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def firestore_emulator(script: Path) -> Emulator:
    """An (unstarted) Firestore emulator in native mode on a free port."""
    port = free_port()
    argv = [
        str(script),
        "start",
        "--host=127.0.0.1",
        f"--port={port}",
        "--database-mode=firestore-native",
    ]
    return Emulator("firestore-emulator", argv, port)


def clear_firestore_project(host: str, project: str) -> None:
    """Delete every document of ``project`` in the emulator (best effort)."""
    url = f"http://{host}/emulator/v1/projects/{project}/databases/(default)/documents"
    request = urllib.request.Request(url, method="DELETE")
    try:
        with urllib.request.urlopen(request, timeout=10):
            pass
    except (OSError, urllib.error.URLError):
        pass
