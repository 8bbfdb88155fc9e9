"""Evaluations of step answers (guardrail verdicts), as the store already records them.

A guarded step keeps its evaluation in its run's state (``state.evaluation``: also
when the guardrails failed the step) and, when it succeeded, in its output. Nothing
else is written: per-workflow aggregates (``shared.ai.evaluation_report``) and the
history router read them from the runs of recent finished executions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from shared.models import StepRun

EVALUATION_KEY = "evaluation"


@dataclass(frozen=True)
class Verdict:
    validator: str
    passed: bool
    score: float | None


@dataclass(frozen=True)
class StepEvaluation:
    """The final evaluation of one step visit."""

    step_id: str
    passed: bool
    score: float | None
    action: str
    verdicts: tuple[Verdict, ...]
    retries: int = 0
    escalation: str | None = None
    """``accept`` or ``reject`` when a person decided."""


def evaluations_of(runs: Iterable[StepRun]) -> tuple[StepEvaluation, ...]:
    """The evaluation of each step visit of an execution (its last attempt)."""
    latest: dict[str, StepRun] = {}
    for run in runs:
        if isinstance(run.state.get(EVALUATION_KEY), dict):
            latest[run.idempotency_key or run.id] = run
    return tuple(
        found
        for found in (_parse(run.step_id, run.state[EVALUATION_KEY]) for run in latest.values())
        if found is not None
    )


def _parse(step_id: str, data: dict[str, Any]) -> StepEvaluation | None:
    verdicts = []
    for item in data.get("verdicts") or []:
        if not isinstance(item, dict) or not isinstance(item.get("validator"), str):
            continue
        score = item.get("score")
        verdicts.append(
            Verdict(
                item["validator"],
                item.get("passed") is True,
                float(score) if isinstance(score, int | float) else None,
            )
        )
    if not verdicts:
        return None
    score = data.get("score")
    escalation = data.get("escalation")
    return StepEvaluation(
        step_id=step_id,
        passed=data.get("passed") is True,
        score=float(score) if isinstance(score, int | float) else None,
        action=str(data.get("action") or ""),
        verdicts=tuple(verdicts),
        retries=int(data.get("retries") or 0),
        escalation=str(escalation.get("decision")) if isinstance(escalation, dict) else None,
    )


def mean_score(evaluations: Iterable[StepEvaluation]) -> float | None:
    scores = [e.score for e in evaluations if e.score is not None]
    return sum(scores) / len(scores) if scores else None


__all__ = ["EVALUATION_KEY", "StepEvaluation", "Verdict", "evaluations_of", "mean_score"]
