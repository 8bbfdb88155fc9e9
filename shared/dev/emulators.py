"""The Google emulators on this machine: found, started and stopped by process group.

Used by the test fixtures (``tests/emulators_gcp.py``) and by ``make dev-emulators``
(``shared/dev/on_emulators.py``); see ``../shared/EMULATORS.md`` and ``docs/gcp.md``.

- Firestore and Pub/Sub: the official emulators of the Google Cloud CLI (they need
  java); they cannot be installed from a package registry. ``find_firestore`` and
  ``find_pubsub`` say where they are or, with ``Unavailable``, why they are not.
- Cloud Tasks: ``gcloud-tasks-emulator`` from PyPI. It pins ``protobuf<5``, so it
  lives in a virtual environment of its own, ``.venv-tasks-emulator`` (git-ignored),
  which ``ensure_tasks_emulator`` creates when missing.

An ``Emulator`` runs in a new session (the Java wrapper scripts start a child) and
``stop`` ends the whole process group. Standard library only.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "TASKS_EMULATOR_PACKAGE",
    "TASKS_VENV",
    "Emulator",
    "GrpcEmulator",
    "Unavailable",
    "clear_firestore_project",
    "ensure_tasks_emulator",
    "find_firestore",
    "find_pubsub",
    "firestore_emulator",
    "free_port",
    "pubsub_emulator",
    "sdk_root",
    "tasks_emulator",
]

ROOT = Path(__file__).resolve().parents[2]
"""The repository (shared/dev/emulators.py is two levels down)."""
TASKS_EMULATOR_PACKAGE = "gcloud-tasks-emulator==0.6.2"
TASKS_VENV = ROOT / ".venv-tasks-emulator"


class Unavailable(Exception):
    """The emulator is not installed here (no gcloud, component or java)."""


def sdk_root() -> Path:
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


def _component(name: str, *parts: str) -> Path:
    script = sdk_root().joinpath("platform", *parts)
    if not script.exists():
        raise Unavailable(f"{name} emulator component not installed ({script} missing)")
    if shutil.which("java") is None:
        raise Unavailable(f"java missing (the {name} emulator needs it)")
    return script


def find_firestore() -> Path:
    """The Firestore emulator's wrapper script; Unavailable says why there is none."""
    return _component("Firestore", "cloud-firestore-emulator", "cloud_firestore_emulator")


def find_pubsub() -> Path:
    """The Pub/Sub emulator's launcher; Unavailable says why there is none."""
    return _component("Pub/Sub", "pubsub-emulator", "bin", "cloud-pubsub-emulator")


def ensure_tasks_emulator(venv: Path = TASKS_VENV) -> Path:
    """The ``gcloud-tasks-emulator`` executable, installing it into ``venv`` if needed.

    A lock file keeps two runs from building the environment at once. Raises
    Unavailable when it cannot be installed (no package registry reachable).
    """
    executable = venv / "bin" / "gcloud-tasks-emulator"
    if executable.exists():
        return executable
    with open(Path(tempfile.gettempdir()) / "wfe-tasks-emulator.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if executable.exists():
            return executable
        try:
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
            pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
            subprocess.run(
                [*pip, TASKS_EMULATOR_PACKAGE],
                check=True,
                capture_output=True,
                text=True,
                timeout=600,
            )
        except (subprocess.SubprocessError, OSError) as exc:
            detail = getattr(exc, "stderr", "") or str(exc)
            shutil.rmtree(venv, ignore_errors=True)
            raise Unavailable(f"cannot install {TASKS_EMULATOR_PACKAGE}: {detail[-300:]}") from exc
    return executable


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
        """Start the process in a new session and wait until it answers."""
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


class GrpcEmulator(Emulator):
    """An emulator that speaks gRPC only: ready once its port accepts connections."""

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False


def firestore_emulator(script: Path, port: int | None = None) -> Emulator:
    """An (unstarted) Firestore emulator in native mode (on a free port by default)."""
    port = port or free_port()
    argv = [str(script), "start", "--host=127.0.0.1", f"--port={port}"]
    return Emulator("firestore-emulator", [*argv, "--database-mode=firestore-native"], port)


def pubsub_emulator(script: Path, port: int | None = None) -> Emulator:
    """An (unstarted) Pub/Sub emulator."""
    port = port or free_port()
    return Emulator("pubsub-emulator", [str(script), "--host=127.0.0.1", f"--port={port}"], port)


def tasks_emulator(executable: Path, port: int | None = None, max_retries: int = 5) -> Emulator:
    """An (unstarted) Cloud Tasks emulator (gRPC)."""
    port = port or free_port()
    argv = [str(executable), "start", f"--port={port}", f"--max-retries={max_retries}"]
    return GrpcEmulator("tasks-emulator", argv, port)


def clear_firestore_project(host: str, project: str) -> None:
    """Delete every document of ``project`` in the emulator (best effort)."""
    url = f"http://{host}/emulator/v1/projects/{project}/databases/(default)/documents"
    request = urllib.request.Request(url, method="DELETE")
    try:
        with urllib.request.urlopen(request, timeout=10):
            pass
    except (OSError, urllib.error.URLError):
        pass
