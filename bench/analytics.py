"""Analytics queries on pre-aggregated rollups vs computing the same from raw executions.

Usage::

    .venv/bin/python bench/analytics.py [--json] [--executions 100000] [--workflows 20]
        [--steps 10] [--days 30] [--repeats 5] [--naive-repeats 1]

Fills an embedded store (a SQLite file, WAL, the local runtime's store) through the
store port in bulk: executions spread over ``--days`` days, ``--workflows`` workflows
of ``--steps`` steps (a decision step, an llm step's usage, some retries, failures,
cancellations and time-outs, five trigger kinds), each with its step runs, in batched
transactions; and the rollups the engine would have written for them, computed with the
engine's own functions (``shared.engine.rollup``) and added merged per hour through
``add_rollups``. Then, for one workflow and for the tenant over 7 and 30 days:

- ``rollupMs``: ``shared.app.analytics.analytics`` (the REST/GraphQL use case), median
  of ``--repeats`` runs (every run listed);
- ``naiveMs``: the same figures from the raw data (page through the executions of the
  window, read each one's step runs, aggregate), ``--naive-repeats`` runs;
- ``same``: whether both answers are equal (they must be).

A human-readable summary goes to stderr; ``--json`` prints the report on stdout. Not a
timed test: the issue asks for under a second on 100,000 executions.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from shared.adapters.sqlite_store import SqliteStore
from shared.app.analytics import Analytics, analytics, choose_window, summarize
from shared.engine import rollup
from shared.models import (
    ErrorInfo,
    ExecutionStatus,
    StepRun,
    StepRunStatus,
    WorkflowExecution,
)
from shared.ports import ExecutionQuery, ExecutionTx
from shared.ports.analytics import RollupDelta, RollupRow, bucket_start, merge_counters

TENANT = "bench"
NOW = datetime(2026, 12, 1, tzinfo=UTC)
TRIGGERS = ("manual", "api", "schedule", "pubsub", "webhook")
ENDINGS = (
    (ExecutionStatus.SUCCEEDED, 0.85),
    (ExecutionStatus.FAILED, 0.10),
    (ExecutionStatus.CANCELLED, 0.03),
    (ExecutionStatus.TIMED_OUT, 0.02),
)
CODES = ("HTTP_503", "TIMEOUT", "EXPRESSION_ERROR")


def _runs(
    rng: random.Random, execution: WorkflowExecution, steps: int, failing: bool
) -> list[StepRun]:
    """The step runs of one execution: a decision at step 3, an llm step at step 5,
    a retried attempt now and then, the last step failing when ``failing``."""
    runs: list[StepRun] = []
    at = execution.started_at
    for index in range(steps):
        step_id = f"s{index}"
        kind = "decision" if index == 3 else "llm" if index == 5 else "http"
        attempts = 2 if rng.random() < 0.05 else 1
        for attempt in range(1, attempts + 1):
            duration = rng.lognormvariate(3.5 + (index % 4) * 0.6, 0.8)
            last_attempt = attempt == attempts
            failed = (not last_attempt) or (failing and index == steps - 1)
            run = StepRun(
                id=f"{execution.id}-{index}-{attempt}",
                execution_id=execution.id,
                workflow_id=execution.workflow_id,
                step_id=step_id,
                step_type=kind,
                attempt=attempt,
                status=StepRunStatus.FAILED if failed else StepRunStatus.SUCCEEDED,
                idempotency_key=f"{execution.id}-{index}",
                created_at=at,
                started_at=at,
                finished_at=at + timedelta(milliseconds=duration),
                duration_ms=duration,
                due_at=None,
            )
            if failed:
                run.error = ErrorInfo(code=rng.choice(CODES), message="bench", retryable=True)
            if kind == "decision" and not failed:
                route = rng.choice(("approve", "review", "reject"))
                run.output = {"outcome": route, "path": [{"node": "ai", "label": route}]}
            if kind == "llm":
                tokens_in, tokens_out = rng.randint(200, 2000), rng.randint(50, 500)
                run.state["aiUsage"] = {
                    "inputTokens": tokens_in,
                    "outputTokens": tokens_out,
                    "costUsd": (tokens_in * 3 + tokens_out * 15) / 1_000_000,
                    "calls": 1,
                }
            at = run.finished_at or at
            runs.append(run)
        if failing and index == steps - 1:
            break
    return runs


def _execution(rng: random.Random, index: int, workflows: int, days: int) -> WorkflowExecution:
    started = NOW - timedelta(seconds=rng.uniform(0, days * 86_400))
    status = rng.choices([s for s, _ in ENDINGS], [w for _, w in ENDINGS])[0]
    execution = WorkflowExecution(
        id=f"x{index:07d}",
        workflow_id=f"wf{rng.randrange(workflows):02d}",
        workflow_version=1,
        status=status,
        started_at=started,
        trigger={"type": rng.choice(TRIGGERS)},
        tenant=TENANT,
    )
    if status != ExecutionStatus.SUCCEEDED:
        code = "EXECUTION_TIMEOUT" if status == ExecutionStatus.TIMED_OUT else rng.choice(CODES)
        execution.error_info = ErrorInfo(code=code, message="bench")
    return execution


def _finish(execution: WorkflowExecution, runs: list[StepRun]) -> None:
    end = max((r.finished_at for r in runs if r.finished_at), default=execution.started_at)
    execution.completed_at = execution.updated_at = end
    execution.duration = (end - execution.started_at).total_seconds() * 1000


async def fill(store: SqliteStore, args: argparse.Namespace) -> dict[str, Any]:
    """Executions, runs and (merged per hour) rollups; the counts written."""
    rng = random.Random(7)
    merged: dict[tuple[str, datetime], dict[str, float]] = {}
    batch: list[tuple[WorkflowExecution, list[StepRun]]] = []
    runs_written = 0

    async def flush() -> None:
        async def write(tx: ExecutionTx) -> None:
            for execution, runs in batch:
                tx.put_execution(execution)
                for run in runs:
                    tx.put_run(run)

        await store.run_transaction(write)
        batch.clear()

    for index in range(args.executions):
        execution = _execution(rng, index, args.workflows, args.days)
        failing = execution.status == ExecutionStatus.FAILED
        runs = _runs(rng, execution, args.steps, failing)
        _finish(execution, runs)
        runs_written += len(runs)
        hour = bucket_start(execution.started_at, "hour")
        counters = merged.setdefault((execution.workflow_id, hour), {})
        merge_counters(counters, rollup.started(execution).counters)
        merge_counters(counters, rollup.ended(execution, runs).counters)
        batch.append((execution, runs))
        if len(batch) >= 500:
            await flush()
    if batch:
        await flush()
    deltas = [
        RollupDelta(TENANT, workflow_id, f"{workflow_id}-{hour.isoformat()}", hour, counters)
        for (workflow_id, hour), counters in merged.items()
    ]
    await store.add_rollups(deltas)
    return {"executions": args.executions, "stepRuns": runs_written, "rollupDeltas": len(deltas)}


async def naive(store: SqliteStore, workflow_id: str | None, days: int) -> Analytics:
    """The same figures from the raw executions and runs of the window."""
    window = choose_window(NOW - timedelta(days=days), NOW, None, NOW)
    rows: dict[tuple[str, datetime], dict[str, float]] = {}
    cursor: str | None = None
    while True:
        page = await store.list_executions(
            ExecutionQuery(tenant=TENANT, workflow_id=workflow_id, limit=500, cursor=cursor)
        )
        for execution in page.items:
            if not window.start <= execution.started_at < window.end:
                continue
            key = (execution.workflow_id, bucket_start(execution.started_at, window.bucket))
            counters = rows.setdefault(key, {})
            merge_counters(counters, rollup.started(execution).counters)
            if execution.status.terminal:
                runs = await store.list_runs(execution.id)
                merge_counters(counters, rollup.ended(execution, runs).counters)
        oldest = page.items[-1].started_at if page.items else None
        if page.next_cursor is None or oldest is None or oldest < window.start:
            break
        cursor = page.next_cursor
    found = [
        RollupRow(TENANT, wf, window.bucket, bucket, counters)
        for (wf, bucket), counters in sorted(rows.items(), key=lambda item: item[0][1])
    ]
    return summarize(found, window, workflow_id)


def _canonical(figures: Analytics) -> str:
    """The answer, rounded where float sums may differ in their last digits."""

    def rounded(value: Any) -> Any:
        if isinstance(value, float):
            return round(value, 3)
        if isinstance(value, dict):
            return {k: rounded(v) for k, v in value.items()}
        if isinstance(value, list):
            return [rounded(v) for v in value]
        return value

    return json.dumps(rounded(figures.to_json_dict()), sort_keys=True)


async def _timed(coro_factory: Any, repeats: int) -> tuple[list[float], Any]:
    times, result = [], None
    for _ in range(repeats):
        began = time.perf_counter()
        result = await coro_factory()
        times.append(round((time.perf_counter() - began) * 1000, 2))
    return times, result


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        store = SqliteStore(os.path.join(folder, "bench.db"))
        try:
            began = time.perf_counter()
            written = await fill(store, args)
            fill_seconds = round(time.perf_counter() - began, 1)
            cases = []
            for scope, workflow_id in (("workflow", "wf00"), ("tenant", None)):
                for days in (7, 30):

                    def fast(wf: str | None = workflow_id, d: int = days) -> Any:
                        start = NOW - timedelta(days=d)
                        return analytics(store, TENANT, workflow_id=wf, start=start, end=NOW)

                    def slow(wf: str | None = workflow_id, d: int = days) -> Any:
                        return naive(store, wf, d)

                    fast_ms, fast_result = await _timed(fast, args.repeats)
                    slow_ms, slow_result = await _timed(slow, args.naive_repeats)
                    rollup_ms = statistics.median(fast_ms)
                    naive_ms = statistics.median(slow_ms)
                    cases.append(
                        {
                            "scope": scope,
                            "days": days,
                            "bucket": fast_result.window.bucket,
                            "executionsInWindow": fast_result.totals.started,
                            "rollupMs": rollup_ms,
                            "rollupRunsMs": fast_ms,
                            "naiveMs": naive_ms,
                            "naiveRunsMs": slow_ms,
                            "ratio": round(naive_ms / rollup_ms, 1) if rollup_ms else None,
                            "same": _canonical(fast_result) == _canonical(slow_result),
                        }
                    )
        finally:
            await store.close()
    return {
        "benchmark": "analytics",
        "store": "sqlite (WAL, embedded)",
        **written,
        "workflows": args.workflows,
        "stepsPerWorkflow": args.steps,
        "days": args.days,
        "fillSeconds": fill_seconds,
        "repeats": args.repeats,
        "cases": cases,
        "allUnderOneSecond": all(case["rollupMs"] < 1000 for case in cases),
        "allSame": all(case["same"] for case in cases),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--executions", type=int, default=100_000)
    parser.add_argument("--workflows", type=int, default=20)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--naive-repeats", type=int, default=1)
    args = parser.parse_args()
    report = asyncio.run(run(args))
    for case in report["cases"]:
        print(
            f"{case['scope']:>8} {case['days']:>2} d ({case['executionsInWindow']} executions):"
            f" rollups {case['rollupMs']} ms, naive {case['naiveMs']} ms"
            f" (x{case['ratio']}), same={case['same']}",
            file=sys.stderr,
        )
    if args.json:
        print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
