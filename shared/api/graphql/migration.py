"""``migrateExecution``: plan or apply the move of a live execution to another version
of its workflow (``docs/migration.md``); the same use case as the REST route."""

# mypy: disable-error-code="untyped-decorator"
# (strawberry.field(...) with arguments is typed as returning Any)
from __future__ import annotations

from typing import Annotated, Any

import strawberry
from strawberry.scalars import JSON

from shared.api.graphql.context import GqlInfo, caller
from shared.api.graphql.errors import (
    FieldIssue,
    ForbiddenError,
    InvalidStateError,
    NotFoundError,
    UserError,
    ValidationErrors,
    as_payload,
)
from shared.api.graphql.execution_api import load_execution
from shared.app.migration import MigrationOutcome, migrate_execution, migrate_request
from shared.engine.migration import MigrationPlan, MigrationRefused
from shared.errors import InputInvalid


@strawberry.type(description="A live step run and the step of the target version it becomes.")
class MigrationMove:
    run_id: str
    scope: str
    status: str
    from_step: str
    to_step: str | None = strawberry.field(
        description="Null when the target has no such step (MIGRATION_STEP_MISSING)."
    )


@strawberry.type(description="What moving an execution to another version does.")
class MigrationPlanView:
    execution_id: strawberry.ID
    workflow_id: strawberry.ID
    from_version: int
    to_version: int
    compatible: bool
    moves: list[MigrationMove]
    problems: list[FieldIssue] = strawberry.field(
        description="Why it is unsafe: MIGRATION_* codes with JSON pointers."
    )
    reruns: list[str] = strawberry.field(
        description="Done steps the target's remaining flow reaches again."
    )
    added_variables: JSON = strawberry.field(
        description="Variables the target declares that the execution lacks (their defaults)."
    )

    @staticmethod
    def from_plan(plan: MigrationPlan) -> MigrationPlanView:
        return MigrationPlanView(
            execution_id=strawberry.ID(plan.execution_id),
            workflow_id=strawberry.ID(plan.workflow_id),
            from_version=plan.from_version,
            to_version=plan.to_version,
            compatible=plan.ok,
            moves=[
                MigrationMove(
                    run_id=m.run_id,
                    scope=m.scope,
                    status=m.status,
                    from_step=m.from_step,
                    to_step=m.to_step,
                )
                for m in plan.moves
            ],
            problems=[
                FieldIssue(code=p.code, message=p.message, path=p.path) for p in plan.problems
            ],
            reruns=list(plan.reruns),
            added_variables=JSON(dict(plan.added_variables)),
        )


@strawberry.type(description="The plan, and whether it was applied (dryRun false).")
class MigrationResult:
    applied: bool
    plan: MigrationPlanView


@strawberry.type(description="The migration is unsafe; nothing was changed.")
class MigrationRefusedError(UserError):
    retryable: bool = strawberry.field(description="True when a step was running: try again.")
    reasons: list[FieldIssue]
    plan: MigrationPlanView


MigratePayload = Annotated[
    MigrationResult
    | MigrationRefusedError
    | ValidationErrors
    | NotFoundError
    | InvalidStateError
    | ForbiddenError,
    strawberry.union("MigratePayload"),
]


def _result(
    outcome: MigrationOutcome | MigrationRefused,
) -> MigrationResult | MigrationRefusedError:
    if isinstance(outcome, MigrationRefused):
        plan = MigrationPlanView.from_plan(outcome.plan)
        return MigrationRefusedError(
            code=outcome.code,
            message=outcome.message,
            path=None,
            retryable=outcome.retryable,
            reasons=plan.problems,
            plan=plan,
        )
    assert outcome.plan is not None
    return MigrationResult(applied=outcome.applied, plan=MigrationPlanView.from_plan(outcome.plan))


@strawberry.type
class MigrationMutation:
    @strawberry.mutation(
        description="Plan (dryRun, the default) or apply the move of a live execution to "
        "another version of its workflow (docs/migration.md)."
    )
    async def migrate_execution(
        self,
        info: GqlInfo,
        id: strawberry.ID,
        to_version: int,
        mapping: JSON | None = None,
        rerun: list[str] | None = None,
        dry_run: bool = True,
    ) -> MigratePayload:
        who = await caller(info)

        async def work() -> MigrationOutcome | MigrationRefused:
            if mapping is not None and not isinstance(mapping, dict):
                raise InputInvalid("mapping must be an object", path="/mapping")
            request = migrate_request(to_version, mapping, rerun, dry_run)
            await load_execution(who, str(id), "operate")
            try:
                return await migrate_execution(who.app, str(id), request)
            except MigrationRefused as refused:  # an answer, not an error
                return refused

        payload: Any = await as_payload(work(), _result)
        result: MigratePayload = payload
        return result
