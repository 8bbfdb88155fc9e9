"""Workflow endpoints: CRUD, versions, activation, execute, import/export, validate."""

from __future__ import annotations

import yaml
from starlette.responses import JSONResponse, Response

from shared.api.rest._edge import authorized, respond, respond_items, respond_page
from shared.api.rest._request import (
    if_match_version,
    parse_body,
    query_bool,
    query_choice,
    query_int,
    query_limit,
    query_list,
    read_definition,
    read_documents,
    read_json,
)
from shared.api.rest._router import API, JSON, YAML, Call, Payload, Query, router
from shared.api.rest.schemas import (
    DecisionGraph,
    ExecutionInput,
    ValidationResult,
    WorkflowList,
    WorkflowPage,
)
from shared.app.service import StartRequest
from shared.models import WorkflowDefinition, WorkflowExecution

_DEFINITION = Payload(WorkflowDefinition, media=(JSON, YAML))
_WORKFLOW = Payload(WorkflowDefinition)
_BODY_ERRORS = (400, 413, 422)
"""Definition bodies: YAML or JSON, so never 415."""
LIMIT = Query(
    "limit", {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}, "Page size."
)
CURSOR = Query("cursor", {"type": "string"}, "The nextCursor of the previous page.")
_VERSION = Query("version", {"type": "integer", "minimum": 1}, "A version instead of the latest.")


def _location(workflow: WorkflowDefinition) -> dict[str, str]:
    return {"Location": f"{API}/workflows/{workflow.id}", "ETag": f'"{workflow.version}"'}


@router.add(
    "POST",
    f"{API}/workflows",
    tag="workflows",
    action="write",
    status=201,
    request=_DEFINITION,
    response=_WORKFLOW,
    errors=_BODY_ERRORS,
    headers=("Location", "ETag"),
)
async def create_workflow(call: Call) -> Response:
    """Create a workflow (version 1) from a JSON or YAML definition."""
    principal, app = await authorized(call)
    document = await read_definition(call.request)
    workflow = await app.create_workflow(document, owner=principal.subject)
    return respond(workflow, 201, _location(workflow))


@router.add(
    "GET",
    f"{API}/workflows",
    tag="workflows",
    action="read",
    response=Payload(WorkflowPage),
    errors=(400,),
    query=(
        Query("active_only", {"type": "boolean", "default": False}, "Active ones only."),
        Query("tags", {"type": "string"}, "Comma-separated; workflows with every tag."),
        LIMIT,
        CURSOR,
    ),
)
async def list_workflows(call: Call) -> Response:
    """List workflows, newest first."""
    _, app = await authorized(call)
    page = await app.list_workflows(
        active_only=query_bool(call.request, "active_only"),
        tags=query_list(call.request, "tags"),
        limit=query_limit(call.request),
        cursor=call.request.query_params.get("cursor") or None,
    )
    return respond_page(page)


@router.add(
    "POST",
    f"{API}/workflows/import",
    tag="workflows",
    action="write",
    status=201,
    request=Payload(WorkflowDefinition, media=(JSON, YAML), many=True),
    response=Payload(WorkflowList),
    errors=_BODY_ERRORS,
)
async def import_workflows(call: Call) -> Response:
    """Import definitions: a JSON object or list, or multi-document YAML; all or none."""
    principal, app = await authorized(call)
    documents = await read_documents(call.request)
    created = await app.import_workflows(documents, owner=principal.subject)
    return respond(WorkflowList(items=created), 201)


@router.add(
    "POST",
    f"{API}/workflows/validate",
    tag="workflows",
    action="read",
    request=_DEFINITION,
    response=Payload(ValidationResult),
    errors=_BODY_ERRORS,
)
async def validate_workflow(call: Call) -> Response:
    """Validate a definition without storing it (dry run)."""
    _, app = await authorized(call)
    app.validate(await read_definition(call.request))
    return respond(ValidationResult(valid=True))


@router.add(
    "GET",
    f"{API}/workflows/{{workflow_id}}",
    tag="workflows",
    action="read",
    response=_WORKFLOW,
    errors=(404,),
    headers=("ETag",),
)
async def get_workflow(call: Call) -> Response:
    """Get a workflow's latest version, with its executionStats."""
    _, app = await authorized(call, call.path("workflow_id"))
    workflow = await app.get_workflow_with_stats(call.path("workflow_id"))
    return respond(workflow, headers={"ETag": f'"{workflow.version}"'})


@router.add(
    "PUT",
    f"{API}/workflows/{{workflow_id}}",
    tag="workflows",
    action="write",
    request=_DEFINITION,
    response=_WORKFLOW,
    errors=(*_BODY_ERRORS, 404, 409),
    headers=("ETag",),
)
async def update_workflow(call: Call) -> Response:
    """Write a new immutable version; ``If-Match: <version>`` guards against lost updates."""
    workflow_id = call.path("workflow_id")
    _, app = await authorized(call, workflow_id)
    expected = if_match_version(call.request)
    document = await read_definition(call.request)
    workflow = await app.update_workflow(workflow_id, document, expected_version=expected)
    return respond(workflow, headers={"ETag": f'"{workflow.version}"'})


