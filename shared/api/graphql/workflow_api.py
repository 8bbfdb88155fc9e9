"""Workflow queries and mutations: the seed's fields plus union results and batches."""

# mypy: disable-error-code="untyped-decorator"
# (strawberry.field(...) with arguments is typed as returning Any)
from __future__ import annotations

from typing import Annotated

import strawberry

from shared import models
from shared.api.auth import authorize
from shared.api.graphql.context import Caller, GqlInfo, caller
from shared.api.graphql.errors import (
    ConflictError,
    ForbiddenError,
    InvalidStateError,
    NotFoundError,
    ValidationErrors,
    as_payload,
)
from shared.api.graphql.inputs import WorkflowFilter, WorkflowInput, definition_json
from shared.api.graphql.limits import MAX_BATCH
from shared.api.graphql.pagination import PageInfo, check_first
from shared.api.graphql.workflow_types import ExecutionStats, Workflow
from shared.errors import InputInvalid, NotFound

WorkflowPayload = Annotated[
    Workflow
    | ValidationErrors
    | NotFoundError
    | ConflictError
    | InvalidStateError
    | ForbiddenError,
    strawberry.union("WorkflowPayload", description="The workflow, or why it was refused."),
]


@strawberry.type(description="The id of a deleted workflow.")
class DeletedWorkflow:
    id: strawberry.ID


DeletePayload = Annotated[
    DeletedWorkflow
    | ValidationErrors
    | NotFoundError
    | ConflictError
    | InvalidStateError
    | ForbiddenError,
    strawberry.union("DeleteWorkflowPayload"),
]


@strawberry.type(description="One page of workflows and where the next one starts.")
class WorkflowPage:
    items: list[Workflow]
    page_info: PageInfo


# -- use-case calls shared by the seed-shaped and the union-returning fields -----------


async def _create(
    who: Caller, workflow: WorkflowInput, new_version_on_conflict: bool = False
) -> models.WorkflowDefinition:
    authorize(who.principal, "write")
    return await who.app.create_workflow(
        definition_json(workflow),
        owner=who.principal.subject,
        on_conflict="newVersion" if new_version_on_conflict else "fail",
        may_update=lambda workflow_id: authorize(who.principal, "write", workflow_id),
    )


async def _update(
    who: Caller, workflow_id: str, workflow: WorkflowInput, expected_version: int | None
) -> models.WorkflowDefinition:
    authorize(who.principal, "write", workflow_id)
    return await who.app.update_workflow(workflow_id, definition_json(workflow), expected_version)


async def _list(
    who: Caller, filter: WorkflowFilter | None, first: int, after: str | None
) -> WorkflowPage:
    authorize(who.principal, "read")
    wanted = filter or WorkflowFilter()
    page = await who.app.list_workflows(
        active_only=wanted.active_only,
        tags=tuple(wanted.tags or ()),
        limit=check_first(first),
        cursor=after,
    )
    return WorkflowPage(
        items=[Workflow.from_model(w) for w in page.items],
        page_info=PageInfo.from_cursor(page.next_cursor),
    )


@strawberry.type
class WorkflowQuery:
    @strawberry.field(description="A workflow (its head, or `version`); null if absent.")
    async def workflow(
        self, info: GqlInfo, id: strawberry.ID, version: int | None = None
    ) -> Workflow | None:
        who = await caller(info)
        authorize(who.principal, "read", id)
        try:
            if version is None:
                return Workflow.from_model(await who.app.get_workflow(id))
            return Workflow.from_model(await who.app.get_version(id, version))
        except NotFound:
            return None

    @strawberry.field(description="Workflows of the caller's tenant (one page).")
    async def workflows(
        self,
        info: GqlInfo,
        filter: WorkflowFilter | None = None,
        first: int = 50,
        after: str | None = None,
    ) -> list[Workflow]:
        return (await _list(await caller(info), filter, first, after)).items

    @strawberry.field(description="Like `workflows`, with the cursor of the next page.")
    async def workflows_page(
        self,
        info: GqlInfo,
        filter: WorkflowFilter | None = None,
        first: int = 50,
        after: str | None = None,
    ) -> WorkflowPage:
        return await _list(await caller(info), filter, first, after)

    @strawberry.field(description="Statistics over a workflow's latest executions.")
    async def execution_stats(self, info: GqlInfo, workflow_id: strawberry.ID) -> ExecutionStats:
        who = await caller(info)
        authorize(who.principal, "read", workflow_id)
        definition = await who.app.get_workflow_with_stats(workflow_id)
        return ExecutionStats.from_model(definition.execution_stats)


@strawberry.type
class WorkflowMutation:
    @strawberry.mutation(
        description="Create a workflow at version 1 (errors: see docs). A name the tenant "
        "uses is WORKFLOW_NAME_TAKEN unless `newVersionOnConflict` (then a new version of it)."
    )
    async def create_workflow(
        self, info: GqlInfo, input: WorkflowInput, new_version_on_conflict: bool = False
    ) -> Workflow:
        return Workflow.from_model(
            await _create(await caller(info), input, new_version_on_conflict)
        )

    @strawberry.mutation(description="Write a new immutable version of a workflow.")
    async def update_workflow(
        self,
        info: GqlInfo,
        id: strawberry.ID,
        input: WorkflowInput,
        expected_version: int | None = None,
    ) -> Workflow:
        return Workflow.from_model(await _update(await caller(info), id, input, expected_version))

    @strawberry.mutation(description="`createWorkflow` answering errors in the payload.")
    async def create_workflow_result(
        self, info: GqlInfo, input: WorkflowInput, new_version_on_conflict: bool = False
    ) -> WorkflowPayload:
        work = _create(await caller(info), input, new_version_on_conflict)
        return await as_payload(work, Workflow.from_model)

    @strawberry.mutation(description="`updateWorkflow` answering errors in the payload.")
    async def update_workflow_result(
        self,
        info: GqlInfo,
        id: strawberry.ID,
        input: WorkflowInput,
        expected_version: int | None = None,
    ) -> WorkflowPayload:
        work = _update(await caller(info), id, input, expected_version)
        return await as_payload(work, Workflow.from_model)

    @strawberry.mutation(description="Create several workflows; one result per input, in order.")
    async def create_workflows(
        self, info: GqlInfo, inputs: list[WorkflowInput], new_version_on_conflict: bool = False
    ) -> list[WorkflowPayload]:
        if len(inputs) > MAX_BATCH:
            raise InputInvalid(f"at most {MAX_BATCH} items per batch", path="/inputs")
        who = await caller(info)
        return [
            await as_payload(_create(who, item, new_version_on_conflict), Workflow.from_model)
            for item in inputs
        ]

    @strawberry.mutation(description="Activate or deactivate (writes a new version if it changes).")
    async def set_workflow_active(
        self, info: GqlInfo, id: strawberry.ID, active: bool
    ) -> WorkflowPayload:
        who = await caller(info)

        async def work() -> models.WorkflowDefinition:
            authorize(who.principal, "write", id)
            return await who.app.set_active(id, active)

        return await as_payload(work(), Workflow.from_model)

    @strawberry.mutation(description="Delete a workflow.")
    async def delete_workflow(self, info: GqlInfo, id: strawberry.ID) -> DeletePayload:
        who = await caller(info)

        async def work() -> None:
            authorize(who.principal, "delete", id)
            await who.app.delete_workflow(id)

        return await as_payload(work(), lambda _: DeletedWorkflow(id=id))
