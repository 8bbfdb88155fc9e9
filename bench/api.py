"""Service benchmark (issues 3 and 15): REST, GraphQL and live-stream figures of a real
``wfe dev`` process.

Usage::

    .venv/bin/python bench/api.py [--json] [--quick] [--duration S] [--executions N]
                                  [--subscribers 1,100]

Starts ``wfe dev`` (``python -m shared.cli dev``, SQLite in a temporary directory, no
examples, no demo service, rate limits off, otherwise its defaults) as a subprocess on a
free port and measures, from this process over real sockets:

- REST throughput and latency (p50/p99) of ``GET /api/v1/executions/{id}`` and
  ``POST /api/v1/workflows/{id}/execute`` (a one-step workflow) with 1 and 50 concurrent
  clients, each client its own ``httpx.AsyncClient`` sending requests back to back for
  ``duration`` seconds;
- GraphQL throughput of an ``execution(id:)`` query, with 1 and 50 clients;
- live-update latency, from a step's commit to its event's arrival, at WebSocket
  (``/ws/workflows/{id}``), SSE (``/sse/workflows/{id}``) and GraphQL-subscription
  (``executionEvents`` over ``graphql-transport-ws``) clients, with 1 and 100 concurrent
  subscribers while ``executions`` (200) executions run (a 2 s wait step, then three
  transform steps; started over REST, 20 requests in flight). The commit time is the
  event's ``at`` (stamped by the engine in the transaction that commits it), the receive
  time the client's clock when the frame arrives: same machine, same clock. WebSocket and
  SSE subscribers each follow the whole workflow (every event of every execution reaches
  every subscriber); GraphQL has no workflow-wide subscription, so the executions are
  shared out between the GraphQL subscribers (one subscription per execution, at most
  100 per connection: Strawberry's limit), and events committed before a subscription was
  sent (the replayed start of each execution) are not counted;
- the same stream latency on the emulator path (``python -m shared.dev.on_emulators``,
  i.e. ``make dev-emulators``: ``wfe dev`` in gcp mode, each step hopping through the
  Cloud Tasks emulator and committing to the Firestore emulator, the streams fed by
  Firestore listeners), with ``emulator_executions`` (50) executions per scenario. Without
  the emulators (or with ``--no-emulator``) it is reported as
  ``"emulator": {"skipped": "<reason>"}`` and printed loudly.

Targets (printed next to the figures): stream p99 <= 50 ms with 100 subscribers, REST
reads >= 2,000/s on one process. The bench client shares the machine's cores with the
server, so absolute figures are a lower bound of what the server does alone; compare
ratios within one run. A human-readable summary goes to stderr; ``--json`` prints the
report on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import httpx
from _api_server import DevServer
from _api_streams import Subscriber, graphql_subscriber, sse_subscriber, ws_subscriber

from shared.dev.emulators import TASKS_VENV, Unavailable, find_firestore, find_pubsub

TARGET_STREAM_P99_MS = 50.0
"""Stream p99 with 100 subscribers, each protocol."""
TARGET_STREAM_SUBSCRIBERS = 100
TARGET_REST_READS_PER_S = 2000.0
"""GET /api/v1/executions/{id} on one process (the best of 1 and 50 clients)."""

_DRAIN_TIMEOUT = 600.0
_GRAPHQL_PER_CONNECTION = 100
"""Strawberry's ``max_subscriptions_per_connection`` (its default, which the edge keeps)."""
_STARTERS = 20
"""Start requests in flight while the stream scenarios start their executions."""


@dataclass(frozen=True)
class Shape:
    duration: float
    """Seconds each REST/GraphQL figure sends requests for."""
    clients: tuple[int, ...]
    executions: int
    """Executions running during each stream scenario."""
    subscribers: tuple[int, ...]
    hold_seconds: float = 2.0
    """The wait step that opens each stream execution (GraphQL subscribes meanwhile)."""
    emulator_executions: int = 50
    """Executions per stream scenario on the emulator path (each step hops through the
    Cloud Tasks emulator and commits to the Firestore emulator: slower than SQLite)."""
    transform_steps: int = 3