@router.add(
    "DELETE",
    f"{API}/workflows/{{workflow_id}}",
    tag="workflows",
    action="delete",
    status=204,
    errors=(404,),
)
async def delete_workflow(call: Call) -> Response:
    """Delete a workflow; its versions stay readable for the executions pinned to them."""
    _, app = await authorized(call, call.path("workflow_id"))
    await app.delete_workflow(call.path("workflow_id"))
    return Response(status_code=204)


@router.add(
    "POST",
    f"{API}/workflows/{{workflow_id}}/activate",
    tag="workflows",
    action="write",
    response=_WORKFLOW,
    errors=(404, 409),
)
async def activate_workflow(call: Call) -> Response:
    """Activate a workflow (its triggers start executions again); a no-op if active."""
    _, app = await authorized(call, call.path("workflow_id"))
    return respond(await app.set_active(call.path("workflow_id"), True))


@router.add(
    "POST",
    f"{API}/workflows/{{workflow_id}}/deactivate",
    tag="workflows",
    action="write",
    response=_WORKFLOW,
    errors=(404, 409),
)
async def deactivate_workflow(call: Call) -> Response:
    """Deactivate a workflow: triggers stop starting it; manual execute still works."""
    _, app = await authorized(call, call.path("workflow_id"))
    return respond(await app.set_active(call.path("workflow_id"), False))


@router.add(
    "GET",
    f"{API}/workflows/{{workflow_id}}/versions",
    tag="workflows",
    action="read",
    response=Payload(WorkflowList),
    errors=(404,),
)
async def list_versions(call: Call) -> Response:
    """List every version of a workflow, oldest first."""
    _, app = await authorized(call, call.path("workflow_id"))
    return respond_items(await app.list_versions(call.path("workflow_id")))


@router.add(
    "GET",
    f"{API}/workflows/{{workflow_id}}/versions/{{version:int}}",
    tag="workflows",
    action="read",
    response=_WORKFLOW,
    errors=(404,),
)
async def get_version(call: Call) -> Response:
    """Get one immutable version of a workflow."""
    _, app = await authorized(call, call.path("workflow_id"))
    return respond(await app.get_version(call.path("workflow_id"), call.number("version")))


@router.add(
    "GET",
    f"{API}/workflows/{{workflow_id}}/export",
    tag="workflows",
    action="read",
    response=Payload(WorkflowDefinition, media=(JSON, YAML)),
    errors=(400, 404),
    query=(
        Query("format", {"enum": ["json", "yaml"], "default": "json"}, "Document format."),
        _VERSION,
    ),
)
async def export_workflow(call: Call) -> Response:
    """Export a definition without server fields; the import endpoint takes it back."""
    _, app = await authorized(call, call.path("workflow_id"))
    as_yaml = query_choice(call.request, "format", ("json", "yaml")) == "yaml"
    version = query_int(call.request, "version", default=0, low=1) or None
    document = await app.export_workflow(call.path("workflow_id"), version)
    if as_yaml:
        text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
        return Response(text, media_type=YAML)
    return JSONResponse(document)


@router.add(
    "GET",
    f"{API}/workflows/{{workflow_id}}/steps/{{step_id}}/graph",
    tag="workflows",
    action="read",
    response=Payload(DecisionGraph),
    errors=(400, 404),
    query=(_VERSION,),
)
async def decision_graph(call: Call) -> Response:
    """Render a decision step's tree as a Mermaid flowchart."""
    workflow_id, step_id = call.path("workflow_id"), call.path("step_id")
    _, app = await authorized(call, workflow_id)
    version = query_int(call.request, "version", default=0, low=1) or None
    graph = await app.decision_graph(workflow_id, step_id, version)
    return respond(
        DecisionGraph(workflow_id=workflow_id, step_id=step_id, version=version, graph=graph)
    )


@router.add(
    "POST",
    f"{API}/workflows/{{workflow_id}}/execute",
    tag="executions",
    action="execute",
    status=202,
    request=Payload(ExecutionInput, required=False),
    response=Payload(WorkflowExecution),
    errors=(400, 404, 413, 415, 422),
    headers=("Location",),
)
async def execute_workflow(call: Call) -> Response:
    """Start an execution; it runs asynchronously (poll it or follow its events)."""
    workflow_id = call.path("workflow_id")
    _, app = await authorized(call, workflow_id)
    body = parse_body(ExecutionInput, await read_json(call.request, optional=True))
    execution = await app.start_execution(
        StartRequest(
            workflow_id,
            body.input,
            version=body.version,
            execution_id=body.execution_id,
        )
    )
    return respond(execution, 202, {"Location": f"{API}/executions/{execution.id}"})
