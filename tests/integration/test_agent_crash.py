"""Issue 16: an agent step whose process is SIGKILLed after its third tool call resumes
in the next process from its LangGraph checkpoints (SQLite, the store's file): the
model is not called again for the first three turns (counted across both processes).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

WORKER = Path(__file__).with_name("_agent_crash_worker.py")
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


def _calls(path: Path) -> list[tuple[int, int]]:
    if not path.exists():
        return []
    try:
        with sqlite3.connect(path) as db:
            return [(int(p), int(t)) for p, t in db.execute("SELECT pid, turn FROM calls")]
    except sqlite3.OperationalError:  # the table is not there yet
        return []


@pytest.mark.slow
def test_an_agent_killed_after_its_third_tool_call_resumes_without_asking_again(
    tmp_path: Path,
) -> None:
    db, calls = tmp_path / "agent.db", tmp_path / "calls.db"
    first = _spawn("start", str(db), str(calls))
    assert first.stdout is not None
    assert first.stdout.readline().strip() == "started", first.stderr.read() if first.stderr else ""
    deadline = time.monotonic() + 60
    while not any(turn == 3 for _, turn in _calls(calls)):  # blocked after 3 tool calls
        assert time.monotonic() < deadline, "the agent never reached its fourth turn"
        assert first.poll() is None, first.stderr.read() if first.stderr else ""
        time.sleep(0.05)
    os.killpg(first.pid, signal.SIGKILL)
    first.communicate(timeout=10)
    before = _calls(calls)
    assert sorted(turn for _, turn in before) == [0, 1, 2, 3]

    second = _spawn("resume", str(db), str(calls))
    out, err = second.communicate(timeout=120)
    assert second.returncode == 0, err[-3000:]
    result = json.loads(out.strip().splitlines()[-1])
    assert result["status"] == "succeeded", result

    after = _calls(calls)
    per_turn = Counter(turn for _, turn in after)
    assert per_turn == {0: 1, 1: 1, 2: 1, 3: 2}, after  # turns 1-3 never asked again
    assert {pid for pid, turn in after if turn < 3} == {first.pid}
    output = result["output"]
    assert output["text"] == "done after 3 tool calls"
    assert [e["kind"] for e in output["entries"]] == ["model", "tool"] * 3 + ["model"]
    assert output["turns"] == 4 and output["toolCalls"] == 3
    # the step's usage counts the four answered turns once each, over both processes
    assert output["usage"]["step"]["liveCalls"] == 4 and output["usage"]["step"]["calls"] == 4
    assert output["source"] == "model"  # the one turn this process took
