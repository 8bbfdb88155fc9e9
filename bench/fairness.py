"""Fairness benchmark (issue 13): one tenant's flood must not delay another tenant's starts.

Usage::

    .venv/bin/python bench/fairness.py [--json] [--quick] [--flood N] [--victims M]

The real local runtime (``build_local``: SQLite file in WAL mode, the in-process
dispatcher, default workers) in a temporary directory, one fresh database per scenario:

(a) ``alone``: tenant B starts ``victims`` executions, nobody else works;
(b) ``fair``: tenant A starts ``flood`` executions as fast as it can (``concurrency``
    start requests in flight) while B starts its ``victims`` spread over A's flood;
    the dispatcher shares its workers between tenants (the default);
(c) ``fifo``: the same as (b) with fairness off (``build_local(fair_dispatch=False)``):
    one due-time queue for everybody, as before issue 13;
(d) ``fair_fifo_store``: (b) with the SQLite writer's group commits first come, first
    served (``SqliteStore.group_per_tenant = None``: every waiting transaction in the
    next group, as before the per-tenant groups) and without the per-tenant start gate
    (``WorkflowApp.start_gate = None``): B's start call waits for a group of A's
    transactions and a loop round of A's 20 start calls; A's throughput without them;
(e) ``a_alone`` and ``a_alone_fifo_store``: A's flood with nobody else, with and
    without the per-tenant groups and gate (neither should hold a tenant alone);
(f) ``fair_no_freeze``: (b) without freezing the heap built at startup. Every other
    scenario freezes it once its runtime is built, as ``wfe dev`` and the functions do
    (``shared.composition.heap``), and unfreezes it when done.

Each scenario also reports the cyclic garbage collector's collections while it ran
(``gc.callbacks``): how many full (generation 2) collections, their longest and total
pause, and the longest pause of any collection; a full collection stops the event loop.
And the WAL catch-ups the store ran under its writer (count, longest, total): each
holds every transaction while it runs.

A's throughput (its starts per second while flooding) is printed for (b), (c) and (d):
the fair shares must not cost the flood its speed.

Both tenants run the same short workflow (three transform steps). B's *start latency*
is from just before its start request to the moment its first step run started (the
run's ``started_at``, the engine's clock). B's k-th start is sent when A has sent
k/victims of its flood, so B's starts are spread over the whole flood in (b) and (c);
in (a) they are sent at the mean spacing that (b) had. Reported: p50, p99 and max of B's
latency per scenario, and the ratios (b)/(a) (the target: under 2) and (c)/(a), all
measured in the same run. A human-readable summary goes to stderr; ``--json`` prints
the report on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from shared.adapters.sqlite_store import GROUP_PER_TENANT, SqliteStore
from shared.app.service import StartRequest, WorkflowApp
from shared.composition import LocalRuntime, build_local
from shared.composition.heap import freeze_startup_heap
from shared.models import ExecutionStatus
from shared.settings import Settings

TARGET_RATIO = 2.0
"""B's p50 and p99 with A's flood (fair dispatch) over B alone must stay under this."""

_JOIN_TIMEOUT = 600.0
SCENARIOS = (
    "alone",
    "fair",
    "fifo",
    "fair_fifo_store",
    "a_alone",
    "a_alone_fifo_store",
    "fair_no_freeze",
)


@dataclass(frozen=True)
class Shape:
    flood: int
    """Executions tenant A starts."""
    victims: int
    """Executions tenant B starts, spread over A's flood."""
    concurrency: int
    """A's start requests in flight at once."""
    workers: int = Settings.defaults().local.workers
    """The local dispatcher's workers (``WFE_LOCAL_WORKERS``)."""
    steps: int = 3


FULL = Shape(flood=10_000, victims=100, concurrency=20)
QUICK = Shape(flood=1_000, victims=20, concurrency=20)


class BenchFailed(RuntimeError):
    """A scenario did not finish, or finished with a wrong result."""


