"""Chaos suite (issue 11): N executions under injected faults, then a full audit.

Usage::

    .venv/bin/python bench/chaos.py --json [--n 2000] [--kills 5] [--duplicates 0.5]
        [--fail-rate 0.3] [--seed 1] [--short] [--backend local]

What runs, each as its own process:

- the counter service (``bench/_chaos_counter.py``): the upstream of every http step;
  it records every request with its ``Idempotency-Key``, answers ``--fail-rate`` of
  them 503 (a quarter of those *after* applying the effect: the answer is lost), and
  adds latency (up to 50 ms, and 1.5 s for 2% of calls);
- the engine (``bench/_chaos_server.py``: the ``wfe dev`` app on the embedded SQLite
  store) with ``WFE_DUPLICATE_RATE=--duplicates`` (the local dispatcher delivers that
  share of tasks twice).

The driver starts N executions of the workflow in ``_chaos_workflow.py`` (transform,
http, branch, parallel, map) through the REST API, at most ``--window`` unfinished at
a time, each with its own ``executionId`` (a start retried after a kill is the same
execution). While they run it injects, spread over the run: ``--kills`` SIGKILLs of
the server process (restarted at once on the same database file), and one store-write
fault of ``--store-fault-seconds`` after the last kill (SQLite's ``max_page_count`` caps
the file: every write needing a page fails with SQLITE_FULL, as on a full disk; the
counter holds its answers ``--store-fault-hold`` seconds around the cap, so steps
claimed before it finish during it and their commits fail). Every execution found
``failed`` is redriven (``POST /executions/{id}/redrive``), up to ``--max-redrives``.
After the last start it waits up to ``--drain-seconds`` for every execution to end,
stops the server, and audits the database and the counter:

- ``lost``: executions the API acknowledged (202) that the store does not hold;
- ``stuck``: executions not terminal at the end;
- ``wrong_results``: succeeded executions whose result differs from the expected one
  (each is a pure function of the execution id and input); ``failed_final`` counts
  executions still failed after every redrive (with ``failed_codes``), apart;
- ``doubled_effects``: logical steps (execution, http step, map item) for which the
  counter applied an effect under more than one idempotency key (the same key again
  is deduplicated by the counter, as a real idempotent upstream does);
- ``history_errors``: a step visit recorded twice, a run that succeeded twice, a gap
  in an execution's event sequence numbers;
- ``max_recovery_seconds``: per fault, for the executions unfinished when it hit, the
  time from the fault (the kill; the end of the store fault) to each one's next
  recorded event; the largest over all faults (``unrecovered`` counts executions with
  no event after the fault at all);
- ``max_stall_seconds``: the longest gap between two consecutive events of one
  execution, whatever the cause; ``baseline_max_gap_seconds`` the same before the
  first fault (what a step takes to follow another with no fault);
- throughput: executions and step runs per second of wall time (on a shared machine,
  compare runs of the same load only).

The exit status is 0 when the issue's target holds (``lost``, ``doubled_effects``,
``stuck`` and ``wrong_results`` all 0, ``max_recovery_seconds`` <= 30), else 1. The
server runs with ``WFE_RATE_LIMITS=false`` (the driver is one principal starting
thousands of executions) and the default sweeper settings.

``--short`` is the quick variant ``make test`` runs (N=60, 1 kill, 30% duplicates).

``--backend emulators`` runs the same against the Firestore, Pub/Sub and Cloud Tasks
emulators (``wfe dev`` in gcp mode, as ``make dev-emulators`` starts it). There the
duplicates come from the counter process relaying each Cloud Tasks delivery to
execute-step, a second copy alongside with probability ``--duplicates``; the store
fault freezes the Firestore emulator (SIGSTOP, then SIGCONT); the Cloud Tasks
emulator delivers one task at a time, waiting for each answer, so throughput and
step-to-step gaps there are the emulator's (see ``baseline_max_gap_seconds``). It
retries without backoff, so it runs with no cap on retries: with a cap (100) it can
spend every attempt of a task while a killed server restarts, which real Cloud Tasks
(50 attempts with backoff, Terraform's retry config) does not, and leave the task to
the sweeper. (A relay dispatching concurrently, as real Cloud Tasks does,
was tried: the Firestore emulator then answers most transactions with lock timeouts.)
Without the Google Cloud CLI's emulators it prints one line saying the run did not
happen and exits 2.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _chaos_workflow import execution_input, expected_result, logical_steps, workflow

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
TERMINAL = {"succeeded", "failed", "cancelled", "timed_out"}
OPEN = ("pending", "running", "waiting", "paused")


@dataclass
class Params:
    n: int = 2000
    kills: int = 5
    duplicates: float = 0.5
    fail_rate: float = 0.3
    backend: str = "local"
    seed: int = 1
    short: bool = False
    window: int = 150
    store_fault_seconds: float = 10.0
    store_fault_hold: float = 1.0
    max_redrives: int = 10
    drain_seconds: float = 450.0
    latency: float = 0.05
    slow_rate: float = 0.02
    slow_seconds: float = 1.5


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def now() -> float:
    return time.time()


class Proc:
    """A child process in its own session, its output in a file."""

    def __init__(self, argv: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log.open("a")
        self.process = subprocess.Popen(
            argv,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


async def wait_healthy(base: str, proc: Proc, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=base, timeout=1) as client:
        while time.monotonic() < deadline:
            if proc.process.poll() is not None:
                raise RuntimeError(f"process exited with {proc.process.returncode}")
            try:
                if (await client.get("/health")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{base} did not come up in {timeout} s")


@dataclass
class Fault:
    kind: str
    started: float
    ended: float = 0.0
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class Run:
    params: Params
    workdir: Path
    db: Path = field(init=False)
    port: int = field(default_factory=free_port)
    counter_port: int = field(default_factory=free_port)
    server: Proc | None = None
    counter: Proc | None = None
    workflow_id: str = ""
    acked: dict[str, float] = field(default_factory=dict)
    open_ids: set[str] = field(default_factory=set)
    recently_acked: set[str] = field(default_factory=set)
    redrives: Counter[str] = field(default_factory=Counter)
    faults: list[Fault] = field(default_factory=list)
    api_errors: Counter[str] = field(default_factory=Counter)
    started_at: float = 0.0
    all_started_at: float = 0.0
    finished_at: float = 0.0
    done_starting: bool = False
    server_up: asyncio.Event = field(default_factory=asyncio.Event)
    server_env: dict[str, str] = field(default_factory=dict)
    emulators: list[Any] = field(default_factory=list)
    project: str = ""

    def __post_init__(self) -> None:
        self.db = self.workdir / "chaos.db"

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def counter_base(self) -> str:
        return f"http://127.0.0.1:{self.counter_port}"

    # -- processes -----------------------------------------------------------------

    def start_counter(self) -> None:
        p = self.params
        argv = [sys.executable, str(BENCH / "_chaos_counter.py"), "--port", str(self.counter_port)]
        argv += ["--seed", str(p.seed), "--fail-rate", str(p.fail_rate)]
        argv += ["--latency", str(p.latency), "--slow-rate", str(p.slow_rate)]
        argv += ["--slow", str(p.slow_seconds)]
        if p.backend == "emulators":  # duplicate deliveries: the relay in front of the engine
            argv += ["--forward", self.base, "--duplicate-rate", str(p.duplicates)]
        self.counter = Proc(argv, self.workdir / "counter.log")

    def start_server(self) -> None:
        env = {
            "WFE_BACKEND": "local",
            "WFE_DUPLICATE_RATE": str(self.params.duplicates),
            "WFE_HTTP_ALLOWED_HOSTS": f"127.0.0.1:{self.counter_port}",
            "WFE_RATE_LIMITS": "false",
            "WFE_LOG_LEVEL": "WARNING",
            **self.server_env,
        }
        argv = [sys.executable, str(BENCH / "_chaos_server.py"), "--port", str(self.port)]
        self.server = Proc([*argv, "--db", str(self.db)], self.workdir / "server.log", env)

    async def restart_server(self) -> None:
        self.server_up.clear()
        self.start_server()
        assert self.server is not None
        await wait_healthy(self.base, self.server)
        self.server_up.set()

    # -- API calls that ride out kills ---------------------------------------------

    async def call(
        self, client: httpx.AsyncClient, method: str, path: str, **kwargs: Any
    ) -> httpx.Response | None:
        """The request, retried while the server is down or answers 5xx/429; None after
        about a minute of failures."""
        for attempt in range(300):
            await self.server_up.wait()
            try:
                response = await client.request(method, path, **kwargs)
            except httpx.HTTPError as exc:
                self.api_errors[type(exc).__name__] += 1
            else:
                if response.status_code < 500 and response.status_code != 429:
                    return response
                self.api_errors[f"HTTP {response.status_code}"] += 1
            await asyncio.sleep(min(0.05 * (attempt + 1), 1.0))
        return None

    # -- the run -------------------------------------------------------------------

    async def starter(self, client: httpx.AsyncClient, workers: int = 8) -> None:
        """Start the N executions, ``workers`` requests at a time, at most ``window``
        unfinished at once."""
        p = self.params
        numbers = iter(range(p.n))

        async def worker() -> None:
            for k in numbers:
                while len(self.open_ids) + len(self.recently_acked) >= p.window:
                    await asyncio.sleep(0.05)
                execution_id = f"chaos-{p.seed}-{k:05d}"
                body = {"input": execution_input(k), "executionId": execution_id}
                path = f"/api/v1/workflows/{self.workflow_id}/execute"
                response = await self.call(client, "POST", path, json=body)
                if response is not None and response.status_code in (200, 201, 202):
                    self.acked[execution_id] = now()
                    self.recently_acked.add(execution_id)
                else:
                    self.api_errors["start refused"] += 1

        await asyncio.gather(*(worker() for _ in range(workers)))
        self.all_started_at = now()
        self.done_starting = True

    async def list_ids(self, client: httpx.AsyncClient, status: str) -> set[str] | None:
        ids: set[str] = set()
        cursor = None
        for _ in range(50):
            params: dict[str, Any] = {"workflow_id": self.workflow_id, "status": status}
            params["limit"] = 200
            if cursor:
                params["cursor"] = cursor
            response = await self.call(client, "GET", "/api/v1/executions", params=params)
            if response is None or response.status_code != 200:
                return None
            page = response.json()
            ids.update(item["id"] for item in page["items"])
            cursor = page.get("nextCursor")
            if not cursor:
                break
        return ids

    async def monitor(self, client: httpx.AsyncClient, deadline: float) -> None:
        """Track unfinished executions, redrive failed ones, until all end or deadline."""
        while True:
            seen = set(self.recently_acked)
            open_ids: set[str] = set()
            complete = True
            for status in OPEN:
                ids = await self.list_ids(client, status)
                if ids is None:
                    complete = False
                    break
                open_ids |= ids
            if complete:
                self.open_ids = open_ids
                self.recently_acked -= seen
            failed = await self.list_ids(client, "failed") or set()
            for execution_id in sorted(failed):
                if self.redrives[execution_id] >= self.params.max_redrives:
                    continue
                self.redrives[execution_id] += 1
                response = await self.call(
                    client, "POST", f"/api/v1/executions/{execution_id}/redrive"
                )
                if response is not None and response.status_code == 200:
                    self.open_ids.add(execution_id)
            finished = complete and not self.open_ids and not self.recently_acked
            redrivable = any(self.redrives[i] < self.params.max_redrives for i in failed)
            if self.done_starting and finished and not redrivable:
                return
            if self.done_starting and now() > deadline:
                return
            await asyncio.sleep(0.5)

    async def chaos(self) -> None:
        """Kills at evenly spaced shares of the finished executions; the store fault
        halfway between the last kill and the end, so no restart follows it (local mode
        releases every lease on start, which would hide a stall after the fault)."""
        p = self.params
        plan: list[tuple[float, str]] = [(j / (p.kills + 1), "kill") for j in range(1, p.kills + 1)]
        if p.store_fault_seconds > 0:
            plan.append(((p.kills + 0.5) / (p.kills + 1), "store"))  # no restart after it
        plan.sort()
        for share, kind in plan:
            waited = now()
            # Until that share has finished (all of them finishing counts too: a share is
            # below 1); a run that stops progressing gets its fault after drain_seconds.
            while self.completed() < share * p.n and now() - waited < p.drain_seconds:
                await asyncio.sleep(0.05)
            if kind == "kill":
                await self.kill_and_restart()
            else:
                await self.store_fault()

    def completed(self) -> int:
        return len(self.acked) - len(self.open_ids) - len(self.recently_acked)

    async def kill_and_restart(self) -> None:
        assert self.server is not None
        fault = Fault("kill", now())
        self.server.kill()
        self.server_up.clear()
        await self.restart_server()
        fault.ended = now()
        fault.detail["restart_seconds"] = round(fault.ended - fault.started, 3)
        self.faults.append(fault)

    async def store_fault(self) -> None:
        """Cap the store for ``store_fault_seconds``. With ``store_fault_hold``, the
        counter first holds every answer that long, so steps claimed just before the
        cap finish their call during it: their outcome's commit fails (the case of a
        lease that outlives a failed commit, issue 11 item 3)."""
        assert self.server is not None
        p = self.params
        if p.backend == "emulators":
            await self.freeze_firestore()
            return
        async with httpx.AsyncClient(base_url=self.counter_base, timeout=10) as counter:
            if p.store_fault_hold > 0:
                await counter.post("/_faults", json={"hold": p.store_fault_hold})
                await asyncio.sleep(p.store_fault_hold / 2)
            fault = Fault("store_full", now(), detail={"hold_seconds": p.store_fault_hold})
            os.kill(self.server.pid, signal.SIGUSR1)
            if p.store_fault_hold > 0:
                await asyncio.sleep(min(p.store_fault_hold, p.store_fault_seconds))
                await counter.post("/_faults", json={"hold": 0})
            await asyncio.sleep(max(0.0, p.store_fault_seconds - p.store_fault_hold))
            os.kill(self.server.pid, signal.SIGUSR2)
        fault.ended = now()
        self.faults.append(fault)

    async def freeze_firestore(self) -> None:
        """The emulators' store fault: SIGSTOP the Firestore emulator's process group
        for ``store_fault_seconds`` (every read and write hangs), then SIGCONT."""
        emulator = self.emulators[0]
        group = os.getpgid(emulator.process.pid)
        fault = Fault("store_frozen", now())
        os.killpg(group, signal.SIGSTOP)
        try:
            await asyncio.sleep(self.params.store_fault_seconds)
        finally:
            os.killpg(group, signal.SIGCONT)
        fault.ended = now()
        self.faults.append(fault)

    def start_emulators(self) -> None:
        """Firestore, Pub/Sub and Cloud Tasks emulators, the queue, and the variables
        that put ``wfe dev`` in gcp mode on them (as ``make dev-emulators`` does); the
        Cloud Tasks emulator delivers through the counter's duplicating relay."""
        from shared.dev.emulators import (
            ensure_tasks_emulator,
            find_firestore,
            find_pubsub,
            firestore_emulator,
            pubsub_emulator,
            tasks_emulator,
        )
        from shared.dev.on_emulators import create_queue, dev_environment

        self.emulators = [
            firestore_emulator(find_firestore()),
            pubsub_emulator(find_pubsub()),
            tasks_emulator(ensure_tasks_emulator(), max_retries=-1),
        ]
        for emulator in self.emulators:
            emulator.start()
        firestore, pubsub, tasks = (e.host for e in self.emulators)
        self.project = f"chaos-{self.params.seed}-{int(now())}"
        create_queue(tasks, self.project, "us-central1", "wfe-steps")
        env = dev_environment(
            project=self.project,
            location="us-central1",
            queue="wfe-steps",
            port=self.port,
            firestore=firestore,
            pubsub=pubsub,
            tasks=tasks,
            base={},
        )
        relay = f"{self.counter_base}/forward/tasks/execute-step"
        self.server_env = {**env, "WFE_EXECUTE_STEP_URL": relay}
        os.environ["FIRESTORE_EMULATOR_HOST"] = firestore  # the audit reads it

    def stop_emulators(self) -> None:
        for emulator in reversed(self.emulators):
            emulator.stop()

    async def execute(self) -> dict[str, Any]:
        main = asyncio.current_task()
        assert main is not None
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):  # stop every child process first
            loop.add_signal_handler(signum, main.cancel)
        try:
            if self.params.backend == "emulators":
                self.start_emulators()
            return await self._execute()
        finally:
            self.stop_emulators()

    async def _execute(self) -> dict[str, Any]:
        p = self.params
        self.start_counter()
        self.start_server()
        assert self.counter is not None and self.server is not None
        try:
            await wait_healthy(self.counter_base, self.counter)
            await wait_healthy(self.base, self.server)
            self.server_up.set()
            async with httpx.AsyncClient(base_url=self.base, timeout=30) as client:
                name = f"chaos-{p.seed}-{int(now())}"
                created = await client.post(
                    "/api/v1/workflows", json=workflow(name, self.counter_base)
                )
                created.raise_for_status()
                self.workflow_id = created.json()["id"]
                self.started_at = now()
                starter = asyncio.create_task(self.starter(client))
                chaos = asyncio.create_task(self.chaos())
                monitor = asyncio.create_task(self.monitor(client, now() + 10**9))
                await starter
                await chaos
                monitor.cancel()
                await asyncio.gather(monitor, return_exceptions=True)
                await self.monitor(client, now() + p.drain_seconds)
            self.finished_at = now()
            async with httpx.AsyncClient(base_url=self.counter_base, timeout=60) as client:
                ledger = (await client.get("/_report")).json()
        finally:
            self.server.stop()
            self.counter.stop()
        audit = await audit_store(self.store(), self.acked)
        return self.report(audit, ledger)

    def store(self) -> Any:
        if self.params.backend == "emulators":
            from shared.adapters.firestore_store import FirestoreStore

            return FirestoreStore(project=self.project)
        from shared.adapters.sqlite_store import SqliteStore

        return SqliteStore(self.db)

    def report(self, audit: dict[str, Any], ledger: dict[str, Any]) -> dict[str, Any]:
        p = self.params
        by_step: dict[str, list[list[Any]]] = ledger["byStep"]
        doubled = sorted(name for name, keys in by_step.items() if len(keys) > 1)
        missing = 0
        for execution_id in audit["succeeded_ids"]:
            k = int(execution_id.rsplit("-", 1)[1])
            missing += sum(1 for name in logical_steps(execution_id, k) if name not in by_step)
        recoveries = recovery(self.faults, audit["timelines"], self.finished_at)
        first_fault = min((f.started for f in self.faults), default=self.finished_at)
        wall = self.finished_at - self.started_at
        runs = audit["step_runs"]
        return {
            "lost": audit["lost"],
            "doubled_effects": len(doubled),
            "stuck": len(audit["stuck_ids"]),
            "wrong_results": len(audit["wrong_ids"]),
            "max_recovery_seconds": max((r["max_recovery_seconds"] for r in recoveries), default=0),
            "history_errors": len(audit["history_errors"]),
            "failed_final": len(audit["failed_ids"]),
            "failed_codes": audit["failed_codes"],
            "succeeded": len(audit["succeeded_ids"]),
            "effects_missing": missing,
            "unrecovered": sum(r["unrecovered"] for r in recoveries),
            "max_stall_seconds": audit["max_stall_seconds"],
            "max_stall_execution": audit["max_stall_execution"],
            "baseline_max_gap_seconds": baseline_gap(audit["timelines"], first_fault),
            "throughput": {
                "wall_seconds": round(wall, 1),
                "executions_per_second": round(len(self.acked) / wall, 2) if wall else 0,
                "step_runs_per_second": round(runs / wall, 1) if wall else 0,
                "step_runs": runs,
            },
            "faults": recoveries,
            "redrives": sum(self.redrives.values()),
            "redriven_executions": len(self.redrives),
            "counter": {k: v for k, v in ledger.items() if k != "byStep"},
            "api_retries": dict(self.api_errors),
            "examples": {
                "doubled": doubled[:5],
                "stuck": audit["stuck_ids"][:5],
                "wrong": audit["wrong_ids"][:5],
                "history": audit["history_errors"][:5],
                "failed": audit["failed_ids"][:5],
            },
            "params": asdict(p),
            "acknowledged": len(self.acked),
        }