FULL = Shape(duration=5.0, clients=(1, 50), executions=200, subscribers=(1, 100))
QUICK = Shape(
    duration=0.5,
    clients=(1, 50),
    executions=20,
    subscribers=(1, 10),
    hold_seconds=1.5,
    emulator_executions=5,
)


class BenchFailed(RuntimeError):
    """The server refused requests or a stream lost events."""


def one_step() -> dict[str, Any]:
    return {
        "name": "bench-api-one",
        "steps": [{"id": "only", "type": "transform", "config": {"output": "${1 + 1}"}}],
    }


def stream_flow(shape: Shape) -> dict[str, Any]:
    steps: list[dict[str, Any]] = [
        {"id": "hold", "type": "wait", "config": {"seconds": shape.hold_seconds}}
    ]
    for index in range(shape.transform_steps):
        steps[-1]["nextSteps"] = [f"s{index}"]
        steps.append({"id": f"s{index}", "type": "transform", "config": {"set": {"n": index}}})
    return {"name": "bench-api-stream", "steps": steps}


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def latency_stats(values_ms: list[float]) -> dict[str, Any]:
    if not values_ms:
        return {"count": 0}
    return {
        "count": len(values_ms),
        "p50_ms": round(_quantile(values_ms, 0.50), 3),
        "p99_ms": round(_quantile(values_ms, 0.99), 3),
        "max_ms": round(max(values_ms), 3),
        "mean_ms": round(statistics.fmean(values_ms), 3),
    }


# -- REST and GraphQL throughput ----------------------------------------------------


Request = Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]


async def throughput(
    server: DevServer, request: Request, clients: int, duration: float
) -> dict[str, Any]:
    """``clients`` clients sending ``request`` back to back for ``duration`` seconds.

    Besides requests/s (which the bench client, on the same cores, holds down), the
    server's own CPU time per request: ``per_server_core_per_s`` is how many such
    requests one core would serve at that cost."""
    base = server.base
    latencies: list[float] = []
    failures: list[str] = []
    start = asyncio.Event()

    async def client() -> None:
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as http:
            await http.get("/health")  # the connection is open before the clock starts
            await start.wait()
            deadline = time.perf_counter() + duration
            while (now := time.perf_counter()) < deadline:
                response = await request(http)
                latencies.append((time.perf_counter() - now) * 1000)
                if response.status_code >= 400 or _graphql_errors(response):
                    failures.append(f"{response.status_code} {response.text[:200]}")

    tasks = [asyncio.create_task(client()) for _ in range(clients)]
    await asyncio.sleep(0.2)
    cpu_before = server.cpu_seconds()
    began = time.perf_counter()
    start.set()
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - began
    cpu_after = server.cpu_seconds()
    cpu_ms = None
    if cpu_before is not None and cpu_after is not None and latencies:
        cpu_ms = round((cpu_after - cpu_before) * 1000 / len(latencies), 3)
    if failures:
        raise BenchFailed(f"{len(failures)} failed requests, e.g. {failures[0]}")
    return {
        "clients": clients,
        "requests": len(latencies),
        "seconds": round(elapsed, 3),
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "server_cpu_ms_per_request": cpu_ms,
        "per_server_core_per_s": round(1000 / cpu_ms, 1) if cpu_ms else None,
        **latency_stats(latencies),
    }


def _graphql_errors(response: httpx.Response) -> bool:
    if not response.request.url.path.endswith("/graphql"):
        return False
    return bool(response.json().get("errors"))


