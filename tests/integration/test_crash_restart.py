"""Kill the local engine mid-execution with SIGKILL; a new process finishes every
execution and no step visit or step end is recorded twice."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from shared.adapters.sqlite_store import SqliteStore
from shared.models import ExecutionStatus
from shared.ports import ExecutionQuery

WORKER = Path(__file__).with_name("_crash_worker.py")
ROOT = Path(__file__).resolve().parents[2]


def _spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(WORKER), *args],
        cwd=ROOT,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        start_new_session=True,
    )


async def _records(db: Path) -> tuple[list[str], list[tuple[str, int, int]]]:
    store = SqliteStore(db)
    try:
        executions = (await store.list_executions(ExecutionQuery(limit=1000))).items
        problems = []
        states = []
        for execution in executions:
            runs = await store.list_runs(execution.id)
            visits = Counter((r.scope, r.step_id, r.iteration, r.attempt) for r in runs)
            events = await store.list_events(execution.id)
            ends = Counter(e.run_id for e in events if e.type == "step.succeeded")
            if max(visits.values()) > 1 or max(ends.values()) > 1:
                problems.append(execution.id)
            if [e.seq for e in events] != list(range(1, len(events) + 1)):
                problems.append(f"{execution.id}: event gap")
            states.append((execution.status.value, len(runs), execution.variables.get("n", 0)))
        return problems, states
    finally:
        await store.close()


@pytest.mark.slow
@pytest.mark.parametrize("kill_after", [0.3, 1.3])
def test_killed_process_is_finished_by_the_next_one(tmp_path: Path, kill_after: float) -> None:
    db = tmp_path / "crash.db"
    first = _spawn("start", str(db), "20")
    assert first.stdout is not None
    assert first.stdout.readline().strip() == "started", first.stderr.read() if first.stderr else ""
    time.sleep(kill_after)
    os.killpg(first.pid, signal.SIGKILL)
    first.communicate(timeout=10)
    _, before = asyncio.run(_records(db))
    assert len(before) == 20
    assert any(status != "succeeded" for status, _, _ in before), "killed too late to test"

    second = _spawn("resume", str(db))
    out, err = second.communicate(timeout=120)
    assert second.returncode == 0, err[-3000:]
    assert "all finished" in out

    problems, after = asyncio.run(_records(db))
    assert problems == []
    assert [s for s, _, _ in after] == [ExecutionStatus.SUCCEEDED.value] * 20
    assert {n for _, _, n in after} == {2}, "each transform applied exactly once"
    assert {count for _, count, _ in after} == {16}, "one record per step visit"


async def _overlap(db: Path) -> tuple[int, list[str], int]:
    """Most executions running at once (from their start/dequeue and end events, ends
    first at equal times), their statuses, and slots still held at the end."""
    store = SqliteStore(db)
    try:
        executions = (await store.list_executions(ExecutionQuery(limit=1000))).items
        marks: list[tuple[float, int]] = []
        for execution in executions:
            for event in await store.list_events(execution.id):
                if event.type in ("execution.started", "execution.dequeued"):
                    marks.append((event.at.timestamp(), 1))
                elif event.type in (
                    "execution.succeeded",
                    "execution.failed",
                    "execution.cancelled",
                    "execution.timed_out",
                ):
                    marks.append((event.at.timestamp(), -1))
        running = most = 0
        for _, step in sorted(marks):
            running += step
            most = max(most, running)
        tenant = executions[0].tenant
        held = [s for s in await store.list_slots(tenant, "") if s.holder is not None]
        return most, [e.status.value for e in executions], len(held)
    finally:
        await store.close()


@pytest.mark.slow
def test_a_limit_of_3_holds_across_a_kill_and_its_slots_come_back(tmp_path: Path) -> None:
    """Issue 13: SIGKILL while 3 executions hold the slots and the rest are queued; the
    next process finishes everything, never with a 4th running, and frees every slot."""
    db = tmp_path / "limited.db"
    first = _spawn("start-limited", str(db), "30")
    assert first.stdout is not None
    assert first.stdout.readline().strip() == "started", first.stderr.read() if first.stderr else ""
    time.sleep(0.8)
    os.killpg(first.pid, signal.SIGKILL)
    first.communicate(timeout=10)
    _, statuses, held = asyncio.run(_overlap(db))
    assert "queued" in statuses, "killed too late to test"
    assert held == 3, "the killed process held every slot"

    second = _spawn("resume", str(db))
    out, err = second.communicate(timeout=120)
    assert second.returncode == 0, err[-3000:]
    assert "all finished" in out

    most, statuses, held = asyncio.run(_overlap(db))
    assert statuses == [ExecutionStatus.SUCCEEDED.value] * 30
    assert most == 3
    assert held == 0
    problems, after = asyncio.run(_records(db))
    assert problems == []
    assert {n for _, _, n in after} == {2}, "each transform applied exactly once"