def definition(steps: int) -> dict[str, Any]:
    """``steps`` transform steps in a row, each adding one to ``vars.x``."""
    chain: list[dict[str, Any]] = []
    for index in range(steps):
        step: dict[str, Any] = {
            "id": f"s{index}",
            "type": "transform",
            "config": {"set": {"x": "${vars.x + 1}"}},
        }
        if index + 1 < steps:
            step["nextSteps"] = [f"s{index + 1}"]
        chain.append(step)
    return {"name": "bench-fairness", "variables": {"x": 0}, "steps": chain}


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def summary(latencies_ms: list[float]) -> dict[str, Any]:
    if not latencies_ms:  # a scenario without B (a_alone)
        return {"count": 0, "p50_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0, "mean_ms": 0.0}
    return {
        "count": len(latencies_ms),
        "p50_ms": round(percentile(latencies_ms, 50), 2),
        "p99_ms": round(percentile(latencies_ms, 99), 2),
        "max_ms": round(max(latencies_ms), 2),
        "mean_ms": round(statistics.fmean(latencies_ms), 2),
    }


class GcPauses:
    """The garbage collector's collections while a scenario runs (``gc.callbacks``)."""

    def __init__(self) -> None:
        self._began: float | None = None
        self.pauses_ms: dict[int, list[float]] = {0: [], 1: [], 2: []}

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
        elif self._began is not None:
            elapsed = (time.perf_counter() - self._began) * 1000
            self.pauses_ms[info["generation"]].append(elapsed)
            self._began = None

    def __enter__(self) -> GcPauses:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self)

    def summary(self) -> dict[str, Any]:
        full = self.pauses_ms[2]
        every = [p for pauses in self.pauses_ms.values() for p in pauses]
        return {
            "collections": {str(g): len(p) for g, p in self.pauses_ms.items()},
            "gen2_max_ms": round(max(full, default=0.0), 2),
            "gen2_total_ms": round(sum(full), 2),
            "max_pause_ms": round(max(every, default=0.0), 2),
        }


class WalCatchUps:
    """The WAL catch-ups a scenario's store ran under its writer (the checkpoint the
    writer runs itself when the WAL passed ``WAL_BYTES_MOST``): each holds every
    transaction, so one start meeting one waits for it. Timed around the store's
    ``_off_loop`` call for that checkpoint (a look inside the store, for the bench)."""

    def __init__(self, store: SqliteStore) -> None:
        self.held_ms: list[float] = []
        real = store._off_loop

        async def timed(sql: str, conn: Any = None) -> bool:
            if conn is not None or not sql.startswith("PRAGMA wal_checkpoint"):
                return await real(sql, conn)
            began = time.perf_counter()
            try:
                return await real(sql, conn)
            finally:
                self.held_ms.append((time.perf_counter() - began) * 1000)

        store._off_loop = timed  # type: ignore[method-assign]

    def summary(self) -> dict[str, Any]:
        return {
            "count": len(self.held_ms),
            "max_ms": round(max(self.held_ms, default=0.0), 2),
            "total_ms": round(sum(self.held_ms), 2),
        }


