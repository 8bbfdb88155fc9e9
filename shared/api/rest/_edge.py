"""What every handler does around its use case: authenticate, authorize, respond."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel
from starlette.responses import JSONResponse

from shared.api.auth import Principal, authorize
from shared.api.rest._router import Call
from shared.api.runtime import app_for, get_authenticator
from shared.app import WorkflowApp
from shared.ports import Page


async def authorized(call: Call, workflow_id: str | None = None) -> tuple[Principal, WorkflowApp]:
    """The caller and the use cases of its tenant, once the route's action is allowed."""
    principal = await get_authenticator().authenticate(call.request)
    authorize(principal, _action(call), workflow_id)
    return principal, await app_for(principal.tenant)


async def authorized_for_execution(call: Call, execution_id: str) -> WorkflowApp:
    """Like ``authorized`` for an execution: per-workflow roles apply to its workflow."""
    principal = await get_authenticator().authenticate(call.request)
    app = await app_for(principal.tenant)
    workflow_id = None
    if principal.workflow_roles:  # only then does the workflow change the answer
        workflow_id = (await app.get_execution(execution_id)).workflow_id
    authorize(principal, _action(call), workflow_id)
    return app


def _action(call: Call) -> str:
    if call.action is None:
        raise TypeError("this route declares no action to authorize")
    return call.action


def dump(model: BaseModel) -> dict[str, Any]:
    """A model as its camelCase JSON dict, without null fields."""
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


def respond(
    body: BaseModel | Mapping[str, Any],
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    content = dump(body) if isinstance(body, BaseModel) else dict(body)
    return JSONResponse(content, status_code=status, headers=dict(headers or {}))


def respond_items(items: list[Any]) -> JSONResponse:
    """``{"items": [...]}`` for short, complete lists."""
    return JSONResponse({"items": [dump(item) for item in items]})


def respond_page(page: Page[Any]) -> JSONResponse:
    """``{"items": [...], "nextCursor": ...}`` for paginated listings."""
    return JSONResponse(
        {"items": [dump(item) for item in page.items], "nextCursor": page.next_cursor}
    )
