"""Runs a benchmark script as the bench smoke tests do: this interpreter, from the
repository's root, output captured; a failed run fails the test with its stderr."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_bench(script: Path, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """``python script args...``; asserts it exited 0 (stderr's end as the message)."""
    done = subprocess.run(
        [sys.executable, str(script), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return done