def _at(value: datetime) -> float:
    return value.replace(tzinfo=value.tzinfo or UTC).timestamp()


async def audit_store(store: Any, acked: dict[str, float]) -> dict[str, Any]:
    """Read every acknowledged execution, its step runs and events from the store."""
    lost = 0
    stuck: list[str] = []
    wrong: list[str] = []
    failed: list[str] = []
    failed_codes: Counter[str] = Counter()
    succeeded: list[str] = []
    history: list[str] = []
    timelines: dict[str, list[tuple[float, bool]]] = {}
    step_runs = 0
    max_stall = (0.0, "")
    try:
        for execution_id in sorted(acked):
            execution = await store.get_execution(execution_id)
            if execution is None:
                lost += 1
                continue
            runs = await store.list_runs(execution_id)
            events = await store.list_events(execution_id)
            step_runs += len(runs)
            visits = Counter(
                (r.generation, r.scope, r.step_id, r.iteration, r.attempt) for r in runs
            )
            ends = Counter(e.run_id for e in events if e.type == "step.succeeded")
            if visits and max(visits.values()) > 1:
                history.append(f"{execution_id}: a step visit recorded twice")
            if ends and max(ends.values()) > 1:
                history.append(f"{execution_id}: a run succeeded twice")
            if [e.seq for e in events] != list(range(1, len(events) + 1)):
                history.append(f"{execution_id}: event sequence gap")
            timeline = [
                (_at(e.at), e.type.startswith("execution.") and _terminal(e.type)) for e in events
            ]
            timeline.sort()
            timelines[execution_id] = timeline
            for (a, _), (b, _) in itertools.pairwise(timeline):
                if b - a > max_stall[0]:
                    max_stall = (b - a, execution_id)
            status = execution.status.value
            k = int(execution_id.rsplit("-", 1)[1])
            if status not in TERMINAL:
                stuck.append(execution_id)
            elif status == "succeeded":
                succeeded.append(execution_id)
                if execution.result != expected_result(execution_id, k):
                    wrong.append(execution_id)
            else:
                failed.append(execution_id)
                code = execution.error_info.code if execution.error_info else status
                failed_codes[code] += 1
    finally:
        await store.close()
    return {
        "lost": lost,
        "stuck_ids": stuck,
        "wrong_ids": wrong,
        "failed_ids": failed,
        "failed_codes": dict(failed_codes),
        "succeeded_ids": succeeded,
        "history_errors": history,
        "timelines": timelines,
        "step_runs": step_runs,
        "max_stall_seconds": round(max_stall[0], 2),
        "max_stall_execution": max_stall[1],
    }


