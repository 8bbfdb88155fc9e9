"""Evaluations of a workflow's answers: ``GET /api/v1/workflows/{id}/evaluations``
(viewers and up, the caller's tenant only; docs/ai.md, "Guardrails and evaluations")."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path
from starlette.responses import Response

from shared.ai.evaluation_report import WorkflowEvaluations, workflow_evaluations
from shared.api.rest._deps import API, Reader, respond
from shared.api.rest._docs import errors, router_for
from shared.app.service import WorkflowApp

router = router_for("workflows")


async def evaluations_of(app: WorkflowApp, workflow_id: str) -> WorkflowEvaluations:
    """The use case shared by REST and GraphQL: the workflow must be the tenant's."""
    await app.get_workflow(workflow_id)  # 404 for another tenant's or a missing one
    window = app.engine.services.settings.ai.history_window
    return await workflow_evaluations(app.executions, app.tenant, workflow_id, window)


@router.get(
    f"{API}/workflows/{{workflow_id}}/evaluations",
    response_model=WorkflowEvaluations,
    responses=errors(403, 404),
)
async def get_evaluations(
    workflow_id: Annotated[str, Path(description="The workflow's id.")], caller: Reader
) -> Response:
    """Guardrail evaluations of the workflow's latest finished executions
    (``AI_HISTORY_WINDOW``): pass rate and mean score overall, per step and per
    validator, and the latest evaluated executions."""
    return respond(await evaluations_of(caller.app, workflow_id))
