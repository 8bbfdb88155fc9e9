"""Workflow endpoints: CRUD, versions, activation, execute, export, validate (import:
``imports``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Literal

import yaml
from fastapi import Body, Depends, Header, Path, Query, Request
from starlette.responses import JSONResponse, Response

from shared.api.auth import authorize
from shared.api.rest._bodies import (
    definition_body,
    if_match_version,
    json_only,
    read_definition,
)
from shared.api.rest._deps import (
    API,
    Caller,
    Deleter,
    Executor,
    Reader,
    Writer,
    respond,
    respond_items,
    respond_page,
)
from shared.api.rest._docs import errors, router_for
from shared.api.rest.schemas import (
    DecisionGraph,
    ExecutionInput,
    ExecutionView,
    ValidationResult,
    WorkflowList,
    WorkflowPage,
)
from shared.app.flow_usage import queue_views
from shared.app.service import OnConflict, StartRequest
from shared.models import WorkflowDefinition

router = router_for("workflows")

MAX_VERSION = 2**31 - 1
Limit = Annotated[int, Query(ge=1, le=200, description="Page size.")]
Cursor = Annotated[
    str | None,
    Query(
        max_length=1000,
        pattern=r"^[A-Za-z0-9_\-]*={0,2}$",
        description="The nextCursor of the previous page.",
    ),
]
Version = Annotated[
    int | None, Query(ge=1, le=MAX_VERSION, description="A version instead of the latest.")
]
WorkflowId = Annotated[str, Path(description="The workflow's id.")]
_ONE = f"{API}/workflows/{{workflow_id}}"
_BODY = (400, 413, 415, 422)
_WRITE = (403,)


OnConflictParam = Annotated[
    OnConflict,
    Query(
        alias="onConflict",
        description="When a workflow of the same name exists: `fail` (409 "
        "WORKFLOW_NAME_TAKEN, the default) or `newVersion` (write the next version of it).",
    ),
]


def _may_write(caller: Caller) -> Callable[[str], None]:
    """The write check on an existing workflow that ``onConflict=newVersion`` updates."""
    return lambda workflow_id: authorize(caller.principal, "write", workflow_id)


def _location(workflow: WorkflowDefinition) -> dict[str, str]:
    return {"Location": f"{API}/workflows/{workflow.id}", "ETag": f'"{workflow.version}"'}


@router.post(
    f"{API}/workflows",
    status_code=201,
    response_model=WorkflowDefinition,
    responses=errors(*_BODY, *_WRITE, 409),
    openapi_extra=definition_body(),
)
async def create_workflow(
    request: Request, caller: Writer, on_conflict: OnConflictParam = "fail"
) -> Response:
    """Create a workflow (version 1) from a JSON or YAML definition; a name the tenant
    already uses answers 409 WORKFLOW_NAME_TAKEN unless `onConflict=newVersion`."""
    document = await read_definition(request)
    workflow = await caller.app.create_workflow(
        document,
        owner=caller.principal.subject,
        on_conflict=on_conflict,
        may_update=_may_write(caller),
    )
    return respond(workflow, 201, _location(workflow))


@router.get(f"{API}/workflows", response_model=WorkflowPage, responses=errors(400))
async def list_workflows(
    caller: Reader,
    active_only: Annotated[bool, Query(description="Active ones only.")] = False,
    tags: Annotated[
        list[str], Query(description="Workflows with every tag (repeat it, or comma-separate).")
    ] = [],  # noqa: B006 - FastAPI copies defaults
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Response:
    """List workflows, newest first."""
    wanted = tuple(part.strip() for value in tags for part in value.split(",") if part.strip())
    page = await caller.app.list_workflows(
        active_only=active_only, tags=wanted, limit=limit, cursor=cursor or None
    )
    return respond_page(page)


@router.post(
    f"{API}/workflows/validate",
    response_model=ValidationResult,
    responses=errors(*_BODY),
    openapi_extra=definition_body(),
)
async def validate_workflow(request: Request, caller: Reader) -> Response:
    """Validate a definition without storing it (dry run)."""
    caller.app.validate(await read_definition(request))
    return respond(ValidationResult(valid=True))


@router.get(_ONE, response_model=WorkflowDefinition, responses=errors(404))
async def get_workflow(workflow_id: WorkflowId, caller: Reader) -> Response:
    """Get a workflow's latest version, with its executionStats."""
    workflow = await caller.app.get_workflow_with_stats(workflow_id)
    return respond(workflow, headers={"ETag": f'"{workflow.version}"'})


