"""``templates``, ``template(id)`` and ``instantiateTemplate``: the template gallery, as
``/api/v1/templates`` serves it (docs/templates.md)."""

# mypy: disable-error-code="untyped-decorator"
# (strawberry.field(...) with arguments is typed as returning Any)
from __future__ import annotations

from typing import Annotated, Any

import strawberry
from strawberry.scalars import JSON

from shared.api.auth import authorize
from shared.api.graphql.context import GqlInfo, caller
from shared.api.graphql.errors import (
    ConflictError,
    ForbiddenError,
    InvalidStateError,
    NotFoundError,
    ValidationErrors,
    as_payload,
)
from shared.api.graphql.workflow_types import Workflow
from shared.errors import InputInvalid
from shared.templates import (
    Instantiated,
    InstantiateRequest,
    Template,
    TemplateNotFound,
    get_template,
    instantiate_template,
    list_templates,
)

__all__ = ["TemplateMutation", "TemplateQuery", "WorkflowTemplate"]


@strawberry.type(description="A parameterised workflow template of the gallery.")
class WorkflowTemplate:
    id: strawberry.ID
    name: str
    description: str
    tags: list[str]
    parameters: JSON = strawberry.field(
        description="JSON Schema of the parameters (defaults, and `examples`)."
    )
    definition: JSON = strawberry.field(
        description="The definition, with `{{param: NAME}}` placeholders."
    )

    @classmethod
    def from_model(cls, template: Template) -> WorkflowTemplate:
        return cls(
            id=strawberry.ID(template.id),
            name=template.name,
            description=template.description,
            tags=list(template.tags),
            parameters=JSON(template.parameters),
            definition=JSON(template.definition),
        )


@strawberry.type(description="An instantiated template, and the workflow saved from it.")
class TemplateInstance:
    definition: JSON = strawberry.field(description="The definition, parameters in place.")
    workflow: Workflow | None = strawberry.field(
        description="The workflow created (`save: true`); null otherwise."
    )

    @classmethod
    def from_instantiated(cls, made: Instantiated) -> TemplateInstance:
        workflow = Workflow.from_model(made.workflow) if made.workflow else None
        return cls(definition=JSON(made.definition), workflow=workflow)


InstantiatePayload = Annotated[
    TemplateInstance
    | ValidationErrors
    | NotFoundError
    | ConflictError
    | InvalidStateError
    | ForbiddenError,
    strawberry.union(
        "InstantiateTemplatePayload",
        description="The definition (and the saved workflow), or why it was refused: "
        "TEMPLATE_NOT_FOUND, TEMPLATE_PARAMS_INVALID (issues point into the parameters), "
        "VALIDATION_FAILED, WORKFLOW_NAME_TAKEN; nothing is stored on error.",
    ),
]


@strawberry.type
class TemplateQuery:
    @strawberry.field(description="Every template of the gallery.")
    async def templates(self, info: GqlInfo) -> list[WorkflowTemplate]:
        authorize((await caller(info)).principal, "read")
        return [WorkflowTemplate.from_model(t) for t in list_templates()]

    @strawberry.field(description="One template, or null when there is no such id.")
    async def template(self, info: GqlInfo, id: strawberry.ID) -> WorkflowTemplate | None:
        authorize((await caller(info)).principal, "read")
        try:
            return WorkflowTemplate.from_model(get_template(str(id)))
        except TemplateNotFound:
            return None


@strawberry.type
class TemplateMutation:
    @strawberry.mutation(
        description="Instantiate a template with `parameters`; with `save`, create the "
        "workflow as `createWorkflow` does (the permission to create workflows)."
    )
    async def instantiate_template(
        self,
        info: GqlInfo,
        id: strawberry.ID,
        parameters: JSON | None = None,
        name: str | None = None,
        save: bool = False,
    ) -> InstantiatePayload:
        who = await caller(info)

        async def work() -> Instantiated:
            authorize(who.principal, "write" if save else "read")
            values: Any = {} if parameters is None else parameters
            if not isinstance(values, dict):
                raise InputInvalid("parameters must be an object", path="/parameters")
            return await instantiate_template(
                who.app,
                InstantiateRequest(str(id), values, name, save),
                owner=who.principal.subject,
                may_update=lambda workflow_id: authorize(who.principal, "write", workflow_id),
            )

        return await as_payload(work(), TemplateInstance.from_instantiated)