class Scenario:
    """One fresh runtime, tenants A and B, and B's measured starts."""

    def __init__(
        self, name: str, directory: str, shape: Shape, *, fair: bool, fair_store: bool = True
    ) -> None:
        self.name = name
        self.shape = shape
        settings = Settings.local_mode(
            os.path.join(directory, f"{name}.db"),
            rate_limits=False,  # a benchmark is one runaway client: measure the dispatcher
            workers=shape.workers,
        )
        self.runtime: LocalRuntime = build_local(settings, fair_dispatch=fair)
        if isinstance(self.runtime.store, SqliteStore):
            self.runtime.store.group_per_tenant = GROUP_PER_TENANT if fair_store else None
        if not fair_store:  # the state before both: no per-tenant start gate either
            self.runtime.app.start_gate = None
        assert isinstance(self.runtime.store, SqliteStore)
        self.catch_ups = WalCatchUps(self.runtime.store)
        self.workflows: dict[str, str] = {}
        self.sent_a = 0
        self.a_ids: list[str] = []
        self.b_starts: list[tuple[str, datetime, datetime]] = []

    def app(self, tenant: str) -> WorkflowApp:
        return self.runtime.app.for_tenant(tenant)

    async def setup(self) -> None:
        for tenant in ("tenant-a", "tenant-b"):
            created = await self.app(tenant).create_workflow(definition(self.shape.steps))
            self.workflows[tenant] = created.id

    async def flood(self) -> None:
        """A's starts, ``concurrency`` in flight, as fast as the runtime takes them."""
        app, request = self.app("tenant-a"), StartRequest(self.workflows["tenant-a"], {})
        remaining = self.shape.flood

        async def sender() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                self.sent_a += 1
                self.a_ids.append((await app.start_execution(request)).id)

        await asyncio.gather(*(sender() for _ in range(self.shape.concurrency)))

    async def start_b(self) -> None:
        app, request = self.app("tenant-b"), StartRequest(self.workflows["tenant-b"], {})
        sent = datetime.now(UTC)
        execution = await app.start_execution(request)
        self.b_starts.append((execution.id, sent, datetime.now(UTC)))

    async def victims_during_flood(self) -> None:
        """B's k-th start once A has sent k/victims of its flood."""
        step = self.shape.flood / self.shape.victims
        for k in range(self.shape.victims):
            while self.sent_a < k * step:
                await asyncio.sleep(0.001)
            await self.start_b()

    async def victims_alone(self, gap: float) -> None:
        for _ in range(self.shape.victims):
            began = time.perf_counter()
            await self.start_b()
            await asyncio.sleep(max(0.0, gap - (time.perf_counter() - began)))

    async def latencies_ms(self) -> dict[str, list[float]]:
        """B's latencies, after checking every execution succeeded: ``start`` (request to
        first step running), ``call`` (request to the start call's return: admission and
        the store) and ``dispatch`` (return to first step running, 0 if it ran first)."""
        store = self.runtime.store
        latencies: list[float] = []
        calls: list[float] = []
        dispatch: list[float] = []
        for execution_id, sent, returned in self.b_starts:
            runs = await store.list_runs(execution_id)
            first = min((r.started_at for r in runs if r.started_at), default=None)
            if first is None:
                raise BenchFailed(f"{self.name}: B's {execution_id} has no started step")
            latencies.append((first - sent).total_seconds() * 1000)
            calls.append((returned - sent).total_seconds() * 1000)
            dispatch.append(max(0.0, (first - returned).total_seconds() * 1000))
        for execution_id in [e for e, _, _ in self.b_starts] + self.a_ids:
            execution = await store.get_execution(execution_id)
            if execution is None or execution.status != ExecutionStatus.SUCCEEDED:
                status = execution.status if execution else "missing"
                raise BenchFailed(f"{self.name}: execution {execution_id} ended {status}")
        return {"start": latencies, "call": calls, "dispatch": dispatch}


