"""Analytics of a tenant or one workflow over a window, from the pre-aggregated rollups.

``analytics`` reads the rollup rows of the window (one per workflow and bucket: at most
``MAX_BUCKETS`` buckets per workflow) and merges their counters; nothing is read per
execution, so the answer costs the same on 100 or 100,000 executions. Percentiles come
from the merged log-scale histograms (``shared.engine.rollup``): the upper bound of the
bucket holding the rank, within about 19 % of the exact figure. Executions count in the
buckets of their start; one still running counts as started only.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from pydantic import Field

from shared.app.service import WorkflowApp
from shared.engine.rollup import bucket_upper_ms
from shared.errors import WorkflowError
from shared.models._base import ApiModel
from shared.ports.analytics import (
    GRAINS,
    Grain,
    RollupQuery,
    RollupRow,
    RollupStore,
    bucket_start,
    merge_counters,
)

__all__ = [
    "MAX_BUCKETS",
    "Analytics",
    "AnalyticsWindow",
    "WindowInvalid",
    "analytics",
    "rollups_of",
]

MAX_BUCKETS: dict[Grain, int] = {"hour": 24 * 31, "day": 400}
"""The most buckets a window may span: hour buckets up to 31 days, day buckets 400."""
AUTO_HOURS = timedelta(days=2)
"""Windows up to this long get hour buckets unless asked otherwise; longer ones days."""
TOP_SLOWEST = 10
_STATUSES = ("succeeded", "failed", "cancelled", "timed_out")


class WindowInvalid(WorkflowError):
    """The window asked for is empty, reversed or too large."""

    code = "INVALID_WINDOW"


class AnalyticsWindow(ApiModel):
    """The window asked for, aligned outward to whole buckets."""

    start: datetime = Field(alias="from")
    end: datetime = Field(alias="to")
    bucket: Grain


class Durations(ApiModel):
    count: int = 0
    mean_ms: float | None = None
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None


class StatusCounts(ApiModel):
    started: int = 0
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    timed_out: int = 0


class SeriesPoint(StatusCounts):
    bucket: datetime
    """Start of the bucket (UTC)."""


class Totals(StatusCounts):
    running: int = 0
    """Started in the window and not ended yet."""
    redriven: int = 0
    success_rate: float | None = None
    """Succeeded over ended; null when none ended."""


class WorkflowFigures(StatusCounts):
    workflow_id: str
    duration: Durations


class StepFigures(ApiModel):
    workflow_id: str
    step_id: str
    runs: int
    """Attempts that finished (succeeded or failed)."""
    failed: int
    retries: int
    """Attempts after the first."""
    duration: Durations


class ErrorCount(ApiModel):
    code: str
    failures: int
    """Failed attempts that ended their step (not retried)."""
    retries: int
    """Failed attempts that were retried."""


class CodeCount(ApiModel):
    code: str
    count: int


class TriggerCount(ApiModel):
    type: str
    count: int


class RouteFigures(ApiModel):
    workflow_id: str
    step_id: str
    route: str
    """The decision's outcome (next step), or ``node: label`` of an AI/history node."""
    kind: str
    """``outcome`` or ``node``."""
    count: int
    succeeded: int
    """Of those executions, how many succeeded."""
    success_rate: float


class LlmStep(ApiModel):
    workflow_id: str
    step_id: str
    tokens: int
    cost_usd: float


class LlmUsage(ApiModel):
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cost_usd: float = 0.0
    steps: list[LlmStep] = Field(default_factory=list)


class Analytics(ApiModel):
    """How a tenant's (or one workflow's) executions went in a window."""

    workflow_id: str | None = None
    """The workflow asked for; null for the whole tenant."""
    window: AnalyticsWindow
    totals: Totals
    duration: Durations
    series: list[SeriesPoint]
    """Executions by start bucket and how they ended (every bucket of the window)."""
    workflows: list[WorkflowFigures]
    steps: list[StepFigures]
    slowest_steps: list[StepFigures]
    """The ``TOP_SLOWEST`` steps with the highest p95 duration."""
    errors: list[ErrorCount]
    """Failed step attempts by error code."""
    execution_errors: list[CodeCount]
    """Executions that ended failed or timed out, by the error code that ended them."""
    triggers: list[TriggerCount]
    routes: list[RouteFigures]
    llm: LlmUsage


