"""Issue 11, the chaos suite: ``bench/chaos.py --short`` as ``make chaos`` runs it, small.

60 executions (transform, http, branch, parallel, map) through ``wfe dev`` on the
embedded store, with 30% duplicate deliveries, one SIGKILL of the server (restarted
on the same file), 30% upstream 503s with latency, a 3 s full-disk fault and redrives
of what failed. Nothing may be lost, doubled, wrong or left unfinished.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    workdir = tmp_path_factory.mktemp("chaos")
    argv = [sys.executable, str(ROOT / "bench" / "chaos.py"), "--short", "--json"]
    argv += ["--workdir", str(workdir), "--drain-seconds", "120"]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=280)
    assert done.stdout, f"no report (exit {done.returncode}):\n{done.stderr[-3000:]}"
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_the_short_chaos_run_injected_every_fault(report: dict[str, Any]) -> None:
    kinds = [fault["kind"] for fault in report["faults"]]
    assert sorted(kinds) == ["kill", "store_full"]
    assert all(fault["affected"] > 0 for fault in report["faults"]), report["faults"]
    assert report["acknowledged"] == 60
    assert report["counter"]["answered503"] > 0
    assert report["counter"]["requests"] > report["counter"]["effects"]


def test_nothing_is_lost_doubled_wrong_or_stuck(report: dict[str, Any]) -> None:
    summary = {k: report[k] for k in ("lost", "doubled_effects", "wrong_results", "stuck")}
    assert summary == {"lost": 0, "doubled_effects": 0, "wrong_results": 0, "stuck": 0}, report
    assert report["history_errors"] == 0, report["examples"]["history"]
    assert report["effects_missing"] == 0
    assert report["succeeded"] + report["failed_final"] == 60


def test_every_execution_recovers_within_30_seconds_of_a_fault(report: dict[str, Any]) -> None:
    assert report["unrecovered"] == 0, report["faults"]
    assert report["max_recovery_seconds"] <= 30, report["faults"]
