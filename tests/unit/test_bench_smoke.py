"""bench/engine.py --quick --json runs end to end and reports every figure.

Only the shape of the report is checked (keys present, numbers positive): the speed
targets belong to the benchmark itself, not to a timed test on a shared machine.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from _bench_run import run_bench

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "engine.py"

FIGURES = (
    "linear_ms_per_step",
    "fanout_ms_per_workflow",
    "fanout_ms_per_step",
)
WIDE = ("wide_ms_per_workflow", "map_ms_per_workflow")
VARIANTS = (
    "ours_equal_chained",
    "ours_equal_per_step_commit",
    "ours_default",
    "langgraph_sqlite_saver",
    "langgraph_sqlite_saver_sync",
    "langgraph_async_saver_gather",
    "floor_equal",
    "floor_normal",
)
RATIOS = (
    "speedup_step",
    "speedup_step_per_commit",
    "speedup_throughput",
    "speedup_fanout",
    "speedup_fanout_100",
    "speedup_map",
)


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    done = run_bench(SCRIPT, "--quick", "--json", timeout=110)
    assert "linear ms/step" in done.stderr  # the human-readable table
    parsed: dict[str, Any] = json.loads(done.stdout)
    return parsed


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def test_machine_and_durability_are_reported(report: dict[str, Any]) -> None:
    machine = report["machine"]
    for key in ("cpu_count", "python", "sqlite", "langgraph"):
        assert machine[key], key
    saver = report["durability"]["langgraph_saver"]
    assert saver["journal_mode"] == "wal"
    assert saver["synchronous"] in ("OFF", "NORMAL", "FULL", "EXTRA")
    assert report["durability"]["equal_synchronous"] == saver["synchronous"]
    assert report["quick"] is True
    assert report["shape"]["repeats"] >= 1


def test_every_variant_has_positive_medians(report: dict[str, Any]) -> None:
    variants = report["variants"]
    assert set(VARIANTS) <= set(variants)
    repeats = report["shape"]["repeats"]
    for key in VARIANTS:
        variant = variants[key]
        assert variant["label"] and variant["config"]["system"], key
        names = (
            FIGURES
            if key == "langgraph_sqlite_saver_sync"
            else (*FIGURES, *WIDE, "throughput_exec_per_s")
        )
        for name in names:
            figure = variant[name]
            assert _positive(figure["median"]), (key, name)
            assert len(figure["samples"]) == repeats, (key, name)
            assert all(_positive(sample) for sample in figure["samples"]), (key, name)


def test_equal_durability_variants_use_the_saver_level(report: dict[str, Any]) -> None:
    level = report["durability"]["equal_synchronous"]
    variants = report["variants"]
    for key in ("ours_equal_chained", "ours_equal_per_step_commit", "floor_equal"):
        assert variants[key]["config"]["synchronous"] == level, key
    assert variants["ours_equal_per_step_commit"]["config"]["chain_commit_steps"] == 1


def test_ratios_and_targets(report: dict[str, Any]) -> None:
    for name in RATIOS:
        assert _positive(report["ratios"][name]), name
    targets = report["targets"]
    assert set(RATIOS) <= set(targets) and targets["ours_step_us"] == 50
    assert targets["ours_exec_per_s"] == 5000
    assert set(report["meets_targets"]) == set(targets)
    assert all(isinstance(met, bool) for met in report["meets_targets"].values())
    absolute = report["absolute"]
    assert _positive(absolute["ours_step_us"]) and _positive(absolute["ours_exec_per_s"])
    # "at most" for the step cost, "at least" for everything else
    assert report["meets_targets"]["ours_step_us"] == (absolute["ours_step_us"] <= 50)
    for name in RATIOS:
        assert report["meets_targets"][name] == (report["ratios"][name] >= targets[name])


def test_ratios_of_the_fastest_samples(report: dict[str, Any]) -> None:
    best = report["best_samples"]
    assert set(RATIOS) <= set(best["ratios"])
    assert all(_positive(best["ratios"][name]) for name in RATIOS)
    # the fastest sample is never slower than the median one
    assert best["absolute"]["ours_step_us"] <= report["absolute"]["ours_step_us"]
    assert best["absolute"]["ours_exec_per_s"] >= report["absolute"]["ours_exec_per_s"]
