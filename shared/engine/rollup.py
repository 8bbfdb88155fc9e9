"""What an execution adds to the analytics rollups (``shared.ports.analytics``).

Three deltas, each written in the transaction of the commit it describes: ``started``
(the start commit: one execution, its trigger), ``ended`` (the commit that ends the
execution: its status and duration, and the figures of its step runs of the current
redrive generation, read from the runs that commit already lists) and ``redriven``
(takes the earlier end back out, so a redriven execution counts once, as it ends
last). All three land in the buckets of the execution's start.

Counter keys, ``|``-separated (step and node ids cannot hold ``|``):
``started``, ``trigger|<type>``, ``status|<status>``, ``redriven``, ``dur|n``,
``dur|sum``, ``dur|h|<i>``, ``execErr|<code>``, ``step|<id>|n``, ``step|<id>|sum``,
``step|<id>|h|<i>``, ``step|<id>|failed``, ``step|<id>|retries``, ``fail|<code>``
(failed attempts not retried), ``retry|<code>`` (failed attempts that were retried),
``route|<step>|<outcome>|n|ok``, ``arm|<step>|<node>|<label>|n|ok``,
``llm|calls|in|out|cost``, ``llmStep|<id>|tokens|cost``.

Durations go into fixed log-scale histogram buckets (``bucket_of``): four per
doubling, so a percentile read from merged buckets is within about 19 %.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from shared.models import ExecutionStatus, StepRun, StepRunStatus, WorkflowExecution
from shared.ports.analytics import RollupDelta

__all__ = ["BUCKETS_PER_DOUBLING", "bucket_of", "bucket_upper_ms", "ended", "redriven", "started"]

BUCKETS_PER_DOUBLING = 4
_MAX_BUCKET = 160  # 2**40 ms: about 35 years
_USAGE_KEY = "aiUsage"  # what llm and decision runs record (shared.ai.accounting)
_FINISHED = (StepRunStatus.SUCCEEDED, StepRunStatus.FAILED)


def bucket_of(ms: float) -> int:
    """The histogram bucket of a duration: bucket i holds (2**((i-1)/4), 2**(i/4)] ms."""
    if ms <= 1.0:
        return 0
    return min(_MAX_BUCKET, math.ceil(math.log2(ms) * BUCKETS_PER_DOUBLING - 1e-9))


def bucket_upper_ms(index: int) -> float:
    """The upper bound of histogram bucket ``index``, in milliseconds."""
    return float(2 ** (index / BUCKETS_PER_DOUBLING))


def _delta(execution: WorkflowExecution, counters: dict[str, float]) -> RollupDelta:
    return RollupDelta(
        tenant=execution.tenant,
        workflow_id=execution.workflow_id,
        execution_id=execution.id,
        at=execution.started_at,
        counters=counters,
    )


def started(execution: WorkflowExecution) -> RollupDelta:
    """The start of ``execution``: one more started, by trigger type."""
    kind = str(execution.trigger.get("type") or "manual")[:40]
    return _delta(execution, {"started": 1, f"trigger|{kind}": 1})


def _end_counters(execution: WorkflowExecution, sign: int) -> dict[str, float]:
    duration = float(execution.duration or 0.0)
    counters: dict[str, float] = {
        f"status|{execution.status.value}": sign,
        "dur|n": sign,
        "dur|sum": sign * duration,
        f"dur|h|{bucket_of(duration)}": sign,
    }
    if execution.error_info is not None and execution.status != ExecutionStatus.SUCCEEDED:
        counters[f"execErr|{execution.error_info.code[:80]}"] = sign
    return counters


def redriven(execution: WorkflowExecution) -> RollupDelta:
    """Before a redrive resets ``execution``: take its earlier end back out."""
    counters = _end_counters(execution, -1)
    counters["redriven"] = 1
    return _delta(execution, counters)


def ended(execution: WorkflowExecution, runs: Iterable[StepRun]) -> RollupDelta:
    """The end of ``execution``, with the figures of its runs of this generation."""
    counters = _end_counters(execution, 1)
    mine = [
        run
        for run in runs
        if run.generation == execution.redrive_count and not run.step_type.startswith("$")
    ]
    retried = _retried(mine)
    success = 1 if execution.status == ExecutionStatus.SUCCEEDED else 0
    for run in mine:
        if run.status in _FINISHED:
            _step_figures(counters, run, run.id in retried)
        if run.step_type == "decision" and run.status == StepRunStatus.SUCCEEDED:
            _decision_figures(counters, run, success)
    _usage_figures(counters, mine)
    return _delta(execution, counters)


def _add(counters: dict[str, float], key: str, value: float = 1) -> None:
    counters[key] = counters.get(key, 0) + value


def _visit_key(run: StepRun) -> tuple[Any, ...]:
    """Every attempt of one visit of a step shares this (its idempotency key)."""
    return (run.idempotency_key,) if run.idempotency_key else (run.step_id, run.scope)


def _retried(runs: list[StepRun]) -> set[str]:
    """Ids of the failed runs that a later attempt of the same visit followed."""
    attempts = {(_visit_key(run), run.attempt) for run in runs}
    return {
        run.id
        for run in runs
        if run.status == StepRunStatus.FAILED and (_visit_key(run), run.attempt + 1) in attempts
    }


def _step_figures(counters: dict[str, float], run: StepRun, was_retried: bool) -> None:
    prefix = f"step|{run.step_id}|"
    duration = float(run.duration_ms or 0.0)
    _add(counters, prefix + "n")
    _add(counters, prefix + "sum", duration)
    _add(counters, f"{prefix}h|{bucket_of(duration)}")
    if run.attempt > 1:
        _add(counters, prefix + "retries")
    if run.status == StepRunStatus.FAILED:
        _add(counters, prefix + "failed")
        code = (run.error.code if run.error else "UNKNOWN")[:80]
        _add(counters, f"{'retry' if was_retried else 'fail'}|{code}")


def _decision_figures(counters: dict[str, float], run: StepRun, success: int) -> None:
    output = run.output
    if not isinstance(output, dict) or not isinstance(output.get("outcome"), str):
        return
    route = f"route|{run.step_id}|{output['outcome'][:80]}|"
    _add(counters, route + "n")
    _add(counters, route + "ok", success)
    for entry in output.get("path") or []:
        if isinstance(entry, dict) and "label" in entry and "node" in entry:
            arm = f"arm|{run.step_id}|{str(entry['node'])[:64]}|{str(entry['label'])[:80]}|"
            _add(counters, arm + "n")
            _add(counters, arm + "ok", success)


def _usage_figures(counters: dict[str, float], runs: list[StepRun]) -> None:
    """Model usage: the last attempt of each visit holds the visit's usage."""
    latest: dict[tuple[Any, ...], StepRun] = {}
    for run in runs:
        if not isinstance(run.state.get(_USAGE_KEY), dict):
            continue
        key = _visit_key(run)
        if key not in latest or run.attempt >= latest[key].attempt:
            latest[key] = run
    for run in latest.values():
        usage = run.state[_USAGE_KEY]
        tokens_in = int(usage.get("inputTokens", 0) or 0)
        tokens_out = int(usage.get("outputTokens", 0) or 0)
        cost = float(usage.get("costUsd", 0.0) or 0.0)
        _add(counters, "llm|calls", int(usage.get("calls", 0) or 0))
        _add(counters, "llm|in", tokens_in)
        _add(counters, "llm|out", tokens_out)
        _add(counters, "llm|cost", cost)
        _add(counters, f"llmStep|{run.step_id}|tokens", tokens_in + tokens_out)
        _add(counters, f"llmStep|{run.step_id}|cost", cost)
