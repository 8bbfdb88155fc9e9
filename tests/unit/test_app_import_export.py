"""``WorkflowApp`` use cases added for the management API: import, export, execution detail."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from shared.app import WorkflowApp
from shared.app.service import StartRequest
from shared.composition import build_local
from shared.errors import DefinitionInvalid, InputInvalid, NotFound


def _definition(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "tags": ["t"],
        "steps": [{"id": "a", "type": "transform", "config": {"set": {"x": 1}}}],
    }


@pytest.fixture
async def app() -> AsyncIterator[WorkflowApp]:
    runtime = build_local(memory=True)  # not started: nothing runs, tasks stay queued
    try:
        yield runtime.app
    finally:
        await runtime.stop()


async def test_import_creates_every_document(app: WorkflowApp) -> None:
    created = await app.import_workflows([_definition("a"), _definition("b")], owner="me")
    assert [(d.name, d.version, d.owner) for d in created] == [("a", 1, "me"), ("b", 1, "me")]
    assert len((await app.list_workflows()).items) == 2


async def test_import_validates_everything_before_creating_anything(app: WorkflowApp) -> None:
    bad = _definition("b")
    bad["steps"][0]["nextSteps"] = ["nowhere"]
    with pytest.raises(DefinitionInvalid) as caught:
        await app.import_workflows([_definition("a"), bad, "not an object"])
    assert [(i.code, i.path) for i in caught.value.issues] == [
        ("UNKNOWN_NEXT_STEP", "/1/steps/0/nextSteps/0"),
        ("INVALID_FORMAT", "/2"),
    ]
    assert (await app.list_workflows()).items == []
    with pytest.raises(InputInvalid):
        await app.import_workflows([])


async def test_export_drops_server_fields_and_round_trips(app: WorkflowApp) -> None:
    first = await app.create_workflow(_definition("a"))
    await app.update_workflow(first.id, _definition("a2"))
    exported = await app.export_workflow(first.id)
    assert exported["name"] == "a2"
    assert not {"id", "version", "owner", "createdAt", "updatedAt", "executionStats"} & set(
        exported
    )
    assert (await app.export_workflow(first.id, version=1))["name"] == "a"
    [clone] = await app.import_workflows([{**exported, "name": "a3"}])
    assert await app.export_workflow(clone.id) == {**exported, "name": "a3"}
    with pytest.raises(NotFound):
        await app.export_workflow(first.id, version=3)


async def test_execution_detail_has_the_step_history(app: WorkflowApp) -> None:
    definition = await app.create_workflow(_definition("a"))
    execution = await app.start_execution(StartRequest(definition.id, {}))
    found, runs = await app.get_execution_detail(execution.id)
    assert found.id == execution.id
    assert [(r.step_id, r.status.value) for r in runs] == [("a", "scheduled")]
    with pytest.raises(NotFound):
        await app.for_tenant("other").get_execution_detail(execution.id)