@router.put(
    _ONE,
    response_model=WorkflowDefinition,
    responses=errors(*_BODY, *_WRITE, 404, 409),
    openapi_extra=definition_body(),
)
async def update_workflow(
    request: Request,
    workflow_id: WorkflowId,
    caller: Writer,
    if_match: Annotated[
        str,
        Header(
            pattern=r'^(\*|(W/)?"?[0-9]{1,10}"?)$',
            description="The version this update expects (lost-update guard); `*`: any.",
        ),
    ] = "*",
) -> Response:
    """Write a new immutable version; ``If-Match: <version>`` guards against lost updates."""
    expected = if_match_version(if_match)
    document = await read_definition(request)
    workflow = await caller.app.update_workflow(workflow_id, document, expected_version=expected)
    return respond(workflow, headers={"ETag": f'"{workflow.version}"'})


@router.delete(_ONE, status_code=204, responses=errors(*_WRITE, 404))
async def delete_workflow(workflow_id: WorkflowId, caller: Deleter) -> Response:
    """Delete a workflow; its versions stay readable for the executions pinned to them."""
    await caller.app.delete_workflow(workflow_id)
    return Response(status_code=204)


@router.post(
    f"{_ONE}/activate", response_model=WorkflowDefinition, responses=errors(*_WRITE, 404, 409)
)
async def activate_workflow(workflow_id: WorkflowId, caller: Writer) -> Response:
    """Activate a workflow (its triggers start executions again); a no-op if active."""
    return respond(await caller.app.set_active(workflow_id, True))


@router.post(
    f"{_ONE}/deactivate", response_model=WorkflowDefinition, responses=errors(*_WRITE, 404, 409)
)
async def deactivate_workflow(workflow_id: WorkflowId, caller: Writer) -> Response:
    """Deactivate a workflow: triggers stop starting it; manual execute still works."""
    return respond(await caller.app.set_active(workflow_id, False))


@router.get(f"{_ONE}/versions", response_model=WorkflowList, responses=errors(404))
async def list_versions(workflow_id: WorkflowId, caller: Reader) -> Response:
    """List every version of a workflow, oldest first."""
    return respond_items(await caller.app.list_versions(workflow_id))


@router.get(
    f"{_ONE}/versions/{{version:int}}",
    response_model=WorkflowDefinition,
    responses=errors(400, 404),
)
async def get_version(
    workflow_id: WorkflowId,
    version: Annotated[int, Path(ge=1, le=MAX_VERSION, description="The version number.")],
    caller: Reader,
) -> Response:
    """Get one immutable version of a workflow."""
    return respond(await caller.app.get_version(workflow_id, version))


@router.get(
    f"{_ONE}/export",
    response_model=WorkflowDefinition,
    responses={
        **errors(400, 404),
        200: {
            "description": "The definition without server fields.",
            "content": {
                "application/yaml": {"schema": {"$ref": "#/components/schemas/WorkflowDefinition"}}
            },
        },
    },
)
async def export_workflow(
    workflow_id: WorkflowId,
    caller: Reader,
    format: Annotated[Literal["json", "yaml"], Query(description="Document format.")] = "json",
    version: Version = None,
) -> Response:
    """Export a definition without server fields; the import endpoint takes it back."""
    document = await caller.app.export_workflow(workflow_id, version)
    if format == "yaml":
        text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
        return Response(text, media_type="application/yaml")
    return JSONResponse(document)


@router.get(
    f"{_ONE}/steps/{{step_id}}/graph", response_model=DecisionGraph, responses=errors(400, 404)
)
async def decision_graph(
    workflow_id: WorkflowId,
    step_id: Annotated[str, Path(description="A decision step's id.")],
    caller: Reader,
    version: Version = None,
) -> Response:
    """Render a decision step's tree as a Mermaid flowchart."""
    graph = await caller.app.decision_graph(workflow_id, step_id, version)
    return respond(
        DecisionGraph(workflow_id=workflow_id, step_id=step_id, version=version, graph=graph)
    )


@router.post(
    f"{_ONE}/execute",
    tags=["executions"],
    status_code=202,
    response_model=ExecutionView,
    responses=errors(*_BODY, *_WRITE, 404, 409),
    dependencies=[Depends(json_only)],
)
async def execute_workflow(
    workflow_id: WorkflowId,
    caller: Executor,
    body: Annotated[ExecutionInput, Body(default_factory=ExecutionInput)],
) -> Response:
    """Start an execution; it runs asynchronously (poll it or follow its events)."""
    execution = await caller.app.start_execution(
        StartRequest(workflow_id, body.input, version=body.version, execution_id=body.execution_id)
    )
    await queue_views(caller.app, [execution])  # a start that queued: its place
    return respond(execution, 202, {"Location": f"{API}/executions/{execution.id}"})
