"""Firestore emulator listeners alone, without our engine (issue 15's emulator path).

Usage::

    .venv/bin/python bench/listeners.py [--json] [--writers N] [--events N] [--quick]

bench/api.py measured seconds of lag on the emulator path's workflow streams (a
collection-group listener on the events' ``workflowId``) where execution streams (a
listener on one execution's ``events`` subcollection) took tens of milliseconds. This
asks whether that lag is ours or the emulator's: it starts a Firestore emulator, opens
the two kinds of listener our ``FirestoreWatchFeed`` opens (the same queries:
``workflowId ==`` and ``committedAt >=`` on the ``events`` collection group; one
execution's ``events`` subcollection with ``committedAt >=``) with the sync client as
``_firestore_watch`` does, and writes events from ``writers`` threads in a separate
process (one execution each, ``events`` documents with a server ``committedAt``, as our
commits write them), first one writer alone, then all at once. Latency: the listener's
arrival time minus the writer's clock just before the write (same machine).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from shared.dev.emulators import Unavailable, find_firestore, firestore_emulator

PROJECT = "bench-listeners"


def _write(host: str, workflow: str, writers: int, events: int, pause: float) -> None:
    """Runs in a child process: ``writers`` threads, each writing ``events`` events of
    its own execution of ``workflow``."""
    os.environ["FIRESTORE_EMULATOR_HOST"] = host
    from google.cloud import firestore

    client = firestore.Client(project=PROJECT)

    def writer(index: int) -> None:
        execution = client.collection("executions").document(f"{workflow}-x{index}")
        events_of = execution.collection("events")
        for seq in range(events):
            events_of.document(str(seq)).set(
                {
                    "workflowId": workflow,
                    "committedAt": firestore.SERVER_TIMESTAMP,
                    "t": time.time(),
                }
            )
            time.sleep(pause)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _stats(values: list[float], expected: int) -> dict[str, Any]:
    ms = sorted(v * 1000 for v in values)
    if not ms:
        return {"received": 0, "expected": expected}
    return {
        "received": len(ms),
        "expected": expected,
        "p50_ms": round(statistics.median(ms), 1),
        "p99_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 1),
        "max_ms": round(ms[-1], 1),
    }


def scenario(host: str, writers: int, events: int, pause: float, settle: float) -> dict[str, Any]:
    from google.cloud import firestore
    from google.cloud.firestore_v1.base_query import FieldFilter

    client = firestore.Client(project=PROJECT)
    # A workflow of its own per scenario: the group listener sees this scenario only.
    workflow = f"wf-{writers}-{time.time_ns()}"
    since = datetime.now(UTC) - timedelta(seconds=1)
    arrived: dict[str, list[float]] = {"collection_group": [], "one_execution": []}
    lock = threading.Lock()

    def listener(kind: str) -> Any:
        def on_snapshot(docs: Any, changes: list[Any], read_time: Any) -> None:
            now = time.time()
            with lock:
                for change in changes:
                    if change.type.name == "ADDED" and change.document.get("t"):
                        arrived[kind].append(now - change.document.get("t"))

        return on_snapshot

    group = (
        client.collection_group("events")
        .where(filter=FieldFilter("workflowId", "==", workflow))
        .where(filter=FieldFilter("committedAt", ">=", since))
    )
    one = (
        client.collection("executions")
        .document(f"{workflow}-x0")
        .collection("events")
        .where(filter=FieldFilter("committedAt", ">=", since))
    )
    watches = [
        group.on_snapshot(listener("collection_group")),
        one.on_snapshot(listener("one_execution")),
    ]
    time.sleep(1.0)  # both listening
    child = multiprocessing.get_context("spawn").Process(
        target=_write, args=(host, workflow, writers, events, pause)
    )
    began = time.time()
    child.start()
    child.join()
    wrote = time.time() - began
    deadline = time.time() + settle
    while time.time() < deadline:
        with lock:
            if len(arrived["collection_group"]) >= writers * events:
                break
        time.sleep(0.1)
    for watch in watches:
        watch.unsubscribe()
    return {
        "writers": writers,
        "events_written": writers * events,
        "write_seconds": round(wrote, 2),
        "writes_per_s": round(writers * events / wrote, 1),
        "collection_group": _stats(arrived["collection_group"], writers * events),
        "one_execution": _stats(arrived["one_execution"], events),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print the report on stdout")
    parser.add_argument("--quick", action="store_true", help="a short run (smoke test)")
    parser.add_argument("--writers", type=int, default=50)
    parser.add_argument("--events", type=int, default=9)
    args = parser.parse_args()
    writers, events, settle = (5, 3, 10.0) if args.quick else (args.writers, args.events, 30.0)
    try:
        script = find_firestore()
    except Unavailable as missing:
        report: dict[str, Any] = {"skipped": f"no Firestore emulator here: {missing}"}
        print(f"!!! LISTENERS NOT MEASURED: {report['skipped']}", file=sys.stderr)
        print(json.dumps(report) if args.json else report)
        return 0
    emulator = firestore_emulator(script)
    emulator.start()
    try:
        host = f"127.0.0.1:{emulator.port}"
        os.environ["FIRESTORE_EMULATOR_HOST"] = host
        report = {
            "benchmark": "firestore emulator listeners, no engine",
            "alone": scenario(host, 1, events, 0.05, settle),
            "concurrent": scenario(host, writers, events, 0.05, settle),
        }
    finally:
        emulator.stop()
    for name in ("alone", "concurrent"):
        figure = report[name]
        print(
            f"{name}: {figure['writers']} writer(s), {figure['writes_per_s']} writes/s;"
            f" collection-group listener {figure['collection_group']},"
            f" one-execution listener {figure['one_execution']}",
            file=sys.stderr,
        )
    print(json.dumps(report, indent=2) if args.json else report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
