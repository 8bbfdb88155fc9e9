"""Text and JSON rendering for ``wfe``: validation issues, live progress, tables."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, TextIO

from shared.models import (
    ErrorStrategy,
    ExecutionEvent,
    StepRun,
    WorkflowDefinition,
    WorkflowExecution,
    WorkflowStep,
)

_STATUS_MARK = {"succeeded": "✔", "failed": "✘", "cancelled": "⊘", "timed_out": "⌛"}


@dataclass(frozen=True)
class SourceIssue:
    """One validation problem of one document of one file."""

    file: str
    document: int
    """1-based position of the document in its file."""
    workflow: str | None
    code: str
    path: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        """The issue as a JSON-ready dict."""
        return asdict(self)


def dumps(value: Any) -> str:
    """Indented JSON (non-ASCII kept, unknown types as strings)."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def issue_line(issue: SourceIssue) -> str:
    """``CODE  /json/pointer  message`` (``/`` stands for the whole document)."""
    return f"  {issue.code}  {issue.path or '/'}  {issue.message}"


def file_report(
    file: str, documents: int, names: Sequence[str | None], issues: Sequence[SourceIssue]
) -> list[str]:
    """Human lines about one checked file: ``ok`` or its issues grouped by document."""
    if not issues:
        listed = ", ".join(name or "?" for name in names)
        return [f"{file}: ok ({listed})"]
    lines: list[str] = []
    for document in sorted({issue.document for issue in issues}):
        found = [issue for issue in issues if issue.document == document]
        where = file
        if documents > 1:
            where += f" (document {document}{_named(found[0].workflow)})"
        lines.append(f"{where}: {len(found)} error(s)")
        lines.extend(issue_line(issue) for issue in found)
    return lines


def _named(name: str | None) -> str:
    """``, name`` when there is a name."""
    return f", {name}" if name else ""


def ms(value: float | None) -> str:
    """A duration in milliseconds as ``12 ms``, ``1.43 s`` or ``2 min 5 s``."""
    if value is None:
        return "-"
    if value < 1000:
        return f"{value:.0f} ms"
    if value < 120_000:
        return f"{value / 1000:.2f} s"
    minutes, seconds = divmod(value / 1000, 60)
    return f"{minutes:.0f} min {seconds:.0f} s"