async def drain(base: str, workflow_id: str) -> float:
    """Until no execution of ``workflow_id`` is unfinished; the seconds it took."""
    began = time.perf_counter()
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        while time.perf_counter() - began < _DRAIN_TIMEOUT:
            busy = False
            for status in ("queued", "pending", "running", "waiting"):
                page = await http.get(
                    "/api/v1/executions",
                    params={"workflow_id": workflow_id, "status": status, "limit": 1},
                )
                if page.status_code == 200 and page.json()["items"]:
                    busy = True
                    break
            if not busy:
                return round(time.perf_counter() - began, 3)
            await asyncio.sleep(0.2)
    raise BenchFailed(f"executions of {workflow_id} still unfinished after {_DRAIN_TIMEOUT} s")


async def rest_and_graphql(
    server: DevServer, shape: Shape, one_id: str, seed_id: str
) -> dict[str, Any]:
    base = server.base

    async def get_execution(http: httpx.AsyncClient) -> httpx.Response:
        return await http.get(f"/api/v1/executions/{seed_id}")

    async def execute(http: httpx.AsyncClient) -> httpx.Response:
        return await http.post(f"/api/v1/workflows/{one_id}/execute", json={"input": {}})

    query = {
        "query": "query ($id: ID!) { execution(id: $id) { id status result } }",
        "variables": {"id": seed_id},
    }

    async def graphql(http: httpx.AsyncClient) -> httpx.Response:
        return await http.post("/graphql", json=query)

    out: dict[str, Any] = {"get_execution": {}, "post_execute": {}, "graphql_execution": {}}
    for clients in shape.clients:
        out["get_execution"][str(clients)] = await throughput(
            server, get_execution, clients, shape.duration
        )
        out["graphql_execution"][str(clients)] = await throughput(
            server, graphql, clients, shape.duration
        )
        figure = await throughput(server, execute, clients, shape.duration)
        figure["drain_seconds_after"] = await drain(base, one_id)
        out["post_execute"][str(clients)] = figure
    return out


# -- stream latency ------------------------------------------------------------------


async def _start_executions(base: str, workflow_id: str, count: int) -> list[str]:
    ids: list[str] = []
    queue = list(range(count))

    async def starter(http: httpx.AsyncClient) -> None:
        while queue:
            queue.pop()
            answer = await http.post(f"/api/v1/workflows/{workflow_id}/execute", json={"input": {}})
            if answer.status_code != 202:
                raise BenchFailed(f"execute answered {answer.status_code}: {answer.text[:300]}")
            ids.append(str(answer.json()["id"]))

    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        await asyncio.gather(*(starter(http) for _ in range(min(_STARTERS, count))))
    return ids


