"""Evaluations aggregated per workflow: pass rate and mean score per step and validator,
over the latest finished executions (the history router's window and cache).

Derived on read from the step runs (``shared.ai.stats.summaries``), as the workflow's
``executionStats.decisionStats`` are: no per-workflow counter is written, so every
backend (memory, SQLite, Firestore) serves it with the queries it already has.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from pydantic import Field

from shared.ai.stats import ExecutionSummary, summaries
from shared.models._base import ApiModel
from shared.ports import ExecutionStore


class ValidatorFigures(ApiModel):
    step_id: str
    validator: str
    count: int
    passed: int
    pass_rate: float
    mean_score: float | None = None


class StepEvaluationFigures(ApiModel):
    step_id: str
    count: int
    """Step visits evaluated."""
    passed: int
    pass_rate: float
    mean_score: float | None = None
    retries: int = 0
    """Answers asked again with feedback (``onFail: retry``)."""
    actions: dict[str, int] = Field(default_factory=dict)
    """What the evaluations did: pass, retry outcomes, escalate, fallback, continue, fail."""
    escalations: dict[str, int] = Field(default_factory=dict)
    """Decisions of people on escalated answers: accept, reject."""


class ExecutionEvaluation(ApiModel):
    execution_id: str
    succeeded: bool
    score: float | None = None
    """Mean score of its evaluated steps."""
    passed: bool
    """Every evaluated step passed its guardrails."""


class WorkflowEvaluations(ApiModel):
    workflow_id: str
    window: int
    """Latest executions read (finished ones are counted)."""
    executions: int
    """Finished executions with at least one evaluation."""
    pass_rate: float | None = None
    mean_score: float | None = None
    steps: list[StepEvaluationFigures] = Field(default_factory=list)
    validators: list[ValidatorFigures] = Field(default_factory=list)
    recent: list[ExecutionEvaluation] = Field(default_factory=list)
    """The latest evaluated executions, newest first (at most 50)."""


@dataclass
class _Tally:
    count: int = 0
    passed: int = 0
    scores: list[float] = field(default_factory=list)

    def add(self, passed: bool, score: float | None) -> None:
        self.count += 1
        self.passed += 1 if passed else 0
        if score is not None:
            self.scores.append(score)

    @property
    def rate(self) -> float:
        return round(self.passed / self.count, 4) if self.count else 0.0

    @property
    def mean(self) -> float | None:
        return round(sum(self.scores) / len(self.scores), 4) if self.scores else None


def aggregate(
    workflow_id: str, window: int, history: Iterable[ExecutionSummary]
) -> WorkflowEvaluations:
    overall = _Tally()
    steps: dict[str, _Tally] = {}
    extra: dict[str, StepEvaluationFigures] = {}
    validators: dict[tuple[str, str], _Tally] = {}
    recent: list[ExecutionEvaluation] = []
    for summary in history:
        if not summary.evaluations:
            continue
        passed = all(e.passed for e in summary.evaluations)
        overall.add(passed, summary.score)
        if len(recent) < 50:
            recent.append(
                ExecutionEvaluation(
                    execution_id=summary.execution_id,
                    succeeded=summary.success,
                    score=_round(summary.score),
                    passed=passed,
                )
            )
        for evaluation in summary.evaluations:
            steps.setdefault(evaluation.step_id, _Tally()).add(evaluation.passed, evaluation.score)
            figures = extra.setdefault(
                evaluation.step_id,
                StepEvaluationFigures(step_id=evaluation.step_id, count=0, passed=0, pass_rate=0),
            )
            figures.retries += evaluation.retries
            action = evaluation.action or "unknown"
            figures.actions[action] = figures.actions.get(action, 0) + 1
            if evaluation.escalation:
                decided = evaluation.escalation
                figures.escalations[decided] = figures.escalations.get(decided, 0) + 1
            for verdict in evaluation.verdicts:
                key = (evaluation.step_id, verdict.validator)
                validators.setdefault(key, _Tally()).add(verdict.passed, verdict.score)
    return WorkflowEvaluations(
        workflow_id=workflow_id,
        window=window,
        executions=overall.count,
        pass_rate=overall.rate if overall.count else None,
        mean_score=overall.mean,
        steps=[
            extra[step_id].model_copy(
                update={
                    "count": tally.count,
                    "passed": tally.passed,
                    "pass_rate": tally.rate,
                    "mean_score": tally.mean,
                }
            )
            for step_id, tally in sorted(steps.items())
        ],
        validators=[
            ValidatorFigures(
                step_id=step_id,
                validator=name,
                count=tally.count,
                passed=tally.passed,
                pass_rate=tally.rate,
                mean_score=tally.mean,
            )
            for (step_id, name), tally in sorted(validators.items())
        ],
        recent=recent,
    )


async def workflow_evaluations(
    store: ExecutionStore, tenant: str, workflow_id: str, window: int
) -> WorkflowEvaluations:
    """The evaluations of a workflow's latest ``window`` executions (finished ones)."""
    history = await summaries(store, tenant, workflow_id, window)
    return aggregate(workflow_id, window, history)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


__all__ = [
    "ExecutionEvaluation",
    "StepEvaluationFigures",
    "ValidatorFigures",
    "WorkflowEvaluations",
    "aggregate",
    "workflow_evaluations",
]
