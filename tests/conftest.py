"""Session-wide test fixtures: the Google emulators for tests marked ``emulator``.

When an emulator is not installed here (no gcloud, component or java), its tests are
skipped and the run ends with one loud ``EMULATOR SUITES NOT RUN`` line. When it is
installed but fails to start, its tests fail under ``CI=true`` (never a quiet skip)
and are skipped loudly elsewhere.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from emulators import Unavailable, clear_firestore_project, find_firestore, firestore_emulator

_not_run: dict[str, str] = {}
"""Emulator name -> why its suites did not run."""


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.fixture(scope="session")
def firestore_emulator_host() -> Iterator[str]:
    """``host:port`` of a Firestore emulator started for this session."""
    try:
        script = find_firestore()
    except Unavailable as missing:
        _not_run["Firestore"] = f"Firestore emulator not found ({missing})"
        pytest.skip(_not_run["Firestore"])
    emulator = firestore_emulator(script)
    try:
        emulator.start()
    except RuntimeError as failure:
        if _in_ci():
            pytest.fail(f"Firestore emulator is installed but did not start: {failure}")
        _not_run["Firestore"] = f"Firestore emulator did not start ({failure})"
        pytest.skip(_not_run["Firestore"])
    try:
        yield emulator.host
    finally:
        emulator.stop()


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


def pytest_unconfigure(config: pytest.Config) -> None:
    """One loud line per emulator whose suites were skipped, after the summary."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    for reason in _not_run.values():
        line = f"EMULATOR SUITES NOT RUN: {reason} — tests marked emulator were skipped"
        if reporter is not None:
            reporter.write_line(line, red=True, bold=True)
        else:
            print(line)
