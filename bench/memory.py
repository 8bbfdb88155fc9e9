"""Memory benchmark (issue 15): 10,000 executions must not grow the process.

Usage::

    .venv/bin/python bench/memory.py [--json] [--quick] [--executions N] [--warmup W]
                                     [--batch B] [--trace]

The real local runtime (``build_local``: SQLite file in WAL mode in a temporary
directory, the in-process dispatcher, default workers, rate limits off) runs ``warmup``
then ``executions`` 5-step linear executions (bench/_workloads.py's
``linear_definition``), ``batch`` started at once, the next batch when the dispatcher is
idle. The resident set size (``VmRSS`` of /proc/self/status, after ``gc.collect()``) is
sampled before the runtime opens, after every batch and after the end (runtime closed).

Reported: RSS before/after, the peak, and the growth per finished execution: the
least-squares slope of RSS over finished executions, over the measured batches (from
the end of the warm-up). The warm-up is 10,000 executions in the full run because two
caches keyed by execution id are LRUs of 10,000 entries (``ID_CACHE_SIZE``): they grow
until then by design, and that growth is reported separately
(``growth_during_warmup_bytes_per_execution``). The bounds are stated in the report:
``bound_mb`` (the process's RSS never above it) and
``growth_bound_bytes_per_execution`` (the measured slope); both are pass/fail.

``--trace`` also runs tracemalloc from the end of the warm-up and prints the 15 sites
that grew most (slow: use it to find a leak, not for the figures). A human-readable
summary goes to stderr; ``--json`` prints the report on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
import tempfile
import time
import tracemalloc
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _workloads import linear_definition

from shared.app.service import StartRequest
from shared.composition import build_local
from shared.models import ExecutionStatus
from shared.settings import Settings

BOUND_MB = 300.0
"""The process's RSS must stay under this for the whole run."""
GROWTH_BOUND_BYTES = 200.0
"""Growth per finished execution after the warm-up (slope) must stay under this: 10,000
executions would add 2 MB at most (noise from the allocator and SQLite's page cache)."""

_JOIN_TIMEOUT = 600.0


@dataclass(frozen=True)
class Shape:
    executions: int
    """Measured executions, after the warm-up."""
    batch: int
    warmup: int
    """Executions run before the measured ones (not in the slope)."""
    steps: int = 5


ID_CACHE_SIZE = 10_000
"""The bounded caches keyed by execution id (the dispatcher's tenant cache in
shared/adapters/local_queue.py, the tenant quotas' in shared/app/tenants.py: LRU, 10,000
entries each) grow until this many executions have run, then stay flat: the full run's
warm-up fills them, so the measured slope is what is left after they are full."""

FULL = Shape(executions=10_000, batch=500, warmup=ID_CACHE_SIZE)
QUICK = Shape(executions=900, batch=150, warmup=300)


class BenchFailed(RuntimeError):
    """A batch did not finish, or an execution did not succeed."""