async def stream_scenario(
    server: DevServer, protocol: str, subscribers: int, shape: Shape, workflow_id: str
) -> dict[str, Any]:
    """``subscribers`` clients of ``protocol`` while ``shape.executions`` executions run."""
    timeout = 120.0 + shape.executions * subscribers * 0.01
    subs = [Subscriber() for _ in range(subscribers)]
    began = time.perf_counter()
    client_cpu, server_cpu = time.process_time(), server.cpu_seconds()
    if protocol == "graphql":
        ids = await _start_executions(server.base, workflow_id, shape.executions)
        # Strawberry allows 100 subscriptions per connection: a subscriber following
        # more executions opens one connection per 100 (each its own Subscriber here).
        shares = [ids[index::subscribers] for index in range(subscribers)]
        chunks = [
            share[start : start + _GRAPHQL_PER_CONNECTION]
            for share in shares
            for start in range(0, len(share), _GRAPHQL_PER_CONNECTION)
        ]
        subs = [Subscriber() for _ in chunks]
        active = list(zip(chunks, subs, strict=True))
        tasks = [
            asyncio.create_task(graphql_subscriber(server.ws, share, sub, timeout))
            for share, sub in active
        ]
        await asyncio.wait_for(asyncio.gather(*(sub.ready.wait() for _, sub in active)), 60)
        subscribed_after_start = round(time.perf_counter() - began, 3)
        expected = shape.executions
    else:
        run = ws_subscriber if protocol == "ws" else sse_subscriber
        target = server.ws if protocol == "ws" else server.base
        tasks = [
            asyncio.create_task(run(target, workflow_id, shape.executions, sub, timeout))
            for sub in subs
        ]
        await asyncio.wait_for(asyncio.gather(*(s.ready.wait() for s in subs)), 60)
        await asyncio.sleep(0.3)  # let the server register every subscription
        await _start_executions(server.base, workflow_id, shape.executions)
        subscribed_after_start = 0.0
        expected = shape.executions * subscribers
    results = await asyncio.gather(*tasks, return_exceptions=True)
    elapsed = time.perf_counter() - began
    client_cpu = time.process_time() - client_cpu
    server_end = server.cpu_seconds()
    server_used = None if server_cpu is None or server_end is None else server_end - server_cpu
    failures = [repr(r) for r in results if isinstance(r, BaseException)]
    failures += [error for sub in subs for error in sub.errors]
    latencies = [value for sub in subs for value in sub.latencies_ms]
    terminals = sum(sub.terminals for sub in subs)
    return {
        "protocol": protocol,
        "subscribers": subscribers,
        "connections": len(subs),
        "executions": shape.executions,
        "events_measured": len(latencies),
        "events_replayed_not_measured": sum(sub.replayed for sub in subs),
        "terminal_events": terminals,
        "terminal_events_expected": expected,
        "complete": terminals == expected and not failures,
        "failures": failures[:5],
        "seconds": round(elapsed, 3),
        "graphql_subscribed_seconds_after_start": subscribed_after_start,
        # Both sides' CPU over the scenario: when the client's nears the wall time, the
        # latency measured is partly the bench client's own queueing.
        "client_cpu_seconds": round(client_cpu, 3),
        "server_cpu_seconds": None if server_used is None else round(server_used, 3),
        "latency": latency_stats(latencies),
    }


async def emulator_streams(shape: Shape, folder: Path) -> dict[str, Any]:
    """The stream scenarios on ``make dev-emulators`` (``wfe dev`` in gcp mode: steps
    hop through the Cloud Tasks emulator, commit to the Firestore emulator, and the
    streams are fed by Firestore listeners), or why they were not run."""
    try:
        find_firestore()
        find_pubsub()
    except Unavailable as missing:
        return {"skipped": f"the Google emulators are not installed here: {missing}"}
    if not TASKS_VENV.exists():
        return {"skipped": f"the Cloud Tasks emulator is not installed ({TASKS_VENV})"}
    folder.mkdir()
    server = DevServer(folder, emulators=True)
    try:
        server.wait_healthy(timeout=180)
        emulated = Shape(**{**asdict(shape), "executions": shape.emulator_executions})
        figures = await streams(server, emulated)
        tracebacks = server.tracebacks()
        return {
            "path": "wfe dev on the Firestore, Pub/Sub and Cloud Tasks emulators"
            " (python -m shared.dev.on_emulators): Firestore listener to client",
            "executions": emulated.executions,
            "tracebacks_logged": len(tracebacks),
            "tracebacks": tracebacks[:10],
            **figures,
        }
    except (BenchFailed, RuntimeError, httpx.HTTPError) as failed:
        return {"failed": f"{type(failed).__name__}: {failed}"[:2000], "log": server.tail(20)}
    finally:
        server.stop()


async def streams(server: DevServer, shape: Shape) -> dict[str, Any]:
    """Every protocol with every subscriber count, each scenario on a workflow of its own
    (a workflow stream then carries that scenario's executions only)."""
    out: dict[str, Any] = {}
    for protocol in ("ws", "sse", "graphql"):
        out[protocol] = {}
        for subscribers in shape.subscribers:
            definition = stream_flow(shape)
            definition["name"] += f"-{protocol}-{subscribers}"
            async with httpx.AsyncClient(base_url=server.base, timeout=60) as http:
                created = await http.post("/api/v1/workflows", json=definition)
            if created.status_code != 201:
                raise BenchFailed(f"create answered {created.status_code}: {created.text[:300]}")
            workflow_id = str(created.json()["id"])
            figure = await stream_scenario(server, protocol, subscribers, shape, workflow_id)
            figure["drain_seconds_after"] = await drain(server.base, workflow_id)
            out[protocol][str(subscribers)] = figure
    return out


