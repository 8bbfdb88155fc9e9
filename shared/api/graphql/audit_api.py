"""The audit log in GraphQL: every mutation recorded (``AuditMutations``), and the
``auditLog`` query for the admins of a tenant.

``AuditMutations`` wraps the resolvers of the ``Mutation`` root's fields: once a
mutation has answered, it records one entry per object acted on (one per item of a
batch), with the principal, the target ids taken from the arguments and the result,
and the outcome: ``ok``, the code of the payload's error member, or the code of the
error raised (a batch cut short by an error: its answered items, then the item the
error hit, as ``as_payload`` notes them in ``errors.answered``). Arguments are read
for ids only; no input value is ever recorded.
"""

# mypy: disable-error-code="untyped-decorator"
# (strawberry.field(...) with arguments is typed as returning Any)
from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeAlias

import strawberry
from graphql import GraphQLResolveInfo
from strawberry.extensions import SchemaExtension

from shared.api.auth import Principal, authorize
from shared.api.graphql.context import GqlInfo, caller
from shared.api.graphql.errors import UserError, answered
from shared.api.graphql.pagination import PageInfo, check_first
from shared.app import WorkflowApp
from shared.app.audit import outcome_of
from shared.errors import WorkflowError
from shared.models.audit import AuditEntry
from shared.ports.audit import AuditQuery

__all__ = ["MUTATION_ACTIONS", "AuditLogQuery", "AuditMutations"]

Info: TypeAlias = "GraphQLResolveInfo[Any]"

MUTATION_ACTIONS: dict[str, str] = {
    "createWorkflow": "workflow.create",
    "createWorkflowResult": "workflow.create",
    "createWorkflows": "workflow.create",
    "updateWorkflow": "workflow.update",
    "updateWorkflowResult": "workflow.update",
    "deleteWorkflow": "workflow.delete",
    "executeWorkflow": "execution.start",
    "executeWorkflowResult": "execution.start",
    "executeWorkflows": "execution.start",
    "cancelExecution": "execution.cancel",
    "cancelExecutions": "execution.cancel",
    "pauseExecution": "execution.pause",
    "resumeExecution": "execution.resume",
    "redriveExecution": "execution.redrive",
    "sendEvent": "execution.event",
}
"""The action of each mutation (``setWorkflowActive``: ``workflow.activate`` or
``workflow.deactivate``; any other: ``graphql.<field>``)."""


def _action(field: str, arguments: dict[str, Any]) -> str:
    if field == "setWorkflowActive":
        return "workflow.activate" if arguments.get("active") else "workflow.deactivate"
    return MUTATION_ACTIONS.get(field, f"graphql.{field}")


def _targets(arguments: dict[str, Any], count: int) -> list[str | None]:
    """The id each item of the call names in its arguments (one per result item)."""
    if isinstance(arguments.get("ids"), list):
        return [str(value) for value in arguments["ids"]]
    if isinstance(arguments.get("requests"), list):
        return [str(item.get("workflowId")) for item in arguments["requests"]]
    single = arguments.get("executionId") or arguments.get("id")
    return [str(single) if single is not None else None] * count


def _outcome(item: Any) -> str:
    return str(item.code) if isinstance(item, UserError) else "ok"


