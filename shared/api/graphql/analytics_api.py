"""Analytics in GraphQL: ``analytics(workflowId, from, to, bucket)``, the same figures
as ``GET /api/v1/analytics`` (viewers and up, the caller's tenant only)."""

# mypy: disable-error-code="untyped-decorator,attr-defined"
# (strawberry.field(...) with arguments is typed as returning Any; the pydantic
# decorator adds ``from_pydantic``, which mypy cannot see)
from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Annotated

import strawberry
from strawberry.experimental.pydantic import type as from_pydantic

from shared.api.auth import authorize
from shared.api.graphql.context import GqlInfo, caller
from shared.app import analytics as use_case

__all__ = ["AnalyticsQuery"]


@strawberry.enum(description="Bucket size of an analytics window.")
class AnalyticsBucket(Enum):
    HOUR = "hour"
    DAY = "day"


@from_pydantic(model=use_case.Durations, all_fields=True)
class Durations:
    """Duration figures in milliseconds; percentiles from log-scale histogram buckets."""


@from_pydantic(model=use_case.SeriesPoint, all_fields=True)
class AnalyticsPoint:
    """Executions started in one bucket, by how they ended."""


@from_pydantic(model=use_case.Totals, all_fields=True)
class AnalyticsTotals:
    """Executions started in the window, by how they ended."""


@from_pydantic(model=use_case.WorkflowFigures, all_fields=True)
class WorkflowFigures:
    """One workflow's executions and durations."""


@from_pydantic(model=use_case.StepFigures, all_fields=True)
class StepFigures:
    """One step's finished attempts, failures, retries and durations."""


@from_pydantic(model=use_case.ErrorCount, all_fields=True)
class ErrorCount:
    """Failed step attempts of one error code."""


@from_pydantic(model=use_case.CodeCount, all_fields=True)
class CodeCount:
    """Executions ended by one error code."""


@from_pydantic(model=use_case.TriggerCount, all_fields=True)
class TriggerCount:
    """Executions started by one kind of trigger."""


@from_pydantic(model=use_case.RouteFigures, all_fields=True)
class RouteFigures:
    """A decision route (outcome or AI/history node label) and how its executions went."""


@from_pydantic(model=use_case.LlmStep, all_fields=True)
class LlmStep:
    """Model usage of one step."""


@from_pydantic(model=use_case.LlmUsage, all_fields=True)
class LlmUsage:
    """Model calls, tokens and cost."""


@strawberry.type(description="The window of an analytics answer, widened to whole buckets.")
class AnalyticsWindow:
    start: datetime = strawberry.field(name="from")
    end: datetime = strawberry.field(name="to")
    bucket: AnalyticsBucket


@strawberry.type(description="How a tenant's (or one workflow's) executions went.")
class Analytics:
    workflow_id: str | None
    window: AnalyticsWindow
    totals: AnalyticsTotals
    duration: Durations
    series: list[AnalyticsPoint]
    workflows: list[WorkflowFigures]
    steps: list[StepFigures]
    slowest_steps: list[StepFigures]
    errors: list[ErrorCount]
    execution_errors: list[CodeCount]
    triggers: list[TriggerCount]
    routes: list[RouteFigures]
    llm: LlmUsage

    @classmethod
    def from_model(cls, model: use_case.Analytics) -> Analytics:
        return cls(
            workflow_id=model.workflow_id,
            window=AnalyticsWindow(
                start=model.window.start,
                end=model.window.end,
                bucket=AnalyticsBucket(model.window.bucket),
            ),
            totals=AnalyticsTotals.from_pydantic(model.totals),
            duration=Durations.from_pydantic(model.duration),
            series=[AnalyticsPoint.from_pydantic(p) for p in model.series],
            workflows=[WorkflowFigures.from_pydantic(w) for w in model.workflows],
            steps=[StepFigures.from_pydantic(s) for s in model.steps],
            slowest_steps=[StepFigures.from_pydantic(s) for s in model.slowest_steps],
            errors=[ErrorCount.from_pydantic(e) for e in model.errors],
            execution_errors=[CodeCount.from_pydantic(c) for c in model.execution_errors],
            triggers=[TriggerCount.from_pydantic(t) for t in model.triggers],
            routes=[RouteFigures.from_pydantic(r) for r in model.routes],
            llm=LlmUsage.from_pydantic(model.llm),
        )


@strawberry.type
class AnalyticsQuery:
    @strawberry.field(
        description="Executions by status over time, duration percentiles per workflow and "
        "step, failures and retries by error code, the slowest steps, the trigger mix, "
        "decision routes and model usage of the caller's tenant (or one workflow) in a "
        "window (default: the last 7 days; hour buckets up to 2 days, else day)."
    )
    async def analytics(
        self,
        info: GqlInfo,
        workflow_id: str | None = None,
        start: Annotated[datetime | None, strawberry.argument(name="from")] = None,
        end: Annotated[datetime | None, strawberry.argument(name="to")] = None,
        bucket: AnalyticsBucket | None = None,
    ) -> Analytics:
        who = await caller(info)
        authorize(who.principal, "read", workflow_id)
        figures = await use_case.analytics(
            use_case.rollups_of(who.app),
            who.principal.tenant,
            workflow_id=workflow_id,
            start=start,
            end=end,
            bucket=bucket.value if bucket is not None else None,
        )
        return Analytics.from_model(figures)