def choose_window(
    start: datetime | None, end: datetime | None, bucket: Grain | None, now: datetime
) -> AnalyticsWindow:
    """Default, check and align a window (``WindowInvalid`` with a JSON pointer)."""
    end = (end or now).astimezone(UTC)
    start = (start or end - timedelta(days=7)).astimezone(UTC)
    if start >= end:
        raise WindowInvalid("from must be before to", path="/from")
    grain: Grain = bucket or ("hour" if end - start <= AUTO_HOURS else "day")
    aligned_start = bucket_start(start, grain)
    aligned_end = bucket_start(end - timedelta(microseconds=1), grain) + GRAINS[grain]
    spans = (aligned_end - aligned_start) // GRAINS[grain]
    if spans > MAX_BUCKETS[grain]:
        raise WorkflowError(
            f"the window spans {spans} {grain} buckets; at most {MAX_BUCKETS[grain]}"
            + (" (use bucket=day)" if grain == "hour" else ""),
            code="WINDOW_TOO_LARGE",
            path="/from",
        )
    return AnalyticsWindow.model_validate(
        {"from": aligned_start, "to": aligned_end, "bucket": grain}
    )


async def analytics(
    store: RollupStore,
    tenant: str,
    *,
    workflow_id: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    bucket: Grain | None = None,
    now: datetime | None = None,
) -> Analytics:
    """The analytics of ``tenant`` (or one of its workflows) over a window."""
    window = choose_window(start, end, bucket, now or datetime.now(UTC))
    rows = await store.read_rollups(
        RollupQuery(tenant, window.bucket, window.start, window.end, workflow_id)
    )
    return summarize(rows, window, workflow_id)


def summarize(
    rows: list[RollupRow], window: AnalyticsWindow, workflow_id: str | None = None
) -> Analytics:
    """Merge rollup rows into the figures of ``window``."""
    per_workflow: dict[str, dict[str, float]] = {}
    per_bucket: dict[datetime, dict[str, float]] = {}
    for row in rows:
        merge_counters(per_workflow.setdefault(row.workflow_id, {}), row.counters)
        point = per_bucket.setdefault(row.bucket, {})
        for key, value in row.counters.items():
            if key == "started" or key.startswith("status|"):
                point[key] = point.get(key, 0) + value
    total: dict[str, float] = {}
    for counters in per_workflow.values():
        merge_counters(total, counters)
    parsed = {wf: _Parsed(wf, counters) for wf, counters in sorted(per_workflow.items())}
    steps = [
        StepFigures(
            workflow_id=wf,
            step_id=step_id,
            runs=int(fig.get("n", 0)),
            failed=int(fig.get("failed", 0)),
            retries=int(fig.get("retries", 0)),
            duration=_durations(fig.get("n", 0), fig.get("sum", 0.0), hist),
        )
        for wf, p in parsed.items()
        for step_id, (fig, hist) in sorted(p.steps.items())
    ]
    slowest = sorted(
        (s for s in steps if s.duration.p95_ms is not None),
        key=lambda s: (-(s.duration.p95_ms or 0.0), -(s.duration.mean_ms or 0.0)),
    )[:TOP_SLOWEST]
    return Analytics(
        workflow_id=workflow_id,
        window=window,
        totals=_totals(total),
        duration=_durations(
            total.get("dur|n", 0), total.get("dur|sum", 0.0), _hist(total, "dur|h|")
        ),
        series=_series(per_bucket, window),
        workflows=[
            WorkflowFigures(
                workflow_id=wf,
                duration=_durations(c.get("dur|n", 0), c.get("dur|sum", 0.0), _hist(c, "dur|h|")),
                **_counts(c).model_dump(),
            )
            for wf, c in sorted(per_workflow.items())
        ],
        steps=steps,
        slowest_steps=slowest,
        errors=_errors(total),
        execution_errors=_by_prefix(total, "execErr|"),
        triggers=[TriggerCount(type=c.code, count=c.count) for c in _by_prefix(total, "trigger|")],
        routes=[route for p in parsed.values() for route in p.routes],
        llm=_llm(total, parsed),
    )


class _Parsed:
    """The per-step, route and LLM counters of one workflow's merged counters."""

    def __init__(self, workflow_id: str, counters: dict[str, float]) -> None:
        self.steps: dict[str, tuple[dict[str, float], dict[int, float]]] = {}
        routes: dict[tuple[str, str, str], dict[str, float]] = {}
        self.llm_steps: dict[str, dict[str, float]] = {}
        for key, value in counters.items():
            kind, _, rest = key.partition("|")
            if kind == "step":
                step_id, _, field = rest.partition("|")
                figures, hist = self.steps.setdefault(step_id, ({}, {}))
                if field.startswith("h|"):
                    hist[int(field[2:])] = value
                else:
                    figures[field] = value
            elif kind == "route":
                step_id, _, tail = rest.partition("|")
                outcome, _, field = tail.rpartition("|")
                routes.setdefault((step_id, "outcome", outcome), {})[field] = value
            elif kind == "arm":
                step_id, _, tail = rest.partition("|")
                node, _, tail = tail.partition("|")
                label, _, field = tail.rpartition("|")
                routes.setdefault((step_id, "node", f"{node}: {label}"), {})[field] = value
            elif kind == "llmStep":
                step_id, _, field = rest.partition("|")
                self.llm_steps.setdefault(step_id, {})[field] = value
        self.routes = [
            RouteFigures(
                workflow_id=workflow_id,
                step_id=step_id,
                route=route,
                kind=kind,
                count=int(figures.get("n", 0)),
                succeeded=int(figures.get("ok", 0)),
                success_rate=round(figures.get("ok", 0) / figures["n"], 4),
            )
            for (step_id, kind, route), figures in sorted(routes.items())
            if figures.get("n", 0) > 0
        ]