class AuditMutations(SchemaExtension):
    """Records each mutation of the operation in the audit log (see the module)."""

    def resolve(
        self,
        _next: Callable[..., Any],
        root: Any,
        info: Info,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        result = _next(root, info, *args, **kwargs)
        if info.parent_type.name != "Mutation" or not isinstance(info.context, dict):
            return result
        return self._recorded(result, info, kwargs)

    async def _recorded(self, result: Any, info: Info, arguments: Any) -> Any:
        token = answered.set([])
        try:
            value = await result if inspect.isawaitable(result) else result
        except Exception as exc:
            # A batch cut short: the items answered before the error, then the one it hit.
            done = answered.get() or []
            await _record(info, arguments, done)
            await _record(info, arguments, [None], error=exc, first=len(done))
            raise
        finally:
            answered.reset(token)
        await _record(info, arguments, value if isinstance(value, list) else [value])
        return value


async def _record(
    info: Info,
    arguments: dict[str, Any],
    items: Sequence[Any],
    *,
    error: BaseException | None = None,
    first: int = 0,
) -> None:
    """One entry per item; ``first``: the index of ``items[0]`` among the call's items."""
    context = info.context
    principal, app = context.get("principal"), context.get("app")
    if not isinstance(principal, Principal) or not isinstance(app, WorkflowApp):
        return
    if app.auditor is None:
        return
    action = _action(info.field_name, arguments)
    targets = _targets(arguments, first + len(items))
    for index, item in enumerate(items, start=first):
        target = targets[index] if index < len(targets) else None
        execution_id = None
        made = getattr(item, "id", None)
        if action == "execution.start" and made is not None:
            execution_id = str(made)
            target = str(getattr(item, "workflow_id", target))
        elif target is None and made is not None:
            target = str(made)
        await app.auditor.record(
            tenant=principal.tenant,
            subject=principal.subject,
            action=action,
            target=target,
            execution_id=execution_id,
            outcome=outcome_of(error) if error is not None else _outcome(item),
            via="graphql",
        )


@strawberry.type(name="AuditEntry", description="One state-changing call, as the log keeps it.")
class AuditRecord:
    id: strawberry.ID
    time: datetime
    tenant: str
    subject: str = strawberry.field(description="Who called (`trigger:<kind>` for triggers).")
    action: str = strawberry.field(description="`<object>.<verb>`, e.g. `workflow.create`.")
    target: str | None = strawberry.field(description="The workflow or execution id.")
    execution_id: str | None = strawberry.field(description="The execution a start made.")
    outcome: str = strawberry.field(description="`ok` or the error code of the answer.")
    status: int | None = strawberry.field(description="HTTP status, for REST calls.")
    request_id: str | None = strawberry.field(description="X-Request-Id, else the trace id.")
    via: str = strawberry.field(description="`rest`, `graphql` or `trigger`.")

    @classmethod
    def from_model(cls, entry: AuditEntry) -> AuditRecord:
        return cls(
            id=strawberry.ID(entry.id),
            time=entry.time,
            tenant=entry.tenant,
            subject=entry.subject,
            action=entry.action,
            target=entry.target,
            execution_id=entry.execution_id,
            outcome=entry.outcome,
            status=entry.status,
            request_id=entry.request_id,
            via=entry.via,
        )


@strawberry.input(description="Filters of `auditLog`; every one given must match.")
class AuditFilter:
    action: str | None = None
    subject: str | None = None
    target: str | None = None
    since: datetime | None = strawberry.field(default=None, description="At or after.")
    until: datetime | None = strawberry.field(default=None, description="Before.")


@strawberry.type(description="A page of the audit log, newest first.")
class AuditLogPage:
    items: list[AuditRecord]
    page_info: PageInfo


@strawberry.type
class AuditLogQuery:
    @strawberry.field(description="The tenant's audit log, newest first (admins only).")
    async def audit_log(
        self,
        info: GqlInfo,
        filter: AuditFilter | None = None,
        first: int = 50,
        after: str | None = None,
    ) -> AuditLogPage:
        who = await caller(info)
        authorize(who.principal, "admin")
        if who.app.auditor is None:
            raise WorkflowError("this deployment keeps no audit log", code="NOT_FOUND")
        wanted = filter or AuditFilter()
        page = await who.app.auditor.log.query(
            AuditQuery(
                tenant=who.principal.tenant,
                action=wanted.action,
                subject=wanted.subject,
                target=wanted.target,
                since=wanted.since,
                until=wanted.until,
                limit=check_first(first),
                cursor=after or None,
            )
        )
        return AuditLogPage(
            items=[AuditRecord.from_model(entry) for entry in page.items],
            page_info=PageInfo.from_cursor(page.next_cursor),
        )
