"""bench/_profile.py runs each workload, under cProfile and under py-spy (``--sampled``).

Only the output's shape: a median per workload, a profile table, and for ``--sampled``
the workload's sample count and shares (the figures belong to docs/performance.md).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from _bench_run import run_bench

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "_profile.py"


def _run(*args: str) -> str:
    done = run_bench(SCRIPT, *args, timeout=140)
    return done.stdout


def test_the_fan_out_workload_is_profiled() -> None:
    out = _run("--workload", "fanout", "--repeats", "2", "--top", "5")
    assert re.search(r"fanout: CPU µs/step min [\d.]+ median [\d.]+", out)
    assert "-- top 5 by tottime" in out and "-- top 5 by cumulative" in out


def test_sampled_profiles_count_the_workloads_own_samples() -> None:
    out = _run("--sampled", "--workload", "fanout", "--repeats", "200", "--top", "5")
    assert "!!!" not in out, out  # py-spy is installed by make install and may trace here
    samples = re.search(r"fanout: (\d+) samples in the workload", out)
    assert samples is not None and int(samples.group(1)) > 0
    shares = [float(share) for share in re.findall(r"^\s+([\d.]+)%", out, re.MULTILINE)]
    assert len(shares) == 10  # five self, five inclusive
    assert max(shares) <= 100.0 and shares[5] > 90  # the first inclusive row: main
