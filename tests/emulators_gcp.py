"""The emulator fixtures of the suites marked ``emulator``: Firestore, Pub/Sub and
Cloud Tasks, each started once per session and stopped by process group. What finds,
installs and runs them is ``shared/dev/emulators.py``.

- Firestore: one emulator per session; ``firestore_project`` gives each test a project
  id of its own and deletes its documents afterwards.
- Pub/Sub: one emulator per session; each test gets a project id of its own (the
  emulator has no reset).
- Cloud Tasks: ``gcloud-tasks-emulator`` in ``.venv-tasks-emulator``, made by ``make
  tasks-emulator`` or, when missing, by the first test that needs it.

An emulator that is not installed (or cannot be installed) skips the tests that need
it, and the run ends with ONE loud ``EMULATOR SUITES NOT RUN`` line naming the suites
and why; one that is installed but does not start fails its tests under ``CI=true``
and is skipped loudly elsewhere. ``tests/conftest.py`` registers these fixtures and
the report hook once for the whole suite.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any, NoReturn

import pytest

from shared.dev.emulators import (
    TASKS_EMULATOR_PACKAGE,
    Emulator,
    Unavailable,
    clear_firestore_project,
    ensure_tasks_emulator,
    find_firestore,
    find_pubsub,
    firestore_emulator,
    pubsub_emulator,
    tasks_emulator,
)

__all__ = [
    "TASKS_EMULATOR_PACKAGE",
    "emulators_installed",
    "firestore_emulator_host",
    "firestore_project",
    "pubsub_emulator_host",
    "pubsub_project",
    "pytest_unconfigure",
    "tasks_emulator_host",
]

NOT_RUN = "EMULATOR SUITES NOT RUN"
_not_run: dict[str, str] = {}
"""Emulator name -> why its suites did not run."""


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def not_run(name: str, reason: str) -> NoReturn:
    """Skip the test for want of an emulator, remembered for the final report."""
    _not_run[name] = reason
    pytest.skip(f"{NOT_RUN}: {reason}")


def started(name: str, emulator: Emulator) -> Iterator[str]:
    """Start ``emulator`` for the session and yield its host; stop it afterwards.

    An emulator that is installed but does not start fails under CI=true."""
    try:
        emulator.start()
    except RuntimeError as failure:
        if in_ci():
            pytest.fail(f"{name} emulator is installed but did not start: {failure}")
        not_run(name, f"{name} emulator did not start ({failure})")
    try:
        yield emulator.host
    finally:
        emulator.stop()


@pytest.fixture(scope="session")
def firestore_emulator_host() -> Iterator[str]:
    """``host:port`` of a Firestore emulator started for this session."""
    try:
        script = find_firestore()
    except Unavailable as missing:
        not_run("Firestore", f"Firestore emulator not found ({missing})")
    yield from started("Firestore", firestore_emulator(script))


@pytest.fixture
def firestore_project(
    firestore_emulator_host: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """A fresh project id on the emulator (FIRESTORE_EMULATOR_HOST set for the test);
    its documents are deleted afterwards."""
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", firestore_emulator_host)
    project = f"test-{uuid.uuid4().hex[:12]}"
    yield project
    clear_firestore_project(firestore_emulator_host, project)


@pytest.fixture(scope="session")
def pubsub_emulator_host() -> Iterator[str]:
    """``host:port`` of a Pub/Sub emulator started for this session."""
    try:
        script = find_pubsub()
    except Unavailable as missing:
        not_run("Pub/Sub", f"Pub/Sub emulator not found ({missing})")
    yield from started("Pub/Sub", pubsub_emulator(script))


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
        not_run("Cloud Tasks", f"Cloud Tasks emulator not available ({missing})")
    yield from started("Cloud Tasks", tasks_emulator(executable))


@pytest.fixture(scope="session")
def emulators_installed() -> None:
    """For tests that start the three emulators themselves (``make dev-emulators``)."""
    for name, find in (
        ("Firestore", find_firestore),
        ("Pub/Sub", find_pubsub),
        ("Cloud Tasks", ensure_tasks_emulator),
    ):
        try:
            find()
        except Unavailable as missing:
            not_run(name, f"{name} emulator not available ({missing})")


def _skipped_suites(reporter: Any) -> list[str]:
    """The test files with a test skipped for want of an emulator."""
    files = {
        report.location[0]
        for report in reporter.stats.get("skipped", [])
        if NOT_RUN in str(getattr(report, "longrepr", ""))
    }
    return sorted(files)


def pytest_unconfigure(config: pytest.Config) -> None:
    """One loud line, after the summary, naming the suites not run and why."""
    if not _not_run:
        return
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    suites = _skipped_suites(reporter) if reporter is not None else []
    reasons = "; ".join(_not_run.values())
    line = f"{NOT_RUN}: {', '.join(suites) or 'tests marked emulator'} — {reasons}"
    if reporter is not None:
        reporter.write_line(line, red=True, bold=True)
    else:
        print(line)


if __name__ == "__main__":  # ``make tasks-emulator``
    print(ensure_tasks_emulator())