async def run_scenario(
    name: str,
    directory: str,
    shape: Shape,
    *,
    fair: bool,
    flood: bool,
    gap: float = 0.0,
    fair_store: bool = True,
    victims: bool = True,
    freeze: bool = True,
) -> dict[str, Any]:
    scenario = Scenario(name, directory, shape, fair=fair, fair_store=fair_store)
    async with scenario.runtime:
        await scenario.setup()
        frozen = freeze_startup_heap() if freeze else 0
        try:
            with GcPauses() as collections:
                began = time.perf_counter()
                flood_seconds = 0.0
                if flood:
                    flooding = asyncio.create_task(scenario.flood())
                    if victims:
                        await scenario.victims_during_flood()
                    await flooding
                    flood_seconds = time.perf_counter() - began
                else:
                    await scenario.victims_alone(gap)
                sent = time.perf_counter() - began
                if not await scenario.runtime.queue.join(_JOIN_TIMEOUT):
                    raise BenchFailed(f"{name}: did not finish in {_JOIN_TIMEOUT}s")
                elapsed = time.perf_counter() - began
        finally:
            gc.unfreeze()  # the next scenario freezes its own
        latencies = await scenario.latencies_ms()
        stats = scenario.runtime.queue.stats
    return {
        "fair_dispatch": fair,
        "fair_store_groups": fair_store,
        "flood": shape.flood if flood else 0,
        "a_starts_per_second": round(shape.flood / flood_seconds, 1) if flood else None,
        "victims": shape.victims if victims else 0,
        "b_start_latency": summary(latencies["start"]),
        "b_start_call": summary(latencies["call"]),
        "b_dispatch_latency": summary(latencies["dispatch"]),
        "starts_sent_seconds": round(sent, 3),
        "drained_seconds": round(elapsed, 3),
        "deliveries": stats.delivered,
        "unresolved_tenants": stats.unresolved,
        "heap_frozen_objects": frozen,
        "gc": collections.summary(),
        "wal_catch_ups": scenario.catch_ups.summary(),
    }


async def measure(shape: Shape, directory: str) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    print(f"fair: A floods {shape.flood}, B starts {shape.victims}", file=sys.stderr)
    results["fair"] = await run_scenario("fair", directory, shape, fair=True, flood=True)
    gap = results["fair"]["starts_sent_seconds"] / shape.victims
    print(f"alone: B starts {shape.victims}, one every {gap * 1000:.1f} ms", file=sys.stderr)
    results["alone"] = await run_scenario(
        "alone", directory, shape, fair=True, flood=False, gap=gap
    )
    print("fifo: as fair, with fair dispatch off", file=sys.stderr)
    results["fifo"] = await run_scenario("fifo", directory, shape, fair=False, flood=True)
    for name, fair_store in (("a_alone", True), ("a_alone_fifo_store", False)):
        print(f"{name}: A floods alone", file=sys.stderr)
        results[name] = await run_scenario(
            name, directory, shape, fair=True, flood=True, fair_store=fair_store, victims=False
        )
    print("fair_fifo_store: as fair, with FIFO group commits", file=sys.stderr)
    results["fair_fifo_store"] = await run_scenario(
        "fair_fifo_store", directory, shape, fair=True, flood=True, fair_store=False
    )
    print("fair_no_freeze: as fair, the startup heap not frozen", file=sys.stderr)
    results["fair_no_freeze"] = await run_scenario(
        "fair_no_freeze", directory, shape, fair=True, flood=True, freeze=False
    )
    return results


def ratio(
    results: dict[str, dict[str, Any]],
    scenario: str,
    figure: str,
    base: str = "alone",
    metric: str = "b_start_latency",
) -> float:
    over = float(results[base][metric][figure])
    return round(float(results[scenario][metric][figure]) / over, 2) if over else float("inf")


def run(shape: Shape, quick: bool) -> dict[str, Any]:
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="wfe-fairness-") as directory:
        load = [round(x, 2) for x in os.getloadavg()]
        results = asyncio.run(measure(shape, directory))
    ratios = {
        f"{scenario}_over_alone_{figure[:3]}": ratio(results, scenario, figure)
        for scenario in ("fair", "fifo", "fair_fifo_store", "fair_no_freeze")
        for figure in ("p50_ms", "p99_ms")
    }
    a_rate = {name: results[name]["a_starts_per_second"] for name in results if name != "alone"}
    ratios["a_throughput_fair_over_fair_fifo_store"] = round(
        a_rate["fair"] / a_rate["fair_fifo_store"], 2
    )
    ratios["a_alone_throughput_fair_over_fifo_store"] = round(
        a_rate["a_alone"] / a_rate["a_alone_fifo_store"], 2
    )
    for figure in ("p50_ms", "p99_ms"):
        ratios[f"dispatch_fifo_over_fair_{figure[:3]}"] = ratio(
            results, "fifo", figure, base="fair", metric="b_dispatch_latency"
        )
    return {
        "benchmark": "bench/fairness.py",
        "quick": quick,
        "machine": {
            "cpu_count": os.cpu_count(),
            "load_average_at_start": load,
            "python": sys.version.split()[0],
        },
        "shape": asdict(shape),
        "scenarios": {name: results[name] for name in SCENARIOS},
        "ratios": ratios,
        "target_ratio": TARGET_RATIO,
        "meets_target": ratios["fair_over_alone_p50"] < TARGET_RATIO
        and ratios["fair_over_alone_p99"] < TARGET_RATIO,
        "elapsed_seconds": round(time.perf_counter() - began, 1),
    }