def when(moment: datetime | None) -> str:
    """A timestamp as ``YYYY-MM-DD HH:MM:SS`` (UTC), ``-`` when absent."""
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """Left-aligned columns separated by two spaces, with an upper-case header."""
    cells = [[str(h).upper() for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    )


# -- step history ---------------------------------------------------------------------


def visible_runs(runs: Iterable[StepRun]) -> list[StepRun]:
    """Step runs of user steps (engine bookkeeping runs such as ``$deadline`` left out)."""
    return [run for run in runs if not run.step_id.startswith("$")]


def scope_label(scope: str, step_of_run: dict[str, str]) -> str:
    """``fulfil[0]`` for the first branch of ``fulfil``; nested scopes joined by ``/``."""
    if not scope:
        return "main"
    parts = scope.split("/")
    labels = [
        f"{step_of_run.get(owner, owner[:8])}[{index}]"
        for owner, index in zip(parts[::2], parts[1::2], strict=False)
    ]
    return "/".join(labels)


def step_summary(run: StepRun, step_of_run: dict[str, str]) -> dict[str, Any]:
    """The JSON summary of one step run in ``--json`` outputs."""
    body: dict[str, Any] = {
        "stepId": run.step_id,
        "stepType": run.step_type,
        "scope": scope_label(run.scope, step_of_run),
        "iteration": run.iteration,
        "attempt": run.attempt,
        "status": run.status.value,
        "startedAt": run.started_at.isoformat() if run.started_at else None,
        "durationMs": run.duration_ms,
        "output": run.output,
        "error": run.error.to_json_dict() if run.error else None,
    }
    return {key: value for key, value in body.items() if value is not None}


def execution_document(execution: WorkflowExecution, runs: list[StepRun]) -> dict[str, Any]:
    """The execution as JSON plus a ``steps`` list of its step-run summaries."""
    step_of_run = {run.id: run.step_id for run in runs}
    body = execution.to_json_dict()
    body["steps"] = [step_summary(run, step_of_run) for run in visible_runs(runs)]
    return body


def history_table(runs: list[StepRun]) -> str:
    """The step history of an execution as a table."""
    step_of_run = {run.id: run.step_id for run in runs}
    rows = [
        (
            run.step_id,
            scope_label(run.scope, step_of_run),
            run.iteration,
            run.attempt,
            run.status.value,
            ms(run.duration_ms),
            run.error.code if run.error else "",
        )
        for run in visible_runs(runs)
    ]
    return table(("step", "scope", "iteration", "attempt", "status", "duration", "error"), rows)


# -- executions and workflows ----------------------------------------------------------


def summary_line(execution: WorkflowExecution, name: str, runs: list[StepRun]) -> str:
    """One line saying how an execution ended (or where it stands)."""
    status = execution.status.value
    mark = _STATUS_MARK.get(status, "…")
    shown = visible_runs(runs)
    retries = sum(1 for run in shown if run.attempt > 1)
    line = f"{mark} {status}  {name} v{execution.workflow_version}"
    if execution.duration is not None:
        line += f" in {ms(execution.duration)}"
    line += f"  ({len(shown)} step runs, {retries} retries)  execution {execution.id}"
    if execution.error:
        line += f"\n  error: {execution.error}"
    return line


def execution_details(execution: WorkflowExecution, name: str) -> str:
    """The header of ``wfe executions show``: identity, status, timings, result."""
    fields = [
        ("execution", execution.id),
        ("workflow", f"{name} v{execution.workflow_version} ({execution.workflow_id})"),
        ("status", execution.status.value),
        ("trigger", execution.trigger.get("type", "?")),
        ("started", when(execution.started_at)),
        ("completed", when(execution.completed_at)),
        ("duration", ms(execution.duration)),
    ]
    if execution.current_step:
        fields.append(("current step", execution.current_step))
    if execution.error:
        fields.append(("error", execution.error))
    if execution.result is not None:
        fields.append(("result", json.dumps(execution.result, ensure_ascii=False, default=str)))
    width = max(len(label) for label, _ in fields)
    return "\n".join(f"{label.ljust(width)}  {value}" for label, value in fields)


def executions_table(executions: Iterable[WorkflowExecution], names: dict[str, str]) -> str:
    """``wfe executions list`` rows."""
    rows = [
        (
            e.id,
            names.get(e.workflow_id, e.workflow_id),
            e.workflow_version,
            e.status.value,
            when(e.started_at),
            ms(e.duration),
            e.error_info.code if e.error_info else "",
        )
        for e in executions
    ]
    return table(("id", "workflow", "version", "status", "started", "duration", "error"), rows)


def workflows_table(workflows: Iterable[WorkflowDefinition]) -> str:
    """``wfe workflows list`` rows."""
    rows = [
        (w.id, w.name, w.version, "yes" if w.is_active else "no", ",".join(w.tags))
        for w in workflows
    ]
    return table(("id", "name", "version", "active", "tags"), rows)


# -- live progress ----------------------------------------------------------------------


class ProgressPrinter:
    """A store listener printing one line per step event of the tracked executions.

    Child executions (subworkflows) are tracked as soon as their parent step waits for
    them and are indented one level deeper.
    """

    def __init__(
        self,
        stream: TextIO,
        steps: dict[str, WorkflowStep] | None = None,
        on_end: Callable[[str], None] | None = None,
    ) -> None:
        self.stream = stream
        self.steps = steps or {}
        """The steps of the workflows being run, by id (to describe what follows)."""
        self.on_end = on_end
        self.depth: dict[str, int] = {}
        self.prefix: dict[str, str] = {}

    def track(self, execution_id: str, depth: int = 0, prefix: str = "") -> None:
        """Print the events of this execution from now on, indented by ``depth``."""
        self.depth[execution_id] = depth
        self.prefix[execution_id] = prefix

    def __call__(self, events: list[ExecutionEvent]) -> None:
        """Handle the events of one committed transaction, in order."""
        for index, event in enumerate(events):
            depth = self.depth.get(event.execution_id)
            if depth is None:
                continue
            prefix = self.prefix.get(event.execution_id, "")
            line = self._line(event, events[index + 1 :])
            if line:
                print(prefix + "  " * (depth + 1) + line, file=self.stream, flush=True)
            child = event.data.get("childExecutionId")
            if event.type == "step.waiting" and isinstance(child, str):
                self.track(child, depth + 1, prefix)
            if event.type in _END_EVENTS and depth == 0 and self.on_end is not None:
                self.on_end(event.execution_id)

    def _line(self, event: ExecutionEvent, later: list[ExecutionEvent]) -> str | None:
        """The progress line of one event (``later``: the rest of its transaction)."""
        step, data = event.step_id, event.data
        if event.type == "step.succeeded":
            return f"✓ {step}  ({ms(data.get('durationMs'))})"
        if event.type == "step.skipped":
            return f"↷ {step} skipped (conditions not met)"
        if event.type == "step.failed":
            return _failure_line(event, later, self.steps.get(step or ""))
        if event.type == "step.waiting":
            return f"… {step} {_waiting_detail(event, self.steps.get(step or ''))}"
        if event.type == "step.woken" and data.get("signal"):
            return f"⚑ {step} received event {data['signal']!r}"
        if event.type == "execution.paused":
            return "‖ execution paused"
        if event.type == "execution.resumed":
            return "▶ execution resumed"
        return None


_END_EVENTS = frozenset(
    {"execution.succeeded", "execution.failed", "execution.cancelled", "execution.timed_out"}
)


def _failure_line(
    event: ExecutionEvent, later: list[ExecutionEvent], step: WorkflowStep | None
) -> str:
    """A retry (when the same commit schedules one) or a final failure, and what follows."""
    error = event.data.get("error") or {}
    code = error.get("code", "?")
    retry = next(
        (e for e in later if e.type == "step.retrying" and e.step_id == event.step_id), None
    )
    if retry is not None:
        delay = float(retry.data.get("delaySeconds") or 0.0)
        return f"↻ {event.step_id} retry in {delay:.1f}s ({code})"
    line = f"✗ {event.step_id} failed {code} {error.get('message', '')}"
    if step is not None and step.on_error.strategy == ErrorStrategy.FALLBACK:
        line += f" → fallback {step.on_error.fallback_step}"
    elif step is not None and step.on_error.strategy == ErrorStrategy.CONTINUE:
        line += " → continue"
    return line


def _waiting_detail(event: ExecutionEvent, step: WorkflowStep | None) -> str:
    """What a parked step waits for: an event, its bodies, a child, or a timer."""
    data = event.data
    left = _seconds_left(data.get("until"), event.at)
    if data.get("signal"):
        limit = f" (up to {left:.1f}s)" if left is not None else ""
        return f"waiting for event {data['signal']!r}{limit}"
    if data.get("bodies") is not None:
        kind = {"parallel": "branches", "map": "items"}.get(step.type if step else "", "bodies")
        return f"waiting for {data['bodies']} {kind}"
    if data.get("childExecutionId"):
        return f"waiting for child execution {data['childExecutionId']}"
    return f"waiting {left:.1f}s" if left is not None else "waiting"


def _seconds_left(until: Any, now: datetime) -> float | None:
    """Seconds from the event time to ``until`` (an ISO time), None if absent or bad."""
    try:
        return max((datetime.fromisoformat(str(until)) - now).total_seconds(), 0.0)
    except (TypeError, ValueError):
        return None
