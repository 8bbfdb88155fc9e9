"""Cost figures of the cloud backend, measured against the emulators (issue 4).

Usage::

    .venv/bin/python bench/cost.py [--json] [--steps 20] [--branches 10] [--repeats 3]
        [--firestore-host H:P --tasks-host H:P]

For three workflows, the Firestore reads, writes and transactions and the Cloud Tasks
created, per workflow and per step run:

- ``linear``: ``--steps`` transform steps, one hop (one task, one commit) per step
  (``max_chain_steps=1``); a transform is cheap (no I/O), so its commit claims it: a
  step with I/O adds a claim transaction (the run, a ``step.started`` event, the
  execution: 3 writes);
- ``parallel``: a parallel step with ``--branches`` one-step branches, then a join;
- ``inline_chained``: the linear workflow with the default chaining (consecutive
  inline steps run in one hop and commit together, ``chain_commit_steps`` at a time).

Method: the engine runs as in the cloud (``build_gcp``): a FirestoreStore on the
Firestore emulator, a CloudTasksQueue on the Cloud Tasks emulator, which delivers each
task over HTTP to execute-step's handler served here. Every gRPC call the two clients
send passes ``RpcCounter`` interceptors (``bench/_grpc_count.py``); the
Firestore ones also count the documents each call read (a lookup answered, found or
missing; a query's documents, at least one per query) and wrote (a Commit's writes).
The Firestore client gets them through ``counting_firestore_client``, an AsyncClient
whose emulator channel carries the interceptors. Transactions are ``Commit`` calls
inside a transaction (``BeginTransaction`` calls and rollbacks reported too). One
warm-up execution per workflow is not counted (a warm instance: the definition is
cached); executions run one at a time and completion is polled through a second,
uncounted client. Without ``--*-host`` the emulators are started here.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from google.cloud.firestore import AsyncClient
from starlette.types import ASGIApp, Receive, Scope, Send

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _grpc_count import (
    DOCUMENTS_READ,
    DOCUMENTS_WRITTEN,
    TRANSACTIONS,
    RpcCounter,
    counting_firestore_client,
)
from _workloads import fanout_definition, linear_definition

from shared.adapters.firestore_store import FirestoreStore
from shared.api.tasks import create_tasks_app
from shared.app.service import StartRequest
from shared.composition import Runtime, build_gcp
from shared.composition.edge import build_edge
from shared.dev.emulators import (
    Emulator,
    ensure_tasks_emulator,
    find_firestore,
    firestore_emulator,
    tasks_emulator,
)
from shared.dev.on_emulators import create_queue
from shared.settings import GcpSettings, Settings

LOCATION, QUEUE = "us-central1", "steps"
FIGURES = {
    "firestore_reads": DOCUMENTS_READ,
    "firestore_writes": DOCUMENTS_WRITTEN,
    "firestore_transactions": TRANSACTIONS,
    "firestore_commits": "Commit",
    "firestore_begin_transactions": "BeginTransaction",
    "firestore_rollbacks": "Rollback",
    "firestore_lookups": "BatchGetDocuments",
    "firestore_queries": "RunQuery",
    "tasks_created": "CreateTask",
}
"""Reported figure -> counter key (a bare RPC name counts that method of any service)."""


class ExecuteStep:
    """execute-step's app for the runtime being measured (installed by ``serve``)."""

    url = ""
    app: ASGIApp | None = None

    def serve(self, runtime: Runtime) -> None:
        self.app = create_tasks_app(build_edge(runtime.settings, runtime=runtime), lifespan=False)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.app is None:
            raise RuntimeError("a task arrived before any runtime was served")
        await self.app(scope, receive, send)


