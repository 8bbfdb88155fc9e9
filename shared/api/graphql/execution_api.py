"""Execution queries and starts: the seed's fields plus union results and batches."""

# mypy: disable-error-code="untyped-decorator"
# (strawberry.field(...) with arguments is typed as returning Any)
from __future__ import annotations

from typing import Annotated, Any

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
from shared.api.graphql.execution_types import WorkflowExecution
from shared.api.graphql.inputs import ExecuteWorkflowRequest, ExecutionFilter, ExecutionInput
from shared.api.graphql.limits import MAX_BATCH
from shared.api.graphql.pagination import PageInfo, check_first
from shared.app.service import StartRequest
from shared.errors import InputInvalid, NotFound

ExecutionPayload = Annotated[
    WorkflowExecution
    | ValidationErrors
    | NotFoundError
    | ConflictError
    | InvalidStateError
    | ForbiddenError,
    strawberry.union("ExecutionPayload", description="The execution, or why it was refused."),
]


@strawberry.type(description="One page of executions and where the next one starts.")
class ExecutionPage:
    items: list[WorkflowExecution]
    page_info: PageInfo


async def load_execution(who: Caller, execution_id: str, action: str) -> models.WorkflowExecution:
    """The execution (NOT_FOUND across tenants) once ``action`` is authorized on its workflow."""
    execution = await who.app.get_execution(execution_id)
    authorize(who.principal, action, execution.workflow_id)
    return execution


async def start(who: Caller, workflow_id: str, request: ExecutionInput) -> models.WorkflowExecution:
    """Start an execution by hand (inactive workflows too, as ``wfe run`` does)."""
    authorize(who.principal, "execute", workflow_id)
    data: Any = {} if request.input is None else request.input
    return await who.app.start_execution(
        StartRequest(
            workflow_id=workflow_id,
            input=data,
            version=request.version,
            execution_id=request.execution_id,
            trigger={"type": "manual", "by": who.principal.subject, "api": "graphql"},
        )
    )


async def _list(
    who: Caller, filter: ExecutionFilter | None, first: int, after: str | None
) -> ExecutionPage:
    wanted = filter or ExecutionFilter()
    authorize(who.principal, "read", wanted.workflow_id)
    page = await who.app.list_executions(
        workflow_id=wanted.workflow_id,
        status=models.ExecutionStatus(wanted.status.value) if wanted.status else None,
        limit=check_first(first),
        cursor=after,
        started_from=wanted.started_from,
        started_before=wanted.started_before,
    )
    return ExecutionPage(
        items=[WorkflowExecution.from_model(e) for e in page.items],
        page_info=PageInfo.from_cursor(page.next_cursor),
    )


@strawberry.type
class ExecutionQuery:
    @strawberry.field(description="An execution of the caller's tenant; null if absent.")
    async def execution(self, info: GqlInfo, id: strawberry.ID) -> WorkflowExecution | None:
        try:
            execution = await load_execution(await caller(info), id, "read")
        except NotFound:
            return None
        return WorkflowExecution.from_model(execution)

    @strawberry.field(description="Executions, newest first (one page).")
    async def executions(
        self,
        info: GqlInfo,
        filter: ExecutionFilter | None = None,
        first: int = 50,
        after: str | None = None,
    ) -> list[WorkflowExecution]:
        return (await _list(await caller(info), filter, first, after)).items

    @strawberry.field(description="Like `executions`, with the cursor of the next page.")
    async def executions_page(
        self,
        info: GqlInfo,
        filter: ExecutionFilter | None = None,
        first: int = 50,
        after: str | None = None,
    ) -> ExecutionPage:
        return await _list(await caller(info), filter, first, after)


@strawberry.type
class ExecutionMutation:
    @strawberry.mutation(description="Start an execution of a workflow (errors: see docs).")
    async def execute_workflow(
        self, info: GqlInfo, id: strawberry.ID, input: ExecutionInput
    ) -> WorkflowExecution:
        return WorkflowExecution.from_model(await start(await caller(info), id, input))

    @strawberry.mutation(description="`executeWorkflow` answering errors in the payload.")
    async def execute_workflow_result(
        self, info: GqlInfo, id: strawberry.ID, input: ExecutionInput
    ) -> ExecutionPayload:
        return await as_payload(start(await caller(info), id, input), WorkflowExecution.from_model)

    @strawberry.mutation(description="Start several executions; one result per request, in order.")
    async def execute_workflows(
        self, info: GqlInfo, requests: list[ExecuteWorkflowRequest]
    ) -> list[ExecutionPayload]:
        if len(requests) > MAX_BATCH:
            raise InputInvalid(f"at most {MAX_BATCH} items per batch", path="/requests")
        who = await caller(info)
        return [
            await as_payload(
                start(who, item.workflow_id, item.execution()), WorkflowExecution.from_model
            )
            for item in requests
        ]
