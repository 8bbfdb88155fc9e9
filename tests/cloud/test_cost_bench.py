"""bench/cost.py --json, tiny sizes, against the session's emulators: every workflow
and figure is reported, and the counts add up (a hop per step, a transaction per
commit, fewer calls per step when steps chain inline)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.emulator, pytest.mark.timeout(90)]

ROOT = Path(__file__).resolve().parents[2]
FIGURES = {
    "firestore_reads",
    "firestore_writes",
    "firestore_transactions",
    "firestore_commits",
    "firestore_begin_transactions",
    "firestore_rollbacks",
    "firestore_lookups",
    "firestore_queries",
    "tasks_created",
}


def test_cost_report_of_three_workflows(
    firestore_emulator_host: str, tasks_emulator_host: str
) -> None:
    sizes = ["--steps", "3", "--branches", "2", "--repeats", "1"]
    hosts = ["--firestore-host", firestore_emulator_host, "--tasks-host", tasks_emulator_host]
    done = subprocess.run(
        [sys.executable, "bench/cost.py", "--json", *sizes, *hosts],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=80,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    workflows = report["workflows"]
    assert set(workflows) == {"linear", "parallel", "inline_chained"}
    for figures in workflows.values():
        assert set(figures["per_workflow"]) == set(figures["per_step"]) == FIGURES
        assert all(value >= 0 for value in figures["per_step"].values())
        assert figures["per_workflow"]["firestore_writes"] > 0
    linear, parallel = workflows["linear"], workflows["parallel"]
    chained = workflows["inline_chained"]
    assert linear["step_runs_per_workflow"] == chained["step_runs_per_workflow"] == 3
    assert parallel["step_runs_per_workflow"] == 4  # the fan-out, two branches, the join
    assert linear["per_workflow"]["tasks_created"] == 3, "one hop per step"
    assert chained["per_workflow"]["tasks_created"] == 1, "the chain runs in one hop"
    assert parallel["per_workflow"]["tasks_created"] == 1, "cheap branches run in its hop"
    for figures in workflows.values():
        per = figures["per_workflow"]
        assert per["firestore_transactions"] <= per["firestore_commits"]
    per_step = {name: figures["per_step"] for name, figures in workflows.items()}
    assert per_step["inline_chained"]["firestore_reads"] < per_step["linear"]["firestore_reads"]