@asynccontextmanager
async def execute_step_server() -> AsyncIterator[ExecuteStep]:
    """execute-step's app under uvicorn in this loop."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    target = ExecuteStep()
    server = uvicorn.Server(uvicorn.Config(target, lifespan="off", log_level="warning"))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    target.url = f"http://127.0.0.1:{sock.getsockname()[1]}/"
    try:
        yield target
    finally:
        server.should_exit = True
        await serving
        sock.close()


def _figures(counts: dict[str, int], divisor: float) -> dict[str, float]:
    counter = RpcCounter()
    for name, count in counts.items():
        counter.record(name, count)
    return {figure: round(counter.count(key) / divisor, 3) for figure, key in FIGURES.items()}


async def measure(
    name: str,
    definition: dict[str, Any],
    settings: Settings,
    repeats: int,
    execute_step: ExecuteStep,
) -> dict[str, Any]:
    """Run one warm-up and ``repeats`` counted executions of ``definition``."""
    project = settings.gcp.project
    counter = RpcCounter()
    store = FirestoreStore(
        lambda: counting_firestore_client(project, counter.firestore_interceptors())
    )
    observer = FirestoreStore(lambda: AsyncClient(project=project))
    runtime = build_gcp(settings, store=store, interceptors=counter.aio_interceptors())
    execute_step.serve(runtime)
    totals: dict[str, int] = {}
    steps = 0
    try:
        workflow = await runtime.app.create_workflow({**definition, "name": f"cost-{name}"})
        for index in range(repeats + 1):
            counter.reset()
            execution = await runtime.app.start_execution(StartRequest(workflow.id, {}))
            await _finished(observer, execution.id)
            await asyncio.sleep(0.3)  # let the last delivery's answer and calls settle
            counts = counter.reset()
            if index == 0:
                continue  # warm-up
            steps += len(await observer.list_runs(execution.id))
            for method, count in counts.items():
                totals[method] = totals.get(method, 0) + count
    finally:
        await runtime.stop()
        await observer.close()
    return {
        "executions": repeats,
        "step_runs_per_workflow": steps / repeats,
        "per_workflow": _figures(totals, repeats),
        "per_step": _figures(totals, steps),
        "rpcs_per_workflow": {m: round(n / repeats, 3) for m, n in sorted(totals.items())},
    }


async def _finished(observer: FirestoreStore, execution_id: str, timeout: float = 120.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        execution = await observer.get_execution(execution_id)
        if execution is not None and execution.status.terminal:
            if execution.status != "succeeded":
                raise RuntimeError(f"execution {execution_id} ended {execution.status}")
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"execution {execution_id} did not finish in {timeout} s")


async def run(args: argparse.Namespace, firestore: str, tasks: str) -> dict[str, Any]:
    os.environ["FIRESTORE_EMULATOR_HOST"] = firestore
    project = f"cost-{uuid.uuid4().hex[:10]}"
    await asyncio.to_thread(create_queue, tasks, project, LOCATION, QUEUE)
    workloads: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
        ("linear", linear_definition(args.steps), {"max_chain_steps": 1}),
        ("parallel", fanout_definition(args.branches), {}),
        ("inline_chained", linear_definition(args.steps), {}),
    ]
    report: dict[str, Any] = {"workflows": {}}
    async with execute_step_server() as execute_step:
        base = Settings(
            backend="gcp",
            token_verifier="dev",  # each task carries a dev token; execute-step checks it
            gcp=GcpSettings(
                project=project,
                location=LOCATION,
                tasks_queue=QUEUE,
                execute_step_url=execute_step.url,
                tasks_emulator_host=tasks,
            ),
        )
        for name, definition, overrides in workloads:
            settings = base.with_overrides(**overrides)
            report["workflows"][name] = await measure(
                name, definition, settings, args.repeats, execute_step
            )
    report["sizes"] = {"steps": args.steps, "branches": args.branches, "repeats": args.repeats}
    report["settings"] = {"chain_commit_steps": base.engine.chain_commit_steps}
    report["method"] = "gRPC calls counted by interceptors against the emulators (bench/cost.py)"
    return report


def _start(make: Callable[[], Emulator], stack: list[Emulator]) -> str:
    emulator = make()
    emulator.start()
    stack.append(emulator)
    return emulator.host


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--branches", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--firestore-host", default=os.environ.get("FIRESTORE_EMULATOR_HOST"))
    parser.add_argument("--tasks-host", default=os.environ.get("WFE_TASKS_EMULATOR_HOST"))
    args = parser.parse_args()
    started: list[Emulator] = []
    try:
        firestore = args.firestore_host or _start(
            lambda: firestore_emulator(find_firestore()), started
        )
        tasks = args.tasks_host or _start(lambda: tasks_emulator(ensure_tasks_emulator()), started)
        report = asyncio.run(run(args, firestore, tasks))
    finally:
        for emulator in reversed(started):
            emulator.stop()
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for name, figures in report["workflows"].items():
            print(f"{name}: per step {figures['per_step']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