def rss_bytes() -> int:
    """``VmRSS`` of this process."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise BenchFailed("no VmRSS in /proc/self/status")


def sample() -> int:
    gc.collect()
    return rss_bytes()


def slope(points: list[tuple[int, int]]) -> float:
    """Least-squares slope of (finished executions, rss bytes)."""
    if len(points) < 2:
        return 0.0
    xs = [float(x) for x, _ in points]
    ys = [float(y) for _, y in points]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    if spread == 0:
        return 0.0
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread


async def run(shape: Shape, directory: str, trace: bool) -> dict[str, Any]:
    before = sample()
    settings = Settings.local_mode(os.path.join(directory, "memory.db"), rate_limits=False)
    samples: list[dict[str, Any]] = []
    top: list[str] = []
    began = time.perf_counter()
    async with build_local(settings) as runtime:
        opened = sample()
        app = runtime.app
        workflow = await app.create_workflow(linear_definition(shape.steps, "bench-memory"))
        request = StartRequest(workflow.id, {})
        finished = 0
        snapshot = None
        total = shape.warmup + shape.executions
        batches = -(-total // shape.batch)
        warmup_batches = -(-shape.warmup // shape.batch)
        for index in range(batches):
            count = min(shape.batch, total - finished)
            started = await asyncio.gather(*(app.start_execution(request) for _ in range(count)))
            if not await runtime.queue.join(_JOIN_TIMEOUT):
                raise BenchFailed(f"batch {index} did not finish in {_JOIN_TIMEOUT} s")
            last = await app.get_execution(started[-1].id)
            if last.status != ExecutionStatus.SUCCEEDED or last.variables.get("x") != shape.steps:
                raise BenchFailed(f"execution {last.id} ended {last.status}: {last.error}")
            finished += count
            samples.append(
                {
                    "batch": index,
                    "finished": finished,
                    "rss_bytes": sample(),
                    "seconds": round(time.perf_counter() - began, 3),
                }
            )
            if trace and index == warmup_batches - 1:
                tracemalloc.start(10)
                snapshot = tracemalloc.take_snapshot()
        if snapshot is not None:
            gc.collect()
            grown = tracemalloc.take_snapshot().compare_to(snapshot, "traceback")
            tracemalloc.stop()
            for stat in grown[:15]:
                where = " <- ".join(str(frame) for frame in stat.traceback.format()[-6::2])
                top.append(f"{stat.size_diff / 1024:+.1f} KiB {stat.count_diff:+d} blocks: {where}")
        before_close = sample()
    after = sample()
    warmup_batches = -(-shape.warmup // shape.batch)
    warm = samples[warmup_batches - 1] if warmup_batches else None
    measured = [(s["finished"], s["rss_bytes"]) for s in samples[warmup_batches - 1 :]]
    per_execution = slope(measured)
    during_warmup = slope(
        [(0, opened)] + [(s["finished"], s["rss_bytes"]) for s in samples[:warmup_batches]]
    )
    peak = max([before, opened, before_close, after, *(s["rss_bytes"] for s in samples)])
    mb = 1024 * 1024
    return {
        "rss_before_mb": round(before / mb, 2),
        "rss_runtime_open_mb": round(opened / mb, 2),
        "rss_after_warmup_mb": round(warm["rss_bytes"] / mb, 2) if warm else None,
        "rss_last_batch_mb": round(samples[-1]["rss_bytes"] / mb, 2),
        "rss_after_mb": round(after / mb, 2),
        "rss_peak_mb": round(peak / mb, 2),
        "growth_bytes_per_execution": round(per_execution, 2),
        "growth_mb_per_10k_executions": round(per_execution * 10_000 / mb, 3),
        "growth_during_warmup_bytes_per_execution": round(during_warmup, 2),
        "id_cache_size": ID_CACHE_SIZE,
        "bound_mb": BOUND_MB,
        "growth_bound_bytes_per_execution": GROWTH_BOUND_BYTES,
        "pass_bound": peak / mb <= BOUND_MB,
        "pass_growth": per_execution <= GROWTH_BOUND_BYTES,
        "executions_per_s": round(finished / samples[-1]["seconds"], 1),
        "samples": samples,
        "tracemalloc_top": top,
    }


def summary(report: dict[str, Any]) -> str:
    figures = report["figures"]
    lines = [
        f"{report['shape']['warmup']} warm-up + {report['shape']['executions']} measured"
        f" executions of {report['shape']['steps']} steps,"
        f" batches of {report['shape']['batch']} ({figures['executions_per_s']} executions/s)",
        f"rss before {figures['rss_before_mb']} MB, runtime open"
        f" {figures['rss_runtime_open_mb']} MB, after warm-up {figures['rss_after_warmup_mb']}"
        f" MB, last batch {figures['rss_last_batch_mb']} MB, after close"
        f" {figures['rss_after_mb']} MB, peak {figures['rss_peak_mb']} MB",
        f"growth after warm-up: {figures['growth_bytes_per_execution']} bytes/execution"
        f" ({figures['growth_mb_per_10k_executions']} MB per 10k); during the warm-up"
        f" {figures['growth_during_warmup_bytes_per_execution']} bytes/execution (the"
        f" {figures['id_cache_size']}-entry caches keyed by execution id filling up)",
        f"bound: peak <= {figures['bound_mb']:g} MB ->"
        f" {'PASS' if figures['pass_bound'] else 'FAIL'};"
        f" growth <= {figures['growth_bound_bytes_per_execution']:g} bytes/execution ->"
        f" {'PASS' if figures['pass_growth'] else 'FAIL'}",
    ]
    if figures["tracemalloc_top"]:
        lines.append("tracemalloc, growth since the warm-up:")
        lines += [f"  {line}" for line in figures["tracemalloc_top"]]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the report on stdout")
    parser.add_argument("--quick", action="store_true", help="a short run (smoke test)")
    parser.add_argument("--executions", type=int)
    parser.add_argument("--batch", type=int)
    parser.add_argument("--warmup", type=int, help="executions before the measured ones")
    parser.add_argument("--trace", action="store_true", help="tracemalloc after the warm-up")
    args = parser.parse_args()
    shape = QUICK if args.quick else FULL
    if args.executions:
        shape = Shape(**{**asdict(shape), "executions": args.executions})
    if args.warmup:
        shape = Shape(**{**asdict(shape), "warmup": args.warmup})
    if args.batch:
        shape = Shape(**{**asdict(shape), "batch": args.batch})
    if shape.executions < 2 * shape.batch or shape.warmup < shape.batch:
        parser.error("need one warm-up batch and at least two measured batches")
    began = datetime.now(UTC)
    load = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory(prefix="wfe-bench-memory-") as directory:
        figures = asyncio.run(run(shape, directory, args.trace))
    report: dict[str, Any] = {
        "benchmark": "bench/memory.py",
        "quick": args.quick,
        "started_at": began.isoformat(),
        "machine": {
            "cpu_count": os.cpu_count(),
            "load_average_at_start": load,
            "python": sys.version.split()[0],
        },
        "shape": asdict(shape),
        "figures": figures,
    }
    print(summary(report), file=sys.stderr)
    if args.json:
        print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
