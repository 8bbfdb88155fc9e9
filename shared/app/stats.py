"""Execution statistics of a workflow, computed from its recent executions."""

from __future__ import annotations

from collections import Counter

from shared.ai.stats import decision_stats as by_branch
from shared.ai.stats import summaries
from shared.models import DecisionBranchStats, ExecutionStats, WorkflowDefinition, WorkflowExecution
from shared.ports import ExecutionStore


def _percentile(sorted_values: list[float], fraction: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, round(fraction * (len(sorted_values) - 1))))
    return sorted_values[index]


def execution_stats(executions: list[WorkflowExecution], window: int) -> ExecutionStats:
    """Counts by status, duration percentiles (finished ones) and the latest error, of
    ``executions``: the latest ``window`` executions of a workflow, newest first."""
    durations = sorted(e.duration for e in executions if e.duration is not None)
    errors = sorted((e for e in executions if e.error), key=lambda e: e.updated_at)
    return ExecutionStats(
        total=len(executions),
        window=window,
        by_status=dict(Counter(e.status.value for e in executions)),
        duration_p50_ms=_percentile(durations, 0.5),
        duration_p95_ms=_percentile(durations, 0.95),
        duration_p99_ms=_percentile(durations, 0.99),
        last_error=errors[-1].error if errors else None,
    )


async def decision_stats(
    store: ExecutionStore, definition: WorkflowDefinition, tenant: str, window: int
) -> dict[str, dict[str, DecisionBranchStats]] | None:
    """Outcomes per branch of the workflow's decision steps over its latest ``window``
    finished executions (what the history router learns from); None without any."""
    if not any(step.type == "decision" for step in definition.steps):
        return None
    return by_branch(await summaries(store, tenant, definition.id, window))
