"""A step delivery in local mode reads its execution once (the cheap step's read), not
three times: the task carries its tenant in-process for the queue's fairness bucket and
the tenant's step quota, which each read the execution document before (issue 15)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shared.app.service import StartRequest
from shared.composition import build_local
from shared.models import ExecutionStatus
from shared.settings import Settings

ONE = {"name": "one", "steps": [{"id": "a", "type": "transform", "config": {"set": {"a": 1}}}]}


async def test_a_delivery_reads_its_execution_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = build_local(Settings.from_env({"WFE_DB_PATH": str(tmp_path / "t.db")}))
    async with runtime:
        workflow = await runtime.app.create_workflow(ONE)
        reads: list[str] = []
        real = runtime.store.get_execution

        async def counted(execution_id: str) -> Any:
            reads.append(execution_id)
            return await real(execution_id)

        monkeypatch.setattr(runtime.store, "get_execution", counted)
        execution = await runtime.app.start_execution(StartRequest(workflow.id, {}))
        assert await runtime.queue.join(10)
        monkeypatch.undo()
        done = await runtime.app.get_execution(execution.id)
    assert done.status == ExecutionStatus.SUCCEEDED
    assert reads == [execution.id]  # was three: the bucket's, the quota's, the step's
