"""What every REST handler declares instead of doing by hand: who calls, with which
role, and the use cases of their tenant; and how results become JSON.

``Reader``, ``Writer``, ``Executor``, ``Deleter`` (workflow routes) and
``ExecutionReader``, ``ExecutionOperator`` (execution routes) are FastAPI
dependencies: they authenticate the request with the edge's authenticator, check
the action against the principal's role (on the workflow the route names, when the
principal has per-workflow roles) and hand the handler a ``Caller``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPBearer
from pydantic import BaseModel
from starlette.responses import JSONResponse

from shared.api.auth import Principal, authorize
from shared.api.edge import edge_of
from shared.app import WorkflowApp
from shared.app.flow_usage import public_queue
from shared.models import QueueState, WorkflowExecution
from shared.ports import Page

API = "/api/v1"

_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key.")
_bearer = HTTPBearer(auto_error=False, description="An API key as a bearer token.")


@dataclass(frozen=True)
class Caller:
    """The authenticated principal and the use cases scoped to its tenant."""

    principal: Principal
    app: WorkflowApp


PRINCIPAL = "wfe.principal"
"""Where the request's scope keeps its authenticated principal (the audit log reads it)."""


async def principal_of(
    request: Request,
    _key: Annotated[str | None, Security(_api_key)] = None,
    _token: Annotated[Any, Security(_bearer)] = None,
) -> Principal:
    """Authenticate with the edge's authenticator (the security schemes document it),
    then take a token from the principal's and the tenant's rate limits."""
    edge = edge_of(request)
    principal = await edge.authenticator.authenticate(request)
    request.scope[PRINCIPAL] = principal
    if edge.app.quotas is not None:
        await edge.app.quotas.admit_request(principal.subject, principal.tenant)
    return principal


def _for_workflow(action: str) -> Callable[..., Awaitable[Caller]]:
    async def dependency(
        request: Request, principal: Annotated[Principal, Depends(principal_of)]
    ) -> Caller:
        workflow_id = request.path_params.get("workflow_id") or request.query_params.get(
            "workflow_id"
        )
        authorize(principal, action, workflow_id or None)
        return Caller(principal, edge_of(request).app.for_tenant(principal.tenant))

    dependency.__name__ = f"may_{action}"
    return dependency


def _for_execution(action: str) -> Callable[..., Awaitable[Caller]]:
    async def dependency(
        request: Request, principal: Annotated[Principal, Depends(principal_of)]
    ) -> Caller:
        app = edge_of(request).app.for_tenant(principal.tenant)
        workflow_id = None
        if principal.workflow_roles:  # only then does the workflow change the answer
            execution = await app.get_execution(request.path_params["execution_id"])
            workflow_id = execution.workflow_id
        authorize(principal, action, workflow_id)
        return Caller(principal, app)

    dependency.__name__ = f"may_{action}_execution"
    return dependency


Reader = Annotated[Caller, Depends(_for_workflow("read"))]
Writer = Annotated[Caller, Depends(_for_workflow("write"))]
Executor = Annotated[Caller, Depends(_for_workflow("execute"))]
Deleter = Annotated[Caller, Depends(_for_workflow("delete"))]
ExecutionReader = Annotated[Caller, Depends(_for_execution("read"))]
ExecutionOperator = Annotated[Caller, Depends(_for_execution("operate"))]


def dump(model: BaseModel) -> dict[str, Any]:
    """A model as its camelCase JSON dict, without null fields.

    An execution shows only the public part of its flow-control state
    (``shared.app.flow_usage.QueueView``, while it is queued): the ids of the slot
    documents it holds and the internal key of its queue stay inside.
    """
    data = model.model_dump(mode="json", by_alias=True, exclude_none=True)
    if isinstance(model, WorkflowExecution) and isinstance(model.queue, QueueState):
        view = public_queue(model)
        data.pop("queue", None)
        if view is not None:
            data["queue"] = view.model_dump(mode="json", by_alias=True, exclude_none=True)
    return data


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
