"""Template endpoints: the gallery (``GET /templates``, ``GET /templates/{id}``) and
``POST /templates/{id}/instantiate`` (the definition, or with ``save`` the workflow
created as ``POST /workflows`` creates it). See docs/templates.md."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Body, Depends, Path, Request
from pydantic import Field
from starlette.responses import JSONResponse, Response

from shared.api.auth import Principal, authorize
from shared.api.edge import edge_of
from shared.api.rest._bodies import json_only
from shared.api.rest._deps import API, Caller, dump, principal_of, respond
from shared.api.rest._docs import errors, router_for
from shared.api.rest.schemas import _Body
from shared.models import WorkflowDefinition
from shared.templates import (
    InstantiateRequest,
    TemplateNotFound,
    TemplateParamsInvalid,
    get_template,
    list_templates,
)
from shared.templates import instantiate_template as instantiate_use_case

__all__ = ["router"]

router = router_for("templates")

TemplateId = Annotated[str, Path(max_length=100, description="The template's id.")]
_STATUS = {TemplateNotFound.code: 404, TemplateParamsInvalid.code: 400}
"""The statuses of the template errors (the shared table does not know these codes)."""


class TemplateSummary(_Body):
    """A template of the gallery."""

    id: str
    name: str
    description: str
    tags: list[str]
    parameters: dict[str, Any]
    """JSON Schema of the parameters (defaults, and ``examples``)."""


class TemplateList(_Body):
    """Every template of the gallery."""

    items: list[TemplateSummary]


class TemplateDetail(TemplateSummary):
    """A template and its definition, with ``{{param: NAME}}`` placeholders."""

    definition: dict[str, Any]


class InstantiateBody(_Body):
    """Body of ``POST /templates/{id}/instantiate``."""

    parameters: dict[str, Any] = Field(default_factory=dict)
    """Values of the template's parameters; the schema's defaults fill the others."""
    name: str | None = Field(default=None, min_length=1, max_length=200)
    """The workflow's name instead of the template's."""
    save: bool = Field(default=False, strict=True)
    """Create the workflow (201) instead of only answering the definition (200)."""


class TemplateInstance(_Body):
    """An instantiated template: its definition, and the workflow when saved."""

    definition: dict[str, Any]
    """The definition (the body ``POST /workflows`` takes)."""
    workflow: WorkflowDefinition | None = None
    """The workflow created (``save``)."""


async def _viewer(
    request: Request, principal: Annotated[Principal, Depends(principal_of)]
) -> Caller:
    """Any authenticated principal who may read workflows (a viewer is enough)."""
    authorize(principal, "read")
    return Caller(principal, edge_of(request).app.for_tenant(principal.tenant))


Viewer = Annotated[Caller, Depends(_viewer)]


def _refused(exc: TemplateNotFound | TemplateParamsInvalid) -> Response:
    return JSONResponse({"error": exc.to_dict()}, status_code=_STATUS[exc.code])


@router.get(f"{API}/templates", response_model=TemplateList)
async def list_all_templates(caller: Viewer) -> Response:
    """List the templates of the gallery with their parameter schemas."""
    listing = TemplateList.model_validate({"items": [t.summary() for t in list_templates()]})
    return respond(listing)


@router.get(
    f"{API}/templates/{{template_id}}", response_model=TemplateDetail, responses=errors(400, 404)
)
async def get_one_template(template_id: TemplateId, caller: Viewer) -> Response:
    """One template, with its definition and placeholders."""
    try:
        template = get_template(template_id)
    except TemplateNotFound as exc:
        return _refused(exc)
    return respond(template.to_dict())


@router.post(
    f"{API}/templates/{{template_id}}/instantiate",
    status_code=201,
    response_model=TemplateInstance,
    response_description="Created: the definition and the workflow saved from it (`save`).",
    responses={
        200: {"model": TemplateInstance, "description": "Without `save`: the definition."},
        **errors(400, 403, 404, 409, 413, 415, 422),
    },
    dependencies=[Depends(json_only)],
)
async def instantiate_template(
    template_id: TemplateId,
    caller: Viewer,
    body: Annotated[InstantiateBody, Body(default_factory=InstantiateBody)],
) -> Response:
    """Substitute the parameters (400 TEMPLATE_PARAMS_INVALID with JSON pointers into
    them) and validate the definition (422 VALIDATION_FAILED); with `save`, create the
    workflow as `POST /workflows` does (the permission to create workflows, the tenant's
    quotas, 409 WORKFLOW_NAME_TAKEN). Nothing is stored on error."""
    principal = caller.principal
    if body.save:
        authorize(principal, "write")
    request = InstantiateRequest(template_id, body.parameters, body.name, body.save)
    try:
        made = await instantiate_use_case(
            caller.app,
            request,
            owner=principal.subject,
            may_update=lambda workflow_id: authorize(principal, "write", workflow_id),
        )
    except (TemplateNotFound, TemplateParamsInvalid) as exc:
        return _refused(exc)
    answer: dict[str, Any] = {"definition": made.definition}
    if made.workflow is None:
        return JSONResponse(answer)
    answer["workflow"] = dump(made.workflow)
    location = {"Location": f"{API}/workflows/{made.workflow.id}"}
    return JSONResponse(answer, status_code=201, headers=location)
