"""A workflow name is unique in a tenant: create and import refuse a taken one
(WORKFLOW_NAME_TAKEN) unless asked for a new version; registration stays idempotent."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from shared.app import WorkflowApp
from shared.app.registration import register
from shared.composition import build_local
from shared.errors import Conflict


def _definition(name: str, x: int = 1) -> dict[str, Any]:
    return {"name": name, "steps": [{"id": "a", "type": "transform", "config": {"set": {"x": x}}}]}


@pytest.fixture
async def app() -> AsyncIterator[WorkflowApp]:
    runtime = build_local(memory=True)  # not started: nothing runs
    try:
        yield runtime.app
    finally:
        await runtime.stop()


async def test_create_refuses_a_taken_name_and_stores_nothing(app: WorkflowApp) -> None:
    first = await app.create_workflow(_definition("orders"))
    with pytest.raises(Conflict) as caught:
        await app.create_workflow(_definition("orders", 2))
    assert caught.value.code == "WORKFLOW_NAME_TAKEN"
    assert caught.value.retryable is False
    assert caught.value.details == {"workflowId": first.id, "version": 1}
    assert [(w.id, w.version) for w in (await app.list_workflows()).items] == [(first.id, 1)]


async def test_new_version_on_conflict_updates_the_workflow_of_that_name(app: WorkflowApp) -> None:
    first = await app.create_workflow(_definition("orders"), owner="ann")
    checked: list[str] = []
    second = await app.create_workflow(
        _definition("orders", 2), owner="bob", on_conflict="newVersion", may_update=checked.append
    )
    assert (second.id, second.version, second.owner) == (first.id, 2, "ann")
    assert checked == [first.id]
    assert len((await app.list_workflows()).items) == 1


async def test_new_version_asks_the_edge_before_writing(app: WorkflowApp) -> None:
    await app.create_workflow(_definition("orders"))

    def refuse(workflow_id: str) -> None:
        raise PermissionError(workflow_id)

    with pytest.raises(PermissionError):
        await app.create_workflow(
            _definition("orders", 2), on_conflict="newVersion", may_update=refuse
        )
    assert (await app.list_workflows()).items[0].version == 1


async def test_the_same_name_in_another_tenant_is_free(app: WorkflowApp) -> None:
    await app.create_workflow(_definition("orders"))
    other = await app.for_tenant("acme").create_workflow(_definition("orders"))
    assert other.version == 1


async def test_import_refuses_taken_or_repeated_names_all_or_nothing(app: WorkflowApp) -> None:
    await app.create_workflow(_definition("a"))
    with pytest.raises(Conflict) as caught:
        await app.import_workflows([_definition("b"), _definition("a")])
    assert (caught.value.code, caught.value.path) == ("WORKFLOW_NAME_TAKEN", "/1/name")
    with pytest.raises(Conflict) as repeated:
        await app.import_workflows([_definition("c"), _definition("c")])
    assert (repeated.value.code, repeated.value.path) == ("WORKFLOW_NAME_TAKEN", "/1/name")
    assert [w.name for w in (await app.list_workflows()).items] == ["a"]
    imported = await app.import_workflows(
        [_definition("b"), _definition("a", 2)], on_conflict="newVersion"
    )
    assert [(w.name, w.version) for w in imported] == [("b", 1), ("a", 2)]


async def test_registration_stays_idempotent(app: WorkflowApp) -> None:
    created, action = await register(app, _definition("orders"))
    assert action == "created"
    again, action = await register(app, _definition("orders"))
    assert (again.id, again.version, action) == (created.id, 1, "unchanged")
    updated, action = await register(app, _definition("orders", 2))
    assert (updated.id, updated.version, action) == (created.id, 2, "updated")


async def test_variable_defaults_fill_empty_variables_only(app: WorkflowApp) -> None:
    app.variable_defaults["demoUrl"] = "http://127.0.0.1:9"
    raw = {**_definition("demo"), "variables": {"demoUrl": "", "other": ""}}
    created = await app.for_tenant("acme").create_workflow(raw)
    assert created.variables == {"demoUrl": "http://127.0.0.1:9", "other": ""}
    kept = {**_definition("kept"), "variables": {"demoUrl": "https://example.com"}}
    assert (await app.create_workflow(kept)).variables == {"demoUrl": "https://example.com"}
