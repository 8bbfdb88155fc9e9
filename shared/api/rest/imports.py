"""``POST /api/v1/workflows/import``: our own definitions, or, with ``format=gcw|asl``,
a Google Cloud Workflows or AWS Step Functions document translated into ours.

Without ``format`` the body holds our definitions (a JSON object or list, or YAML
documents) and all of them are created, or none. With ``format`` the body is one
source document (JSON or YAML) and the answer is the translation (``shared.importers``):
a dry run by default (200, nothing stored, the permission to read is enough), or with
``save=true`` the workflow created as ``POST /workflows`` creates it (201), provided the
translation passes our validation (else 422 VALIDATION_FAILED) and nothing in it was
unsupported (else 422 IMPORT_UNSUPPORTED, unless ``acceptUnsupported=true``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import Depends, Query, Request
from pydantic import Field
from starlette.responses import JSONResponse, Response

from shared.api._import import ImportOptions, import_source, status_of
from shared.api.auth import Principal, authorize
from shared.api.edge import edge_of
from shared.api.middleware import JSON_MEDIA
from shared.api.rest._bodies import read_documents
from shared.api.rest._deps import API, Caller, dump, principal_of, respond
from shared.api.rest._docs import errors, router_for
from shared.api.rest.schemas import IssueBody, WorkflowList, _Body
from shared.api.rest.workflows import OnConflictParam
from shared.app.service import OnConflict
from shared.errors import InputInvalid, WorkflowError
from shared.models import WorkflowDefinition

__all__ = ["ImportFinding", "ImportResultBody", "ImportSaved", "router"]

router = router_for("workflows")

SourceFormat = Literal["gcw", "asl"]


class ImportFinding(_Body):
    """A construct translated with a difference (warning) or not translated (unsupported)."""

    code: str
    message: str
    path: str
    """JSON pointer into the SOURCE document ('' for the whole document)."""


class ImportResultBody(_Body):
    """A translation: our definition and what did not translate exactly."""

    definition: dict[str, Any]
    """The translated definition (the body ``POST /workflows`` takes)."""
    valid: bool
    """Whether the definition passes our validation (``issues`` is empty)."""
    issues: list[IssueBody]
    """Validation problems, addressed by JSON pointers into ``definition``."""
    warnings: list[ImportFinding]
    unsupported: list[ImportFinding]


class ImportSaved(_Body):
    """A translation saved as a workflow (``save=true``)."""

    workflow: WorkflowDefinition
    """The workflow as ``POST /workflows`` answers it."""
    import_: ImportResultBody = Field(alias="import")


@dataclass(frozen=True)
class ImportCall:
    """The caller of an import and what it asked for."""

    caller: Caller
    format: SourceFormat | None
    save: bool
    accept_unsupported: bool
    name: str | None


async def _import_call(
    request: Request,
    principal: Annotated[Principal, Depends(principal_of)],
    format: Annotated[
        SourceFormat | None,
        Query(
            description="Translate one source document: `gcw` (Google Cloud Workflows) or "
            "`asl` (AWS Step Functions). Without it the body holds our own definitions."
        ),
    ] = None,
    save: Annotated[
        bool,
        Query(description="With `format`: store the translation (default: a dry run)."),
    ] = False,
    accept_unsupported: Annotated[
        bool,
        Query(
            alias="acceptUnsupported",
            description="With `format` and `save`: store a valid translation even when some "
            "constructs were unsupported.",
        ),
    ] = False,
    name: Annotated[
        str | None,
        Query(min_length=1, max_length=200, description="With `format`: the workflow's name."),
    ] = None,
) -> ImportCall:
    """Authenticate; a translation dry run needs the read permission (as validating a
    definition does), anything that stores needs the write permission."""
    dry_run = format is not None and not save
    authorize(principal, "read" if dry_run else "write")
    app = edge_of(request).app.for_tenant(principal.tenant)
    return ImportCall(Caller(principal, app), format, save, accept_unsupported, name)


Importer = Annotated[ImportCall, Depends(_import_call)]


def _source_body() -> dict[str, Any]:
    """``openapi_extra``: our definitions, or with ``format`` one source document."""
    ours: dict[str, Any] = {"$ref": "#/components/schemas/WorkflowDefinition"}
    source = {
        "description": "With `format`: a Cloud Workflows (an object, or a list of steps) "
        "or Step Functions document.",
        "anyOf": [{"type": "object"}, {"type": "array"}],
    }
    many = {"anyOf": [ours, {"type": "array", "items": ours, "minItems": 1}, source]}
    content = {media: {"schema": many} for media in sorted(JSON_MEDIA)}
    content["application/yaml"] = {"schema": {"anyOf": [ours, source]}}
    return {"requestBody": {"required": True, "content": content}}


async def _source_text(request: Request) -> str:
    try:
        text = (await request.body()).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputInvalid(f"body is not UTF-8: {exc.reason}", code="IMPORT_NOT_TEXT") from None
    if not text.strip():
        raise InputInvalid("body is required")
    return text


async def _translate(call: ImportCall, request: Request, on_conflict: OnConflict) -> Response:
    """Translate the body from ``call.format``; store it when asked and allowed."""
    assert call.format is not None
    principal = call.caller.principal
    options = ImportOptions(call.format, call.save, call.accept_unsupported, call.name, on_conflict)
    try:
        imported = await import_source(
            call.caller.app,
            await _source_text(request),
            options,
            owner=principal.subject,
            may_update=lambda workflow_id: authorize(principal, "write", workflow_id),
        )
    except WorkflowError as exc:
        status = status_of(exc)
        if status is None:
            raise
        return JSONResponse({"error": exc.to_dict()}, status_code=status)
    workflow = imported.workflow
    if workflow is None:
        return JSONResponse(imported.result.to_dict())
    headers = {"Location": f"{API}/workflows/{workflow.id}", "ETag": f'"{workflow.version}"'}
    body = {"workflow": dump(workflow), "import": imported.result.to_dict()}
    return JSONResponse(body, status_code=201, headers=headers)


@router.post(
    f"{API}/workflows/import",
    status_code=201,
    response_model=WorkflowList | ImportSaved,
    response_description="Created: the workflows, or with `format` and `save` the workflow "
    "and its translation.",
    responses={
        200: {
            "model": ImportResultBody,
            "description": "With `format` and without `save`: the translation (nothing stored).",
        },
        **errors(400, 403, 409, 413, 415, 422),
    },
    openapi_extra=_source_body(),
)
async def import_workflows(
    request: Request, call: Importer, on_conflict: OnConflictParam = "fail"
) -> Response:
    """Import our definitions: a JSON object or list, or multi-document YAML; all or none
    (a taken name: 409 WORKFLOW_NAME_TAKEN unless `onConflict=newVersion`).

    With `format=gcw|asl`: translate one Cloud Workflows or Step Functions document;
    a dry run (200) unless `save=true`, which stores a valid translation with nothing
    unsupported (or with `acceptUnsupported=true`) as a new workflow (201); else 422
    (`VALIDATION_FAILED`, or `IMPORT_UNSUPPORTED` with the source's JSON pointers)."""
    if call.format is not None:
        return await _translate(call, request, on_conflict)
    documents = await read_documents(request)
    principal = call.caller.principal
    created = await call.caller.app.import_workflows(
        documents,
        owner=principal.subject,
        on_conflict=on_conflict,
        may_update=lambda workflow_id: authorize(principal, "write", workflow_id),
    )
    return respond(WorkflowList(items=created), 201)
