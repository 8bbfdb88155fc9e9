"""Rollup counters of one ended execution (decision routes, model usage, retries) and
the figures the analytics use case reads back from them; histogram bucket bounds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.app.analytics import choose_window, summarize
from shared.engine import rollup
from shared.errors import WorkflowError
from shared.models import ErrorInfo, ExecutionStatus, StepRun, StepRunStatus, WorkflowExecution
from shared.ports.analytics import RollupRow, merge_counters

T0 = datetime(2026, 12, 1, 10, tzinfo=UTC)


def run(step_id: str, kind: str, attempt: int = 1, **fields: object) -> StepRun:
    return StepRun(
        id=f"r-{step_id}-{attempt}",
        execution_id="e1",
        step_id=step_id,
        step_type=kind,
        attempt=attempt,
        idempotency_key=f"k-{step_id}",
        duration_ms=50.0,
        **{"status": StepRunStatus.SUCCEEDED, **fields},  # type: ignore[arg-type]
    )


def ended(status: ExecutionStatus, runs: list[StepRun]) -> dict[str, float]:
    execution = WorkflowExecution(
        id="e1",
        workflow_id="wf",
        workflow_version=1,
        status=status,
        started_at=T0,
        duration=300.0,
        trigger={"type": "webhook"},
    )
    counters: dict[str, float] = {}
    merge_counters(counters, rollup.started(execution).counters)
    merge_counters(counters, rollup.ended(execution, runs).counters)
    return counters


def test_decision_routes_model_usage_and_retries_are_counted() -> None:
    usage = {"inputTokens": 100, "outputTokens": 20, "costUsd": 0.002, "calls": 1}
    runs = [
        run(
            "triage",
            "decision",
            output={"outcome": "escalate", "path": [{"node": "ai", "label": "urgent"}]},
        ),
        run(
            "ask",
            "llm",
            1,
            status=StepRunStatus.FAILED,
            state={"aiUsage": usage},
            error=ErrorInfo(code="MODEL_ERROR", message="x"),
        ),
        run("ask", "llm", 2, state={"aiUsage": {**usage, "inputTokens": 250, "calls": 2}}),
        run("$deadline", "$deadline"),
    ]
    counters = ended(ExecutionStatus.SUCCEEDED, runs)
    window = choose_window(T0 - timedelta(hours=1), T0 + timedelta(hours=1), None, T0)
    figures = summarize([RollupRow("t", "wf", "hour", T0, counters)], window)
    assert [(r.step_id, r.kind, r.route, r.count, r.success_rate) for r in figures.routes] == [
        ("triage", "node", "ai: urgent", 1, 1.0),
        ("triage", "outcome", "escalate", 1, 1.0),
    ]
    # the last attempt of a visit holds its usage
    assert (figures.llm.calls, figures.llm.input_tokens, figures.llm.output_tokens) == (2, 250, 20)
    assert [(s.step_id, s.tokens) for s in figures.llm.steps] == [("ask", 270)]
    steps = {s.step_id: s for s in figures.steps}
    assert set(steps) == {"triage", "ask"}  # internal steps ($deadline) are left out
    assert (steps["ask"].runs, steps["ask"].failed, steps["ask"].retries) == (2, 1, 1)
    assert [(e.code, e.failures, e.retries) for e in figures.errors] == [("MODEL_ERROR", 0, 1)]
    assert [(t.type, t.count) for t in figures.triggers] == [("webhook", 1)]


def test_a_redrive_takes_the_earlier_end_back_out() -> None:
    execution = WorkflowExecution(
        id="e1",
        workflow_id="wf",
        workflow_version=1,
        status=ExecutionStatus.FAILED,
        started_at=T0,
        duration=10.0,
        error_info=ErrorInfo(code="BOOM", message="x"),
    )
    counters = dict(rollup.ended(execution, []).counters)
    merge_counters(counters, rollup.redriven(execution).counters)
    assert {k: v for k, v in counters.items() if v} == {"redriven": 1}


@pytest.mark.parametrize("ms", [0.2, 1.0, 1.5, 99.0, 100.0, 12_345.0, 3_600_000.0])
def test_a_duration_lies_within_its_bucket(ms: float) -> None:
    index = rollup.bucket_of(ms)
    upper = rollup.bucket_upper_ms(index)
    assert ms <= upper + 1e-9
    assert index == 0 or ms > rollup.bucket_upper_ms(index - 1)
    assert upper <= max(1.0, ms) * 2**0.25 + 1e-9


def test_windows_are_aligned_and_bounded() -> None:
    window = choose_window(T0 + timedelta(minutes=5), T0 + timedelta(hours=3, minutes=1), None, T0)
    assert (window.start, window.end, window.bucket) == (T0, T0 + timedelta(hours=4), "hour")
    assert choose_window(None, T0, None, T0).bucket == "day"
    with pytest.raises(WorkflowError) as refused:
        choose_window(T0 - timedelta(days=40), T0, "hour", T0)
    assert (refused.value.code, refused.value.path) == ("WINDOW_TOO_LARGE", "/from")
    with pytest.raises(WorkflowError) as reversed_window:
        choose_window(T0, T0, None, T0)
    assert reversed_window.value.code == "INVALID_WINDOW"
