"""GraphQL shows the decision statistics the history router learns from."""

from __future__ import annotations

from shared.api.graphql.workflow_types import ExecutionStats
from shared.models import ExecutionStats as StatsModel
from shared.models.definition import DecisionBranchStats


def test_decision_stats_are_exposed() -> None:
    model = StatsModel(
        total=3,
        decision_stats={
            "route": {"fast": DecisionBranchStats(count=2, succeeded=1, failed=1, success_rate=0.5)}
        },
    )
    stats = ExecutionStats.from_model(model)
    assert stats.decision_stats == {
        "route": {"fast": {"count": 2, "succeeded": 1, "failed": 1, "successRate": 0.5}}
    }
    assert ExecutionStats.from_model(StatsModel()).decision_stats is None