# -- report --------------------------------------------------------------------------


def targets(report: dict[str, Any], shape: Shape) -> dict[str, Any]:
    reads = max(f["requests_per_s"] for f in report["rest"]["get_execution"].values())
    out: dict[str, Any] = {
        "rest_reads_per_s": {
            "target": f">= {TARGET_REST_READS_PER_S:g}",
            "value": reads,
            "pass": reads >= TARGET_REST_READS_PER_S,
        }
    }
    per_core = [f["per_server_core_per_s"] for f in report["rest"]["get_execution"].values()]
    if all(per_core):
        best = max(per_core)
        out["rest_reads_per_server_core_per_s"] = {
            "target": f">= {TARGET_REST_READS_PER_S:g} (from server CPU per read)",
            "value": best,
            "pass": best >= TARGET_REST_READS_PER_S,
        }
    most = max(shape.subscribers)
    paths = [("", report["streams"])]
    if "ws" in report["emulator"]:
        paths.append(("emulator_", {p: report["emulator"][p] for p in ("ws", "sse", "graphql")}))
    for prefix, streams_ in paths:
        for protocol, figures in streams_.items():
            out[f"{prefix}stream_p99_ms_{protocol}"] = _stream_target(figures, most)
    return out


def _stream_target(figures: dict[str, Any], most: int) -> dict[str, Any]:
    latency = figures[str(most)]["latency"]
    value = latency.get("p99_ms")
    return {
        "target": f"<= {TARGET_STREAM_P99_MS:g} with {TARGET_STREAM_SUBSCRIBERS} subscribers",
        "subscribers": most,
        "at_target_shape": most >= TARGET_STREAM_SUBSCRIBERS,
        "value": value,
        "pass": value is not None
        and value <= TARGET_STREAM_P99_MS
        and figures[str(most)]["complete"],
    }


def summary(report: dict[str, Any]) -> str:
    lines = [
        f"wfe dev on {report['server']['base']} ({report['machine']['cpu_count']} cpus,"
        f" load at start {report['machine']['load_average_at_start']}); quick={report['quick']}",
        "",
        f"{'request':<22}{'clients':>8}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'server cpu ms/req':>19}",
    ]
    for name, figures in report["rest"].items():
        for clients, figure in figures.items():
            lines.append(
                f"{name:<22}{clients:>8}{figure['requests_per_s']:>10.1f}"
                f"{figure['p50_ms']:>9.2f}{figure['p99_ms']:>9.2f}"
                f"{figure['server_cpu_ms_per_request'] or float('nan'):>19.3f}"
            )
    lines += ["", f"{'stream':<19}{'subs':>6}{'events':>9}{'p50 ms':>9}{'p99 ms':>9}  complete"]
    rows = [(p, fs) for p, fs in report["streams"].items()]
    rows += [
        (f"emulator {p}", report["emulator"][p])
        for p in ("ws", "sse", "graphql")
        if p in report["emulator"]
    ]
    for protocol, figures in rows:
        for subscribers, figure in figures.items():
            latency = figure["latency"]
            lines.append(
                f"{protocol:<19}{subscribers:>6}{latency['count']:>9}"
                f"{latency.get('p50_ms', float('nan')):>9.2f}"
                f"{latency.get('p99_ms', float('nan')):>9.2f}  {figure['complete']}"
            )
    lines.append("")
    emulator = report["emulator"]
    if "skipped" in emulator:
        lines.append(f"!!! EMULATOR PATH NOT MEASURED: {emulator['skipped']}")
    if "failed" in emulator:
        lines.append(f"!!! EMULATOR PATH FAILED: {emulator['failed']}")
    for name, target in report["targets"].items():
        shape_note = "" if target.get("at_target_shape", True) else " (not at target shape)"
        verdict = "PASS" if target["pass"] else "FAIL"
        lines.append(
            f"target {name:<35} {target['target']:<30} value {target['value']}"
            f" -> {verdict}{shape_note}"
        )
    return "\n".join(lines)


