"""bench/memory.py --quick --json runs end to end and reports every figure.

Only the shape of the report is checked (RSS samples for every batch, the slope, the
stated bounds): whether a run stays under the bounds belongs to the benchmark itself,
on a quiet machine, not to a test on a shared one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from _bench_run import run_bench

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "memory.py"


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    done = run_bench(
        SCRIPT,
        "--quick",
        "--json",
        "--warmup",
        "100",
        "--executions",
        "300",
        "--batch",
        "100",
        timeout=80,
    )
    assert "growth after warm-up" in done.stderr  # the human-readable summary
    parsed: dict[str, Any] = json.loads(done.stdout)
    return parsed


def test_rss_is_sampled_after_every_batch(report: dict[str, Any]) -> None:
    assert report["benchmark"] == "bench/memory.py"
    assert report["shape"] == {"executions": 300, "batch": 100, "warmup": 100, "steps": 5}
    samples = report["figures"]["samples"]
    assert [s["finished"] for s in samples] == [100, 200, 300, 400]
    assert all(s["rss_bytes"] > 10 * 1024 * 1024 for s in samples)
    assert [s["seconds"] for s in samples] == sorted(s["seconds"] for s in samples)


def test_rss_figures_and_bounds(report: dict[str, Any]) -> None:
    figures = report["figures"]
    for key in ("rss_before_mb", "rss_runtime_open_mb", "rss_after_mb", "rss_peak_mb"):
        assert 10 < figures[key] < 4096, (key, figures[key])
    assert figures["rss_peak_mb"] >= max(figures["rss_before_mb"], figures["rss_after_mb"])
    peak = max(s["rss_bytes"] for s in figures["samples"]) / 1024 / 1024
    assert figures["rss_peak_mb"] >= round(peak, 2)
    assert isinstance(figures["growth_bytes_per_execution"], float | int)
    assert figures["bound_mb"] == 300
    assert figures["growth_bound_bytes_per_execution"] > 0
    assert figures["pass_bound"] == (figures["rss_peak_mb"] <= figures["bound_mb"])
    assert figures["pass_growth"] == (
        figures["growth_bytes_per_execution"] <= figures["growth_bound_bytes_per_execution"]
    )
    assert figures["executions_per_s"] > 0