def baseline_gap(timelines: dict[str, list[tuple[float, bool]]], until: float) -> float:
    """The longest gap between two consecutive events of one execution before the first
    fault: how long a step may take to follow the previous one with no fault at all
    (what a recovery time compares with)."""
    gaps = [
        b - a
        for timeline in timelines.values()
        for (a, _), (b, _) in itertools.pairwise(timeline)
        if b <= until
    ]
    return round(max(gaps, default=0.0), 2)


def _terminal(event_type: str) -> bool:
    return event_type.removeprefix("execution.") in TERMINAL


def recovery(
    faults: list[Fault], timelines: dict[str, list[tuple[float, bool]]], end: float
) -> list[dict[str, Any]]:
    """Per fault: the executions unfinished when it hit, and how long after it each
    recorded its next event (from the kill; from the end of a store fault)."""
    out = []
    for fault in faults:
        origin = fault.started if fault.kind == "kill" else fault.ended
        delays: list[float] = []
        unrecovered = 0
        for timeline in timelines.values():
            before = [t for t in timeline if t[0] <= fault.started]
            if not before or before[-1][1]:
                continue  # not started yet, or finished (until a redrive) when it hit
            if any(terminal for at, terminal in timeline if fault.started < at <= origin):
                continue  # finished during the store fault: not held up by it
            after = [at for at, _ in timeline if at > origin]
            if after:
                delays.append(after[0] - origin)
            else:
                unrecovered += 1
                delays.append(end - origin)
        delays.sort()
        out.append(
            {
                "kind": fault.kind,
                "at_seconds": round(
                    fault.started - min(t[0][0] for t in timelines.values() if t), 1
                )
                if timelines
                else 0,
                "duration_seconds": round(fault.ended - fault.started, 2),
                "affected": len(delays),
                "unrecovered": unrecovered,
                "p50_recovery_seconds": round(delays[len(delays) // 2], 2) if delays else 0,
                "max_recovery_seconds": round(delays[-1], 2) if delays else 0,
                **fault.detail,
            }
        )
    return out


SHORT = {"n": 60, "kills": 1, "duplicates": 0.3, "window": 30, "store_fault_seconds": 3.0}


def parse(argv: list[str] | None = None) -> tuple[Params, str | None]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--n", type=int)
    parser.add_argument("--kills", type=int)
    parser.add_argument("--duplicates", type=float, help="share of duplicate deliveries")
    parser.add_argument("--fail-rate", type=float, help="share of upstream 503s")
    parser.add_argument("--backend", choices=["local", "emulators"], default="local")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--short", action="store_true", help="N=60, 1 kill, 30%% duplicates")
    parser.add_argument("--window", type=int, help="most unfinished executions at a time")
    parser.add_argument("--store-fault-seconds", type=float)
    parser.add_argument("--max-redrives", type=int)
    parser.add_argument(
        "--store-fault-hold", type=float, help="upstream answers held this long around the cap"
    )
    parser.add_argument("--slow-rate", type=float, help="share of upstream calls taking 1.5 s")
    parser.add_argument("--drain-seconds", type=float, help="wait for the end after the starts")
    parser.add_argument("--workdir", help="folder for the database and logs (default: a new one)")
    args = parser.parse_args(argv)
    values: dict[str, Any] = dict(SHORT) if args.short else {}
    for name in (
        "n",
        "kills",
        "duplicates",
        "fail_rate",
        "window",
        "store_fault_seconds",
        "max_redrives",
        "drain_seconds",
        "slow_rate",
        "store_fault_hold",
    ):
        if getattr(args, name) is not None:
            values[name] = getattr(args, name)
    params = Params(backend=args.backend, seed=args.seed, short=args.short, **values)
    return params, args.workdir


def main(argv: list[str] | None = None) -> int:
    params, folder = parse(argv)
    json_out = "--json" in (argv if argv is not None else sys.argv[1:])
    random.seed(params.seed)
    workdir = Path(folder) if folder else Path(tempfile.mkdtemp(prefix="wfe-chaos-"))
    workdir.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):  # a fresh store: the execution ids repeat per seed
        (workdir / f"chaos.db{suffix}").unlink(missing_ok=True)
    try:
        result = asyncio.run(Run(params, workdir).execute())
    except Exception as exc:
        if type(exc).__name__ != "Unavailable":
            raise
        print(f"chaos: NOT RUN: an emulator is not available: {exc}", file=sys.stderr)
        return 2
    result["workdir"] = str(workdir)
    if json_out:
        print(json.dumps(result, indent=2))
    else:
        keys = ("lost", "doubled_effects", "stuck", "wrong_results", "max_recovery_seconds")
        print(", ".join(f"{k}={result[k]}" for k in keys), result["throughput"])
    ok = not any(result[k] for k in ("lost", "doubled_effects", "stuck", "wrong_results"))
    return 0 if ok and result["max_recovery_seconds"] <= 30 else 1


if __name__ == "__main__":
    sys.exit(main())
