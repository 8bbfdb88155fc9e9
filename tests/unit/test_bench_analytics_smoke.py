"""bench/analytics.py still runs (small N): rollups answer what the raw data says."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["--executions", "300", "--workflows", "3", "--steps", "4", "--repeats", "2"]


def test_the_analytics_benchmark_runs_and_agrees_with_the_raw_data(tmp_path: Path) -> None:
    out, err = tmp_path / "out.json", tmp_path / "err.txt"
    with out.open("w") as stdout, err.open("w") as stderr:
        done = subprocess.run(
            [sys.executable, str(ROOT / "bench" / "analytics.py"), "--json", *SMALL],
            stdout=stdout,
            stderr=stderr,
            timeout=120,
            check=False,
        )
    assert done.returncode == 0, err.read_text()
    report = json.loads(out.read_text())
    assert report["executions"] == 300 and len(report["cases"]) == 4
    assert report["allSame"], report["cases"]
    tenant_30 = [c for c in report["cases"] if (c["scope"], c["days"]) == ("tenant", 30)]
    assert tenant_30[0]["executionsInWindow"] == 300