async def run(shape: Shape, folder: Path, emulator: bool) -> dict[str, Any]:
    server = DevServer(folder)
    try:
        server.wait_healthy()
        rss_start = server.rss_bytes()
        async with httpx.AsyncClient(base_url=server.base, timeout=60) as http:
            one_id = (await http.post("/api/v1/workflows", json=one_step())).json()["id"]
            seed = await http.post(f"/api/v1/workflows/{one_id}/execute", json={"input": {}})
            seed_id = seed.json()["id"]
        await drain(server.base, one_id)
        rest = await rest_and_graphql(server, shape, one_id, seed_id)
        stream_figures = await streams(server, shape)
        tracebacks = server.tracebacks()
        report: dict[str, Any] = {
            "server": {
                "base": server.base,
                "argv": server.argv[1:],
                "env": {k: v for k, v in server.env.items() if k != "PYTHONPATH"},
                "rss_bytes_start": rss_start,
                "rss_bytes_end": server.rss_bytes(),
                "tracebacks_logged": len(tracebacks),
                "tracebacks": tracebacks[:10],
            },
            "rest": rest,
            "streams": stream_figures,
        }
    finally:
        server.stop()
    if emulator:
        report["emulator"] = await emulator_streams(shape, folder / "emulators")
    else:
        report["emulator"] = {"skipped": "--no-emulator"}
    return report


def machine_info() -> dict[str, Any]:
    return {
        "cpu_count": os.cpu_count(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": sys.version.split()[0],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the report on stdout")
    parser.add_argument("--quick", action="store_true", help="a short run (smoke test)")
    parser.add_argument("--duration", type=float, help="seconds per REST/GraphQL figure")
    parser.add_argument("--executions", type=int, help="executions per stream scenario")
    parser.add_argument(
        "--no-emulator", action="store_true", help="skip the emulator path (reported as skipped)"
    )
    parser.add_argument("--subscribers", help="comma-separated subscriber counts, e.g. 1,100")
    args = parser.parse_args()
    shape = QUICK if args.quick else FULL
    if args.duration:
        shape = Shape(**{**asdict(shape), "duration": args.duration})
    if args.executions:
        shape = Shape(**{**asdict(shape), "executions": args.executions})
    if args.subscribers:
        counts = tuple(int(part) for part in args.subscribers.split(","))
        shape = Shape(**{**asdict(shape), "subscribers": counts})
    machine = machine_info()
    began = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="wfe-bench-api-") as folder:
        figures = asyncio.run(run(shape, Path(folder), not args.no_emulator))
    report: dict[str, Any] = {
        "benchmark": "bench/api.py",
        "quick": args.quick,
        "started_at": began.isoformat(),
        "machine": machine,
        "shape": asdict(shape),
        **figures,
    }
    report["targets"] = targets(report, shape)
    print(summary(report), file=sys.stderr)
    if args.json:
        print(json.dumps(report, indent=2))
    broken = [
        f"{p}/{n}"
        for p, fs in report["streams"].items()
        for n, f in fs.items()
        if not f["complete"]
    ]
    for protocol in ("ws", "sse", "graphql"):
        for n, f in report["emulator"].get(protocol, {}).items():
            if not f["complete"]:
                broken.append(f"emulator {protocol}/{n}")
    if "failed" in report["emulator"]:
        broken.append("emulator")
    if broken:
        print(f"streams that lost events or failed: {broken}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
