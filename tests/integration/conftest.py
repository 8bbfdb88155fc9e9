"""Fixtures of the integration tests: a scratch database and the ``wfe`` runner."""

from __future__ import annotations

from pathlib import Path

import pytest
from _cli import CliResult, Wfe, run_wfe


@pytest.fixture
def db_file(tmp_path: Path) -> Path:
    """A database path in a directory that does not exist yet."""
    return tmp_path / "state" / "wfe.db"


@pytest.fixture
def wfe(tmp_path: Path) -> Wfe:
    """Call ``wfe ARGS...`` with ``cwd=tmp_path``; returns a ``CliResult``."""

    def run(*args: str | Path, timeout: float = 60) -> CliResult:
        return run_wfe(tmp_path, *args, timeout=timeout)

    return run
