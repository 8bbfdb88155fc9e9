"""The emulator helpers of the test suite: why an emulator is unavailable, and a
process group that starts, answers and is stopped whole."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from emulators import Emulator, Unavailable, find_firestore, free_port


def _fake_sdk(root: Path) -> Path:
    script = root / "platform" / "cloud-firestore-emulator" / "cloud_firestore_emulator"
    script.parent.mkdir(parents=True)
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o755)
    return script


def test_missing_gcloud_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CLOUDSDK_ROOT", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(Unavailable, match="gcloud missing"):
        find_firestore()


def test_missing_component_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CLOUDSDK_ROOT", str(tmp_path))
    with pytest.raises(Unavailable, match="component not installed"):
        find_firestore()


def test_missing_java_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _fake_sdk(tmp_path / "sdk")
    monkeypatch.setenv("CLOUDSDK_ROOT", str(tmp_path / "sdk"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(Unavailable, match="java missing"):
        find_firestore()


def test_found_when_installed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    script = _fake_sdk(tmp_path / "sdk")
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "java").symlink_to(sys.executable)
    monkeypatch.setenv("CLOUDSDK_ROOT", str(tmp_path / "sdk"))
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    assert find_firestore() == script


def test_an_emulator_group_starts_answers_and_stops(tmp_path: Path) -> None:
    port = free_port()
    argv = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    emulator = Emulator("http", argv, port)
    emulator.start(timeout=20)
    assert emulator.process is not None
    group = os.getpgid(emulator.process.pid)
    assert group != os.getpgid(0)  # its own process group

    emulator.stop()
    assert emulator.process.poll() is not None
    with pytest.raises(ProcessLookupError):
        os.killpg(group, 0)


def test_an_emulator_that_exits_reports_its_log() -> None:
    argv = [sys.executable, "-c", "import sys; print('no port for you'); sys.exit(3)"]
    emulator = Emulator("broken", argv, free_port())
    with pytest.raises(RuntimeError, match="exited with 3: no port for you"):
        emulator.start(timeout=20)
