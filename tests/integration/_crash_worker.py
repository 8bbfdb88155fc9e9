"""A local-mode process for the crash tests: ``start DB N``, ``start-limited DB N`` (a
workflow with ``concurrency: [{limit: 3}]``) or ``resume DB``."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Mapping
from typing import Any

from shared.app.service import StartRequest
from shared.composition import build_local
from shared.settings import Settings

WORKFLOW = {
    "name": "crashy",
    "variables": {"n": 0},
    "steps": [
        {
            "id": "t1",
            "type": "transform",
            "config": {"set": {"n": "${vars.n + 1}"}},
            "nextSteps": ["w1"],
        },
        {"id": "w1", "type": "wait", "config": {"seconds": 1.0}, "nextSteps": ["fan"]},
        {
            "id": "fan",
            "type": "parallel",
            "nextSteps": ["each"],
            "config": {"branches": [{"name": "a", "start": "a1"}, {"name": "b", "start": "b1"}]},
        },
        {"id": "a1", "type": "wait", "config": {"seconds": 0.5}, "nextSteps": ["a2"]},
        {"id": "a2", "type": "transform", "config": {"output": "a"}},
        {"id": "b1", "type": "transform", "config": {"output": "b"}},
        {
            "id": "each",
            "type": "map",
            "nextSteps": ["t2"],
            "config": {"items": "[1, 2, 3, 4]", "start": "mw", "concurrency": 2},
        },
        {"id": "mw", "type": "wait", "config": {"seconds": 0.3}, "nextSteps": ["mt"]},
        {"id": "mt", "type": "transform", "config": {"output": "${item * 2}"}},
        {"id": "t2", "type": "transform", "config": {"set": {"n": "${vars.n + 1}"}}},
    ],
}


LIMITED = {
    "name": "limited",
    "concurrency": [{"limit": 3}],
    "variables": {"n": 0},
    "steps": [
        {
            "id": "t1",
            "type": "transform",
            "config": {"set": {"n": "${vars.n + 1}"}},
            "nextSteps": ["w1"],
        },
        {"id": "w1", "type": "wait", "config": {"seconds": 0.2}, "nextSteps": ["t2"]},
        {"id": "t2", "type": "transform", "config": {"set": {"n": "${vars.n + 1}"}}},
    ],
}


async def start(db: str, count: int, definition: Mapping[str, Any] = WORKFLOW) -> None:
    runtime = build_local(Settings.local_mode(db, workers=4))
    async with runtime:
        workflow = await runtime.app.create_workflow(definition)
        for _ in range(count):
            await runtime.app.start_execution(StartRequest(workflow.id, {}))
        print("started", flush=True)
        await asyncio.sleep(3600)  # the test kills this process


async def resume(db: str) -> None:
    runtime = build_local(
        Settings.local_mode(db, workers=4, sweep_interval_seconds=0.5, sweep_grace_seconds=1)
    )
    async with runtime:
        for _ in range(600):
            page = await runtime.app.list_executions(limit=1000)
            if page.items and all(e.status.terminal for e in page.items):
                print("all finished", flush=True)
                return
            await asyncio.sleep(0.1)
    raise SystemExit("executions did not finish")


if __name__ == "__main__":
    if sys.argv[1] == "start":
        asyncio.run(start(sys.argv[2], int(sys.argv[3])))
    elif sys.argv[1] == "start-limited":
        asyncio.run(start(sys.argv[2], int(sys.argv[3]), LIMITED))
    else:
        asyncio.run(resume(sys.argv[2]))
