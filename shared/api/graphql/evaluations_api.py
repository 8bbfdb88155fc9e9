"""Guardrail evaluations in GraphQL: ``workflowEvaluations(workflowId)``, the figures of
``GET /api/v1/workflows/{id}/evaluations`` (viewers and up, the caller's tenant only)."""

# mypy: disable-error-code="untyped-decorator"
from __future__ import annotations

import strawberry
from strawberry.scalars import JSON

from shared.ai import evaluation_report as report
from shared.api.auth import authorize
from shared.api.graphql.context import GqlInfo, caller
from shared.errors import NotFound

__all__ = ["EvaluationsQuery"]


@strawberry.type(description="One validator of one step: how often answers passed it.")
class ValidatorEvaluation:
    step_id: str
    validator: str
    count: int
    passed: int
    pass_rate: float
    mean_score: float | None


@strawberry.type(description="One step's evaluated visits.")
class StepEvaluation:
    step_id: str
    count: int
    passed: int
    pass_rate: float
    mean_score: float | None
    retries: int
    actions: JSON = strawberry.field(description="Count per action (pass, escalate, ...).")
    escalations: JSON = strawberry.field(description="People's decisions: accept, reject.")


@strawberry.type(description="The evaluation of one finished execution.")
class ExecutionEvaluation:
    execution_id: str
    succeeded: bool
    passed: bool
    score: float | None


@strawberry.type(description="Guardrail evaluations of a workflow's latest finished executions.")
class WorkflowEvaluations:
    workflow_id: str
    window: int
    executions: int
    pass_rate: float | None
    mean_score: float | None
    steps: list[StepEvaluation]
    validators: list[ValidatorEvaluation]
    recent: list[ExecutionEvaluation]

    @classmethod
    def from_model(cls, model: report.WorkflowEvaluations) -> WorkflowEvaluations:
        return cls(
            workflow_id=model.workflow_id,
            window=model.window,
            executions=model.executions,
            pass_rate=model.pass_rate,
            mean_score=model.mean_score,
            steps=[
                StepEvaluation(
                    step_id=s.step_id,
                    count=s.count,
                    passed=s.passed,
                    pass_rate=s.pass_rate,
                    mean_score=s.mean_score,
                    retries=s.retries,
                    actions=JSON(s.actions),
                    escalations=JSON(s.escalations),
                )
                for s in model.steps
            ],
            validators=[ValidatorEvaluation(**v.model_dump()) for v in model.validators],
            recent=[ExecutionEvaluation(**e.model_dump()) for e in model.recent],
        )


@strawberry.type
class EvaluationsQuery:
    @strawberry.field(
        description="Pass rates and mean scores of a workflow's guardrail evaluations "
        "(per step and validator) over its latest finished executions; null if absent."
    )
    async def workflow_evaluations(
        self, info: GqlInfo, workflow_id: strawberry.ID
    ) -> WorkflowEvaluations | None:
        who = await caller(info)
        authorize(who.principal, "read", workflow_id)
        app = who.app
        try:
            await app.get_workflow(str(workflow_id))  # the caller's tenant's only
        except NotFound:
            return None
        window = app.engine.services.settings.ai.history_window
        figures = await report.workflow_evaluations(
            app.executions, app.tenant, str(workflow_id), window
        )
        return WorkflowEvaluations.from_model(figures)
