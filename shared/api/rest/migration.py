"""Moving running executions to another workflow version (``docs/migration.md``):
``POST /executions/{id}/migrate`` and ``POST /workflows/{id}/executions/migrate``.

Both plan by default (``dryRun`` true) and answer the plan; with ``dryRun`` false the
single form applies a safe plan (200, ``applied``) or refuses (409
``MIGRATION_REFUSED`` with every reason in ``errors``), and the bulk form answers each
execution's result. Same role as redrive (``operate``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Path, Request
from pydantic import Field, StrictBool
from starlette.responses import JSONResponse, Response

from shared.api.auth import Principal, authorize
from shared.api.edge import edge_of
from shared.api.rest._bodies import json_only
from shared.api.rest._deps import API, Caller, ExecutionOperator, principal_of, respond
from shared.api.rest._docs import errors, router_for
from shared.api.rest.schemas import _Body
from shared.app.migration import (
    MAX_BULK,
    MigrationOutcome,
    migrate_execution,
    migrate_request,
    migrate_workflow_executions,
)
from shared.engine.migration import MigrationRefused
from shared.models import ExecutionStatus

__all__ = ["router"]

router = router_for("executions")

_VERSION = Field(ge=1, le=2**31 - 1, strict=True)


class MigrateBody(_Body):
    """Body of ``POST /executions/{id}/migrate``."""

    to_version: int = _VERSION
    """The version to move to (of the execution's workflow)."""
    mapping: dict[str, str] | None = None
    """Source step id -> target step id, for live runs whose step is renamed or replaced
    (unmapped steps keep their id). At most 1000 entries."""
    rerun: list[str] | None = None
    """Steps already done that the target's remaining flow may run again."""
    dry_run: StrictBool = True
    """Only plan (the default); false applies a safe plan."""


class BulkMigrateBody(MigrateBody):
    """Body of ``POST /workflows/{id}/executions/migrate``."""

    from_version: int | None = Field(default=None, ge=1, le=2**31 - 1, strict=True)
    """Only executions on this version (default: any version but ``toVersion``)."""
    status: list[ExecutionStatus] | None = Field(default=None, max_length=10)
    """Only executions in these statuses (default: pending, running, waiting, paused)."""
    limit: int = Field(default=100, ge=1, le=MAX_BULK, strict=True)
    """At most this many executions, newest first."""


class ProblemView(_Body):
    """Why a migration is unsafe: a stable code and a JSON pointer."""

    code: str
    message: str
    path: str


class MoveView(_Body):
    """A live run and the step of the target version it becomes."""

    run_id: str
    scope: str
    status: str
    from_step: str
    to_step: str | None = None
    """``null`` when the target has no such step (``MIGRATION_STEP_MISSING``)."""


class PlanView(_Body):
    """What a migration does, and why it may not."""

    execution_id: str
    workflow_id: str
    from_version: int
    to_version: int
    status: str
    compatible: bool
    moves: list[MoveView]
    problems: list[ProblemView]
    mapping: dict[str, str]
    rerun: list[str]
    reruns: list[str]
    """Done steps the target's remaining flow reaches again (allowed by ``rerun``)."""
    added_variables: dict[str, Any]
    """Variables the target declares that the execution lacks: set to their defaults."""


class MigrationView(_Body):
    """The plan, and whether it was applied."""

    applied: bool
    plan: PlanView


class BulkError(_Body):
    code: str
    message: str
    reasons: list[ProblemView] | None = None


class BulkItem(_Body):
    """One execution of a bulk migration."""

    execution_id: str
    applied: bool
    plan: PlanView | None = None
    error: BulkError | None = None


class BulkView(_Body):
    """Each execution's result, and the counts."""

    items: list[BulkItem]
    applied: int
    refused: int


async def _workflow_operator(
    request: Request, principal: Annotated[Principal, Depends(principal_of)]
) -> Caller:
    """Who may operate the workflow's executions (the role redrive needs)."""
    authorize(principal, "operate", request.path_params.get("workflow_id"))
    return Caller(principal, edge_of(request).app.for_tenant(principal.tenant))


WorkflowOperator = Annotated[Caller, Depends(_workflow_operator)]


def _view(outcome: MigrationOutcome) -> dict[str, Any]:
    return BulkItem.model_validate(outcome.to_dict()).model_dump(
        mode="json", by_alias=True, exclude_none=True
    )


@router.post(
    f"{API}/executions/{{execution_id}}/migrate",
    response_model=MigrationView,
    responses=errors(400, 403, 404, 409, 413, 415, 422),
    dependencies=[Depends(json_only)],
)
async def migrate_one(
    execution_id: Annotated[str, Path(description="The execution's id.")],
    caller: ExecutionOperator,
    body: MigrateBody,
) -> Response:
    """Plan (`dryRun`, the default) or apply the move of a live execution to another
    version of its workflow. Applying is one transaction recorded as an
    `execution.migrated` event; an unsafe plan is refused with 409 `MIGRATION_REFUSED`,
    every reason in `errors` (codes `MIGRATION_*`, JSON pointers) and the plan in
    `details` (`details.retryable`: a step was running, try again)."""
    request = migrate_request(body.to_version, body.mapping, body.rerun, body.dry_run)
    try:
        outcome = await migrate_execution(caller.app, execution_id, request)
    except MigrationRefused as refused:
        return JSONResponse({"error": refused.to_dict()}, status_code=409)
    assert outcome.plan is not None
    return respond(
        MigrationView.model_validate({"applied": outcome.applied, "plan": outcome.plan.to_dict()})
    )


@router.post(
    f"{API}/workflows/{{workflow_id}}/executions/migrate",
    response_model=BulkView,
    responses=errors(400, 403, 404, 413, 415, 422),
    dependencies=[Depends(json_only)],
)
async def migrate_many(
    workflow_id: Annotated[str, Path(description="The workflow's id.")],
    caller: WorkflowOperator,
    body: BulkMigrateBody,
) -> Response:
    """Plan or apply the move of the workflow's executions matching the filter (newest
    first, at most `limit`, read in batches); each moves in its own transaction and
    answers for itself: `applied`, or refused with its reasons."""
    request = migrate_request(body.to_version, body.mapping, body.rerun, body.dry_run)
    outcomes = await migrate_workflow_executions(
        caller.app,
        workflow_id,
        request,
        from_version=body.from_version,
        statuses=body.status,
        limit=body.limit,
    )
    applied = sum(1 for o in outcomes if o.applied)
    refused = sum(1 for o in outcomes if not o.applied and o.error is not None)
    return JSONResponse(
        {"items": [_view(o) for o in outcomes], "applied": applied, "refused": refused}
    )
