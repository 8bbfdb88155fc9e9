"""Decision statistics, computed from what the store already records.

The source of truth is the step runs and executions: a succeeded ``decision`` run's
output names the branch taken at each node (its ``path``) and the outcome; the
execution's final status, duration and the model usage recorded in its runs say how
that went. Nothing extra is written per execution (no hot counter document). A
finished execution never changes until it is redriven, so its summary is cached in
process, keyed by its id and ``updatedAt``; only new executions cost a read.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

from shared.ai.accounting import execution_usage
from shared.ai.evaluation import StepEvaluation, evaluations_of, mean_score
from shared.ai.history import ArmStats
from shared.models import (
    DecisionBranchStats,
    ExecutionStatus,
    StepRun,
    StepRunStatus,
    WorkflowExecution,
)
from shared.ports import ExecutionQuery, ExecutionStore

PAGE = 200
_CACHE_SIZE = 20_000


@dataclass(frozen=True)
class Visit:
    """One decision taken in an execution: its step, outcome and node choices."""

    step_id: str
    outcome: str
    labels: tuple[tuple[str, str], ...]
    """(node id, label) of the AI and history nodes on the path."""


@dataclass(frozen=True)
class ExecutionSummary:
    """How one finished execution went, and the decisions taken in it."""

    execution_id: str
    success: bool
    duration_ms: float
    cost_usd: float
    visits: tuple[Visit, ...]
    evaluations: tuple[StepEvaluation, ...] = ()
    """The guardrail evaluations of its steps (``shared.ai.evaluation``)."""

    @property
    def score(self) -> float | None:
        """The mean evaluation score of its graded answers, or None (none graded)."""
        return mean_score(self.evaluations)


_cache: OrderedDict[tuple[str, str, str], ExecutionSummary] = OrderedDict()


def summarize(execution: WorkflowExecution, runs: Iterable[StepRun]) -> ExecutionSummary:
    """The summary of a finished execution from its step runs."""
    runs = list(runs)
    visits = []
    for run in runs:
        output = run.output
        if run.step_type != "decision" or run.status != StepRunStatus.SUCCEEDED:
            continue
        if not isinstance(output, dict) or not isinstance(output.get("outcome"), str):
            continue
        labels = tuple(
            (str(entry["node"]), str(entry["label"]))
            for entry in output.get("path") or []
            if isinstance(entry, dict) and "label" in entry and "node" in entry
        )
        visits.append(Visit(run.step_id, output["outcome"], labels))
    return ExecutionSummary(
        execution.id,
        execution.status == ExecutionStatus.SUCCEEDED,
        float(execution.duration or 0.0),
        execution_usage(runs).cost_usd,
        tuple(visits),
        evaluations_of(runs),
    )


async def summaries(
    store: ExecutionStore, tenant: str, workflow_id: str, window: int
) -> list[ExecutionSummary]:
    """Summaries of the latest ``window`` executions of a workflow that have finished."""
    found: list[ExecutionSummary] = []
    cursor: str | None = None
    seen = 0
    while seen < window:
        page = await store.list_executions(
            ExecutionQuery(
                tenant=tenant,
                workflow_id=workflow_id,
                limit=min(PAGE, window - seen),
                cursor=cursor,
            )
        )
        seen += len(page.items)
        for execution in page.items:
            if execution.status.terminal:
                found.append(await _summary(store, execution))
        if page.next_cursor is None or not page.items:
            break
        cursor = page.next_cursor
    return found


async def _summary(store: ExecutionStore, execution: WorkflowExecution) -> ExecutionSummary:
    key = (execution.workflow_id, execution.id, execution.updated_at.isoformat())
    cached = _cache.get(key)
    if cached is not None:
        _cache.move_to_end(key)
        return cached
    summary = summarize(execution, await store.list_runs(execution.id))
    _cache[key] = summary
    if len(_cache) > _CACHE_SIZE:
        _cache.popitem(last=False)
    return summary


def arm_stats(
    history: Iterable[ExecutionSummary], step_id: str, node_id: str
) -> dict[str, ArmStats]:
    """Per label chosen at ``node_id`` of ``step_id``: how those executions went."""
    arms: dict[str, ArmStats] = {}
    for summary in history:
        for visit in summary.visits:
            if visit.step_id != step_id:
                continue
            for node, label in visit.labels:
                if node == node_id:
                    arm = arms.setdefault(label, ArmStats())
                    arm.record(
                        summary.success, summary.duration_ms, summary.cost_usd, summary.score
                    )
    return arms


def decision_stats(
    history: Iterable[ExecutionSummary],
) -> dict[str, dict[str, DecisionBranchStats]]:
    """Per decision step, per outcome (next step): counts, success rate, means."""
    arms: dict[str, dict[str, ArmStats]] = {}
    for summary in history:
        for visit in summary.visits:
            arm = arms.setdefault(visit.step_id, {}).setdefault(visit.outcome, ArmStats())
            arm.record(summary.success, summary.duration_ms, summary.cost_usd)
    return {
        step_id: {
            outcome: DecisionBranchStats(
                count=arm.count,
                succeeded=arm.succeeded,
                failed=arm.failed,
                success_rate=round(arm.succeeded / arm.count, 4) if arm.count else None,
                mean_duration_ms=_round(arm.mean_duration_ms),
                mean_cost_usd=_round(arm.mean_cost_usd, 8),
            )
            for outcome, arm in sorted(outcomes.items())
        }
        for step_id, outcomes in sorted(arms.items())
    }


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


__all__ = ["ExecutionSummary", "Visit", "arm_stats", "decision_stats", "summaries", "summarize"]
