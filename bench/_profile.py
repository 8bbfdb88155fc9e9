"""Profile our engine's step path (issue 15): the linear and the 1,000 x 5-step workloads.

Usage::

    .venv/bin/python bench/_profile.py [--workload linear|throughput|fanout|both|all]
        [--out DIR] [--repeats N] [--top N] [--no-profile] [--profile-samples N]
        [--sampled]

Runs only our default variant (sync=NORMAL, default chain_commit_steps) on a temporary
SQLite file, prints the wall and CPU time (the process's, all threads: other
work on a shared machine hardly moves it) per step of each sample
(without the profiler), then ``--profile-samples`` profiled samples per workload: the
top functions by tottime and cumtime, with their time per step in microseconds.

cProfile slows every Python call several times over, which inflates small functions.
``--sampled`` runs the same workloads (``--repeats`` samples each, unprofiled) under the
``py-spy`` sampling profiler instead and prints, per workload, the share of the samples
spent in each function (self, then inclusive), counted from the workload's own frames
(imports and setup left out): what docs/performance.md quotes.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
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


WORKLOADS = ("linear", "throughput", "fanout")
SAMPLED_REPEATS = {"linear": 300, "throughput": 6, "fanout": 1500}
"""Samples of each workload under py-spy: about 5 s of each on this machine."""


def _workloads(choice: str) -> list[str]:
    if choice == "all":
        return list(WORKLOADS)
    if choice == "both":
        return ["linear", "throughput"]
    return [choice]


def _steps(workload: str) -> int:
    if workload == "linear":
        return FULL.linear_steps
    if workload == "fanout":
        return FULL.fanout_steps
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
        for workload in _workloads(args.workload):
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


def _frame(frame: str) -> str:
    """``function (path:line)`` as ``function (path)``, paths from the project or the
    site-packages root."""
    frame = re.sub(r":\d+\)$", ")", frame)
    return re.sub(r" \(.*?/(site-packages|main)/", " (", frame)


def sampled(workload: str, repeats: int, top: int) -> None:
    """Run ``workload`` under py-spy and print its self and inclusive shares."""
    spy = shutil.which("py-spy", path=os.path.dirname(sys.executable)) or shutil.which("py-spy")
    if spy is None:
        print("!!! py-spy is not installed (make install puts it in .venv): not sampled")
        return
    with tempfile.TemporaryDirectory(prefix="wfe-spy-") as folder:
        raw = os.path.join(folder, f"{workload}.raw")
        command = [spy, "record", "-r", "400", "-f", "raw", "-o", raw, "--", sys.executable]
        command += [__file__, "--workload", workload, "--no-profile", "--repeats", str(repeats)]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        print("\n".join(line for line in done.stdout.splitlines() if "median" in line))
        if done.returncode != 0 or not os.path.exists(raw):
            print(f"!!! py-spy failed: {done.stderr.strip()[-500:]}")
            return
        own: Counter[str] = Counter()
        inclusive: Counter[str] = Counter()
        total = 0
        with open(raw) as lines:
            for line in lines:
                stack, _, count = line.rstrip().rpartition(" ")
                frames = stack.split(";")
                if not any(frame.startswith("main (") for frame in frames):
                    continue  # imports, not the workloads
                weight = int(count)
                total += weight
                names = [_frame(frame) for frame in frames]
                own[names[-1]] += weight
                for name in set(names):
                    inclusive[name] += weight
    print(f"{workload}: {total} samples in the workload")
    for title, counts in (("self", own), ("inclusive", inclusive)):
        print(f"  -- top {top} by {title} share of the samples")
        for name, count in counts.most_common(top):
            print(f"  {100 * count / max(total, 1):5.1f}%  {name}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--workload",
        default="both",
        choices=(*WORKLOADS, "both", "all"),
        help="both: linear and throughput",
    )
    parser.add_argument("--out", default=tempfile.gettempdir())
    parser.add_argument(
        "--repeats", type=int, help="samples per workload (3; sampled: about 5 s of each)"
    )
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--profile-samples", type=int, default=1, help="samples profiled")
    parser.add_argument("--sampled", action="store_true", help="py-spy instead of cProfile")
    args = parser.parse_args()
    if args.sampled:
        for workload in _workloads(args.workload):
            sampled(workload, args.repeats or SAMPLED_REPEATS[workload], args.top)
        return 0
    args.repeats = args.repeats or 3
    with tempfile.TemporaryDirectory(prefix="wfe-profile-") as directory:
        asyncio.run(_main(args, directory))
    return 0


if __name__ == "__main__":
    sys.exit(main())
