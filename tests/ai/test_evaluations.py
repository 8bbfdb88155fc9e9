"""Evaluations aggregated per workflow, and the history router learning from scores."""

from __future__ import annotations

import json
from typing import Any

from _ai_defs import MakeHarness
from _ai_fakes import fake
from langchain_core.messages import AIMessage

from shared.ai.evaluation import StepEvaluation, Verdict
from shared.ai.evaluation_report import workflow_evaluations
from shared.ai.history import choose, seeded_rng
from shared.ai.stats import ExecutionSummary, Visit, arm_stats

SHORT = {"cel": "size(output.title) < 10", "name": "short"}


def _summary(index: int, label: str, score: float | None) -> ExecutionSummary:
    evaluations = ()
    if score is not None:
        verdict = Verdict("polite", score >= 0.5, score)
        evaluations = (StepEvaluation("w0", score >= 0.5, score, "continue", (verdict,)),)
    visit = Visit("route", "next", (("pick", label),))
    return ExecutionSummary(f"e{index}", True, 100.0, 0.0, (visit,), evaluations)


def _picks(history: list[ExecutionSummary]) -> int:
    """How often, over 300 seeds, the router picks ``b``."""
    stats = arm_stats(history, "route", "pick")
    return sum(
        choose(["a", "b"], stats, seeded_rng(seed, "route", "pick")).label == "b"
        for seed in range(300)
    )


def test_evaluation_scores_change_the_history_routers_choice() -> None:
    # both branches always succeeded; a's answers were graded 0.2, b's 0.9
    scored = [_summary(i, "a", 0.2) for i in range(10)]
    scored += [_summary(10 + i, "b", 0.9) for i in range(10)]
    unscored = [_summary(i, "a", None) for i in range(10)]
    unscored += [_summary(10 + i, "b", None) for i in range(10)]
    with_scores, without = _picks(scored), _picks(unscored)
    assert 100 <= without <= 200  # success alone cannot tell them apart
    assert with_scores >= 270  # the scores can
    stats = arm_stats(scored, "route", "pick")
    assert stats["a"].succeeded == 10 and round(stats["a"].reward, 6) == 2.0
    assert choose(["a", "b"], stats, seeded_rng(0, "x")).observations["a"]["reward"] == 2.0


async def test_evaluations_are_aggregated_per_workflow(make_harness: MakeHarness) -> None:
    titles = ["ok", "much too long a title", "fine", "another long title"]
    model = fake(*(AIMessage(json.dumps({"title": t})) for t in titles))
    h = await make_harness(model)
    config: dict[str, Any] = {
        "prompt": "go",
        "guardrails": {"validators": [SHORT], "onFail": "continue"},
    }
    raw = {"name": "rated", "steps": [{"id": "w0", "type": "llm", "config": config}]}
    workflow_id = await h.create(raw)
    tenant = ""
    for _ in titles:
        execution = await h.start(workflow_id)
        tenant = execution.tenant
        await h.drain()
    figures = await workflow_evaluations(h.store, tenant, workflow_id, 50)
    assert figures.executions == 4 and figures.pass_rate == 0.5 and figures.mean_score == 0.5
    (step,) = figures.steps
    assert step.step_id == "w0" and step.count == 4 and step.passed == 2
    assert step.actions == {"pass": 2, "continue": 2}
    (validator,) = figures.validators
    assert (validator.validator, validator.count, validator.pass_rate) == ("short", 4, 0.5)
    assert len(figures.recent) == 4
    body = figures.model_dump(by_alias=True)
    assert body["passRate"] == 0.5 and body["validators"][0]["stepId"] == "w0"
    other = await workflow_evaluations(h.store, "another-tenant", workflow_id, 50)
    assert other.executions == 0  # tenant-scoped
