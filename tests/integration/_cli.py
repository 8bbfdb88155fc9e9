"""Helpers of the CLI tests: the real ``wfe`` console script run in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"


@dataclass(frozen=True)
class CliResult:
    """Exit code and output of one ``wfe`` invocation."""

    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        """stdout and stderr together (where a message lands is not always the point)."""
        return self.stdout + self.stderr

    def json(self) -> Any:
        """stdout parsed as JSON (``--json`` prints nothing else there)."""
        return json.loads(self.stdout)


Wfe = Callable[..., CliResult]


def cli_env() -> dict[str, str]:
    """The environment without ``WFE_*`` settings, with the repository importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WFE_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def run_wfe(cwd: Path, *args: str | Path, timeout: float = 60) -> CliResult:
    """Run ``python -m shared.cli ARGS...`` in ``cwd`` and capture its output."""
    completed = subprocess.run(
        [sys.executable, "-m", "shared.cli", *map(str, args)],
        cwd=cwd,
        env=cli_env(),
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=timeout,
        check=False,
    )
    result = CliResult(completed.returncode, completed.stdout, completed.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    return result