def _hist(counters: dict[str, float], prefix: str) -> dict[int, float]:
    return {int(k[len(prefix) :]): v for k, v in counters.items() if k.startswith(prefix)}


def _percentile(hist: dict[int, float], count: float, fraction: float) -> float:
    rank = max(1, math.ceil(fraction * count))
    seen = 0.0
    for index in sorted(hist):
        seen += hist[index]
        if seen >= rank:
            return round(bucket_upper_ms(index), 1)
    return round(bucket_upper_ms(max(hist)), 1)


def _durations(count: float, total_ms: float, hist: dict[int, float]) -> Durations:
    hist = {k: v for k, v in hist.items() if v > 0}
    if count <= 0 or not hist:
        return Durations()
    return Durations(
        count=int(count),
        mean_ms=round(total_ms / count, 1),
        p50_ms=_percentile(hist, count, 0.50),
        p95_ms=_percentile(hist, count, 0.95),
        p99_ms=_percentile(hist, count, 0.99),
    )


def _counts(counters: dict[str, float]) -> StatusCounts:
    return StatusCounts(
        started=int(counters.get("started", 0)),
        **{status: int(counters.get(f"status|{status}", 0)) for status in _STATUSES},
    )


def _totals(counters: dict[str, float]) -> Totals:
    counts = _counts(counters)
    ended = counts.succeeded + counts.failed + counts.cancelled + counts.timed_out
    return Totals(
        **counts.model_dump(),
        running=max(0, counts.started - ended),
        redriven=int(counters.get("redriven", 0)),
        success_rate=round(counts.succeeded / ended, 4) if ended else None,
    )


def _series(
    per_bucket: dict[datetime, dict[str, float]], window: AnalyticsWindow
) -> list[SeriesPoint]:
    step = GRAINS[window.bucket]
    points = []
    at = window.start
    while at < window.end:
        points.append(SeriesPoint(bucket=at, **_counts(per_bucket.get(at, {})).model_dump()))
        at += step
    return points


def _by_prefix(counters: dict[str, float], prefix: str) -> list[CodeCount]:
    found = [
        CodeCount(code=key[len(prefix) :], count=int(value))
        for key, value in counters.items()
        if key.startswith(prefix) and value > 0
    ]
    return sorted(found, key=lambda c: (-c.count, c.code))


def _errors(counters: dict[str, float]) -> list[ErrorCount]:
    codes: dict[str, list[int]] = {}
    for key, value in counters.items():
        kind, _, code = key.partition("|")
        if kind in ("fail", "retry") and value > 0:
            codes.setdefault(code, [0, 0])[kind == "retry"] += int(value)
    found = [ErrorCount(code=c, failures=f, retries=r) for c, (f, r) in codes.items()]
    return sorted(found, key=lambda e: (-(e.failures + e.retries), e.code))


def _llm(total: dict[str, float], parsed: dict[str, _Parsed]) -> LlmUsage:
    tokens_in, tokens_out = int(total.get("llm|in", 0)), int(total.get("llm|out", 0))
    steps = [
        LlmStep(
            workflow_id=wf,
            step_id=step_id,
            tokens=int(fig.get("tokens", 0)),
            cost_usd=round(fig.get("cost", 0.0), 6),
        )
        for wf, p in parsed.items()
        for step_id, fig in sorted(p.llm_steps.items())
    ]
    return LlmUsage(
        calls=int(total.get("llm|calls", 0)),
        input_tokens=tokens_in,
        output_tokens=tokens_out,
        total_tokens=tokens_in + tokens_out,
        cost_usd=round(total.get("llm|cost", 0.0), 6),
        steps=sorted(steps, key=lambda s: (-s.tokens, s.workflow_id, s.step_id)),
    )


def rollups_of(app: WorkflowApp) -> RollupStore:
    """The rollup reader behind the app's execution store."""
    store = app.executions
    if not isinstance(store, RollupStore):
        raise WorkflowError("this store keeps no analytics rollups", code="NOT_FOUND")
    return store
