"""Fixtures of the infrastructure tests, and one loud line per check that could not run."""

from __future__ import annotations

import pytest
from _terraform import NOT_RUN


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for name, reason in NOT_RUN.items():
        terminalreporter.write_line(f"INFRA CHECK NOT RUN: {name}: {reason}", red=True, bold=True)
