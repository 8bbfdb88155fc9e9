"""Profile our engine's step path (issue 15): the linear and the 1,000 x 5-step workloads.

Usage::

    .venv/bin/python bench/_profile.py [--workload linear|throughput|both] [--out DIR]
        [--repeats N] [--top N] [--no-profile] [--profile-samples N]

Runs only our default variant (sync=NORMAL, default chain_commit_steps) on a temporary
SQLite file, prints the wall and CPU time (the process's, all threads: other
work on a shared machine hardly moves it) per step of each sample
(without the profiler), then ``--profile-samples`` profiled samples per workload: the
top functions by tottime and cumtime, with their time per step in microseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import statistics
import sys
import tempfile
import time
from dataclasses import replace

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _ours import OursVariant
from _workloads import FULL

from shared.settings import Settings


def _variant() -> OursVariant:
    defaults = Settings.defaults()
    return OursVariant(
        "ours_default",
        "ours, default",
        replace(FULL),
        synchronous=defaults.local.sqlite_synchronous,
        chain_commit_steps=defaults.engine.chain_commit_steps,
    )


def _steps(workload: str) -> int:
    if workload == "linear":
        return FULL.linear_steps
    return FULL.throughput_executions * FULL.throughput_steps


def _report(stats_path: str, steps: int, top: int) -> None:
    stats = pstats.Stats(stats_path)
    total = stats.total_tt  # type: ignore[attr-defined]
    print(f"  profiled total {total * 1e6 / steps:.1f} µs/step over {steps} steps")
    for key in ("tottime", "cumulative"):
        print(f"  -- top {top} by {key} (µs per step: tottime / cumtime, calls per step)")
        rows = sorted(
            stats.stats.items(),  # type: ignore[attr-defined]
            key=lambda item: item[1][2 if key == "tottime" else 3],
            reverse=True,
        )[:top]
        for (filename, line, name), (_cc, calls, tt, ct, _callers) in rows:
            where = filename.replace(os.getcwd() + "/", "")
            if "site-packages/" in where:
                where = where.split("site-packages/")[1]
            print(
                f"  {tt * 1e6 / steps:8.2f} {ct * 1e6 / steps:8.2f} {calls / steps:6.2f}"
                f"  {where}:{line}({name})"
            )


async def _main(args: argparse.Namespace, directory: str) -> None:
    variant = _variant()
    await variant.open(directory)
    try:
        workloads = ["linear", "throughput"] if args.workload == "both" else [args.workload]
        for workload in workloads:
            steps = _steps(workload)
            run = getattr(variant, workload)
            cpu: list[float] = []
            for _ in range(args.repeats):
                began = time.process_time()
                seconds = await run()
                cpu.append(time.process_time() - began)
                per_s = FULL.throughput_executions / seconds
                print(
                    f"{workload}: {seconds * 1e6 / steps:.1f} µs/step wall,"
                    f" {cpu[-1] * 1e6 / steps:.1f} µs/step CPU"
                    + (f", {per_s:.0f} exec/s" if workload == "throughput" else "")
                )
            print(
                f"{workload}: CPU µs/step min {min(cpu) * 1e6 / steps:.1f}"
                f" median {statistics.median(cpu) * 1e6 / steps:.1f}"
            )
            if args.no_profile:
                continue
            profile = cProfile.Profile(time.process_time)  # CPU: other work hardly moves it
            profile.enable()
            for _ in range(args.profile_samples):
                await run()
            profile.disable()
            path = os.path.join(args.out, f"{workload}.prof")
            profile.dump_stats(path)
            print(f"{workload}: profile in {path}")
            _report(path, steps * args.profile_samples, args.top)
    finally:
        await variant.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workload", default="both", choices=("linear", "throughput", "both"))
    parser.add_argument("--out", default=tempfile.gettempdir())
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--profile-samples", type=int, default=1, help="samples profiled")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="wfe-profile-") as directory:
        asyncio.run(_main(args, directory))
    return 0


if __name__ == "__main__":
    sys.exit(main())