def table(report: dict[str, Any]) -> str:
    lines = [
        "B's latency, ms: start = request to first step running; call = the start request;"
        " dispatch = start returned to first step running",
        f"{'scenario':<15} {'start p50':>10} {'start p99':>10} {'call p50':>9} {'call p99':>9}"
        f" {'disp p50':>9} {'disp p99':>9} {'drain s':>8} {'A st/s':>8}"
        f" {'full GCs':>8} {'GC max ms':>9} {'WAL c-u':>7} {'c-u max':>7}",
    ]
    for name, result in report["scenarios"].items():
        start, call = result["b_start_latency"], result["b_start_call"]
        dispatch = result["b_dispatch_latency"]
        lines.append(
            f"{name:<15} {start['p50_ms']:>10.2f} {start['p99_ms']:>10.2f}"
            f" {call['p50_ms']:>9.2f} {call['p99_ms']:>9.2f}"
            f" {dispatch['p50_ms']:>9.2f} {dispatch['p99_ms']:>9.2f}"
            f" {result['drained_seconds']:>8.2f}"
            f" {result['a_starts_per_second'] or 0:>8.1f}"
            f" {result['gc']['collections']['2']:>8} {result['gc']['max_pause_ms']:>9.2f}"
            f" {result['wal_catch_ups']['count']:>7} {result['wal_catch_ups']['max_ms']:>7.1f}"
        )
    ratios = report["ratios"]
    lines.append(
        f"fair/alone p50 {ratios['fair_over_alone_p50']} p99 {ratios['fair_over_alone_p99']}"
        f" (target < {report['target_ratio']}); fifo/alone p50"
        f" {ratios['fifo_over_alone_p50']} p99 {ratios['fifo_over_alone_p99']};"
        f" fair_fifo_store/alone p50 {ratios['fair_fifo_store_over_alone_p50']}"
        f" p99 {ratios['fair_fifo_store_over_alone_p99']}; fair_no_freeze/alone p50"
        f" {ratios['fair_no_freeze_over_alone_p50']} p99"
        f" {ratios['fair_no_freeze_over_alone_p99']}\n"
        f"A's starts/s with per-tenant groups over FIFO groups: with B"
        f" {ratios['a_throughput_fair_over_fair_fifo_store']}, alone"
        f" {ratios['a_alone_throughput_fair_over_fifo_store']}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--quick", action="store_true", help="1,000 / 20: a smoke run")
    parser.add_argument("--flood", type=int, default=None, help="A's executions")
    parser.add_argument("--victims", type=int, default=None, help="B's executions")
    parser.add_argument("--concurrency", type=int, default=None, help="A's starts in flight")
    parser.add_argument("--workers", type=int, default=None, help="dispatcher workers")
    args = parser.parse_args(argv)
    shape = QUICK if args.quick else FULL
    shape = Shape(
        flood=max(1, args.flood or shape.flood),
        victims=max(1, args.victims or shape.victims),
        concurrency=max(1, args.concurrency or shape.concurrency),
        workers=max(1, args.workers or shape.workers),
    )
    report = run(shape, args.quick)
    print(table(report), file=sys.stderr)
    if args.json:
        print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
