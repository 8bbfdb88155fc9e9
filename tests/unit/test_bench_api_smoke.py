"""bench/api.py --quick --json runs end to end against a real ``wfe dev`` process.

Only the shape of the report is checked (every figure present, numbers sane, every
stream delivered every execution's terminal event to every subscriber): the throughput
and latency targets belong to the benchmark itself, not to a timed test on a shared
machine.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from _bench_run import run_bench

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "api.py"

EXECUTIONS = 8
REQUESTS = ("get_execution", "post_execute", "graphql_execution")
PROTOCOLS = ("ws", "sse", "graphql")
TARGETS = (
    "rest_reads_per_s",
    "rest_reads_per_server_core_per_s",
    "stream_p99_ms_ws",
    "stream_p99_ms_sse",
    "stream_p99_ms_graphql",
)


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    done = run_bench(
        SCRIPT,
        "--quick",
        "--json",
        "--duration",
        "0.3",
        "--executions",
        str(EXECUTIONS),
        "--subscribers",
        "1,4",
        # the emulator path starts three emulators: over a minute
        "--no-emulator",
        timeout=140,
    )
    assert "EMULATOR PATH NOT MEASURED: --no-emulator" in done.stderr  # said loudly
    assert "stream_p99_ms_ws" in done.stderr  # the human-readable summary
    parsed: dict[str, Any] = json.loads(done.stdout)
    return parsed


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


def test_rest_and_graphql_figures(report: dict[str, Any]) -> None:
    assert report["benchmark"] == "bench/api.py"
    assert report["quick"] is True
    assert report["server"]["tracebacks_logged"] == 0
    for name in REQUESTS:
        assert set(report["rest"][name]) == {"1", "50"}
        for clients, figure in report["rest"][name].items():
            assert figure["clients"] == int(clients)
            assert figure["requests"] >= int(clients), (name, figure)
            assert figure["requests_per_s"] > 0
            assert all(_number(figure[key]) for key in ("p50_ms", "p99_ms", "max_ms"))
            assert figure["p50_ms"] <= figure["p99_ms"] <= figure["max_ms"]
            cpu = figure["server_cpu_ms_per_request"]
            assert _number(cpu) and cpu > 0, figure  # the server worked for each request
            assert figure["per_server_core_per_s"] == round(1000 / cpu, 1)


def test_every_stream_delivered_every_execution(report: dict[str, Any]) -> None:
    for protocol in PROTOCOLS:
        figures = report["streams"][protocol]
        assert set(figures) == {"1", "4"}
        for subscribers, figure in figures.items():
            assert figure["complete"], figure
            fan_out = 1 if protocol == "graphql" else int(subscribers)
            assert figure["terminal_events"] == EXECUTIONS * fan_out
            latency = figure["latency"]
            # a wait step and three transforms: at least their started/succeeded events
            assert latency["count"] >= EXECUTIONS * fan_out * 4, figure
            assert 0 <= latency["p50_ms"] <= latency["p99_ms"] <= latency["max_ms"]
            assert latency["max_ms"] < 60_000  # receive minus commit time: same clock


def test_targets_and_emulator_are_reported(report: dict[str, Any]) -> None:
    assert set(report["targets"]) == set(TARGETS)
    for name in TARGETS:
        target = report["targets"][name]
        assert isinstance(target["pass"], bool)
        assert _number(target["value"])
    assert report["targets"]["stream_p99_ms_ws"]["at_target_shape"] is False
    assert report["emulator"] == {"skipped": "--no-emulator"}
