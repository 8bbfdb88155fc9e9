"""``WorkflowApp.start_execution_once``: the additive method the triggers use."""

from __future__ import annotations

import pytest

from shared.app.service import StartRequest
from shared.composition import build_local
from shared.errors import InvalidState
from shared.settings import Settings

STEPS = [{"id": "s", "type": "transform", "config": {"set": {"x": 1}}}]


async def test_created_only_by_the_first_start_with_an_id() -> None:
    runtime = build_local(Settings.local_mode(), memory=True)
    app = runtime.app
    try:
        workflow = await app.create_workflow({"name": "w", "steps": STEPS})
        request = StartRequest(workflow.id, {"a": 1}, execution_id="fixed-id")

        first = await app.start_execution_once(request)
        second = await app.start_execution_once(  # a trigger's redelivery: first input wins
            StartRequest(workflow.id, {"a": 2}, execution_id="fixed-id", trigger={"type": "event"})
        )
        fresh = await app.start_execution_once(StartRequest(workflow.id, {}))

        assert (first.created, second.created, fresh.created) == (True, False, True)
        assert first.execution.id == second.execution.id == "fixed-id"
        assert second.execution.input == {"a": 1}  # the first start's execution
        assert (await app.start_execution(request)).id == "fixed-id"
        await app.set_active(workflow.id, False)
        with pytest.raises(InvalidState):
            await app.start_execution_once(
                StartRequest(workflow.id, {}, execution_id="other", require_active=True)
            )
    finally:
        await runtime.stop()
