"""Pub/Sub and Cloud Tasks emulators for the suites marked ``emulator``: found (or, for
Cloud Tasks, installed), started, and stopped by process group.

- Pub/Sub: the official emulator of the Google Cloud CLI (needs java). One emulator
  per session; each test gets a project id of its own (the emulator has no reset).
- Cloud Tasks: ``gcloud-tasks-emulator`` from PyPI. It pins ``protobuf<5``, so it
  lives in its own virtual environment, ``.venv-tasks-emulator`` (git-ignored), made
  by ``make tasks-emulator`` or, when missing, by the first test that needs it.

Same rule as the Firestore fixture (``tests/conftest.py``): an emulator that is not
installed (or cannot be installed) skips its suites with one loud ``EMULATOR SUITES
NOT RUN`` line at the end; one that is installed but does not start fails its tests
under ``CI=true`` and is skipped loudly elsewhere.

Register the fixtures once, by importing them in a directory's conftest
(``tests/cloud/conftest.py`` does) or with ``pytest_plugins`` in the root conftest.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from emulators import Emulator, Unavailable, _sdk_root, free_port

__all__ = [
    "TASKS_EMULATOR_PACKAGE",
    "GrpcEmulator",
    "ensure_tasks_emulator",
    "find_pubsub",
    "pubsub_emulator_host",
    "pubsub_project",
    "pytest_unconfigure",
    "tasks_emulator_host",
]

ROOT = Path(__file__).resolve().parents[1]
TASKS_EMULATOR_PACKAGE = "gcloud-tasks-emulator==0.6.2"
TASKS_VENV = ROOT / ".venv-tasks-emulator"

_not_run: dict[str, str] = {}
"""Emulator name -> why its suites did not run."""


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


class GrpcEmulator(Emulator):
    """An emulator that speaks gRPC only: ready once its port accepts connections."""

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False


def find_pubsub() -> Path:
    """The Pub/Sub emulator's launcher; Unavailable says why there is none."""
    script = _sdk_root() / "platform" / "pubsub-emulator" / "bin" / "cloud-pubsub-emulator"
    if not script.exists():
        raise Unavailable(f"Pub/Sub emulator component not installed ({script} missing)")
    if shutil.which("java") is None:
        raise Unavailable("java missing (the Pub/Sub emulator needs it)")
    return script


def ensure_tasks_emulator(venv: Path = TASKS_VENV) -> Path:
    """The ``gcloud-tasks-emulator`` executable, installing it into ``venv`` if needed.

    A lock file keeps two test runs from building the environment at once. Raises
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
            subprocess.run(
                [
                    str(venv / "bin" / "python"),
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    TASKS_EMULATOR_PACKAGE,
                ],
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


def _start(name: str, emulator: Emulator) -> Iterator[str]:
    try:
        emulator.start()
    except RuntimeError as failure:
        if _in_ci():
            pytest.fail(f"{name} emulator is installed but did not start: {failure}")
        _not_run[name] = f"{name} emulator did not start ({failure})"
        pytest.skip(_not_run[name])
    try:
        yield emulator.host
    finally:
        emulator.stop()


@pytest.fixture(scope="session")
def pubsub_emulator_host() -> Iterator[str]:
    """``host:port`` of a Pub/Sub emulator started for this session."""
    try:
        script = find_pubsub()
    except Unavailable as missing:
        _not_run["Pub/Sub"] = f"Pub/Sub emulator not found ({missing})"
        pytest.skip(_not_run["Pub/Sub"])
    port = free_port()
    argv = [str(script), "--host=127.0.0.1", f"--port={port}"]
    yield from _start("Pub/Sub", Emulator("pubsub-emulator", argv, port))


@pytest.fixture
def pubsub_project(pubsub_emulator_host: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh project id on the emulator, with PUBSUB_EMULATOR_HOST set for the test."""
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", pubsub_emulator_host)
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def tasks_emulator_host() -> Iterator[str]:
    """``host:port`` of a Cloud Tasks emulator (gRPC) started for this session."""
    try:
        executable = ensure_tasks_emulator()
    except Unavailable as missing:
        _not_run["Cloud Tasks"] = f"Cloud Tasks emulator not available ({missing})"
        pytest.skip(_not_run["Cloud Tasks"])
    port = free_port()
    argv = [str(executable), "start", f"--port={port}", "--max-retries=5"]
    yield from _start("Cloud Tasks", GrpcEmulator("tasks-emulator", argv, port))


def pytest_unconfigure(config: pytest.Config) -> None:
    """One loud line per emulator whose suites were skipped, after the summary."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    for reason in _not_run.values():
        line = f"EMULATOR SUITES NOT RUN: {reason} — tests marked emulator were skipped"
        if reporter is not None:
            reporter.write_line(line, red=True, bold=True)
        else:
            print(line)


if __name__ == "__main__":  # ``make tasks-emulator``
    print(ensure_tasks_emulator())
