"""Registering definitions by name: what ``wfe run``, ``wfe workflows`` and the dev
server's examples do with files (create, add a version when changed, or leave as is)."""

from __future__ import annotations

from typing import Any

from shared.app.service import WorkflowApp
from shared.models import WorkflowDefinition

__all__ = ["all_workflows", "register"]

_SERVER_FIELDS = (
    "id",
    "version",
    "owner",
    "created_at",
    "updated_at",
    "last_executed",
    "execution_stats",
)


async def all_workflows(app: WorkflowApp) -> list[WorkflowDefinition]:
    """Every workflow head, following the pages."""
    found: list[WorkflowDefinition] = []
    cursor: str | None = None
    while True:
        page = await app.list_workflows(limit=200, cursor=cursor)
        found.extend(page.items)
        if page.next_cursor is None:
            return found
        cursor = page.next_cursor


def _comparable(definition: WorkflowDefinition) -> dict[str, Any]:
    return definition.model_dump(mode="json", exclude=set(_SERVER_FIELDS))


async def register(app: WorkflowApp, raw: dict[str, Any]) -> tuple[WorkflowDefinition, str]:
    """Create the workflow, or add a version to the one with the same name if it changed.

    Returns the stored head and what happened: ``created``, ``updated`` or ``unchanged``.
    """
    wanted = app.validate(raw)
    existing = [w for w in await all_workflows(app) if w.name == wanted.name]
    if not existing:
        return await app.create_workflow(raw), "created"
    head = existing[0]
    if _comparable(head) == _comparable(wanted):
        return head, "unchanged"
    return await app.update_workflow(head.id, raw, head.version), "updated"
