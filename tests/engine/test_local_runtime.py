"""The real local runtime: in-process dispatcher with injected duplicate deliveries."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest
from harness import CountingStep
from test_duplicates_versions import MIXED

from shared.app.service import StartRequest
from shared.composition import build_local, build_registry
from shared.models import ExecutionStatus
from shared.settings import LocalSettings, Settings


@pytest.mark.parametrize("rate", [0.5, 1.0])
async def test_injected_duplicates_do_not_duplicate_effects(tmp_path: Path, rate: float) -> None:
    counter = CountingStep()
    registry = build_registry()
    registry.register(counter)
    settings = Settings(
        local=LocalSettings(db_path=str(tmp_path / "d.db"), duplicate_rate=rate, workers=4)
    )
    runtime = build_local(settings, registry=registry)
    async with runtime:
        workflow = await runtime.app.create_workflow(
            {
                **MIXED,
                "steps": [
                    {**s, "config": {"seconds": 0.05}} if s["type"] == "wait" else s
                    for s in MIXED["steps"]
                ],
            }
        )
        ids = [
            (await runtime.app.start_execution(StartRequest(workflow.id, {}))).id for _ in range(5)
        ]
        for _ in range(200):
            done = [await runtime.app.get_execution(i) for i in ids]
            if all(e.status.terminal for e in done):
                break
            await asyncio.sleep(0.05)
        assert [e.status for e in done] == [ExecutionStatus.SUCCEEDED] * 5
        assert runtime.queue.stats.duplicated > 0
        assert sum(counter.calls.values()) == 5 * 8
        assert set(counter.calls.values()) == {1}
        for execution_id in ids:
            runs = await runtime.store.list_runs(execution_id)
            keys = Counter((r.scope, r.step_id, r.iteration, r.attempt) for r in runs)
            assert max(keys.values()) == 1
